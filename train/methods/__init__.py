"""Weak-supervision methods, one module each, registered in :mod:`labelmend.registry`.

A method module exposes ``train(task, trainer, *, steps) -> (keras model, report dict)``: it reads the data from the
:class:`~labelmend.train.task.Task`, trains with :class:`~labelmend.train.loop.Trainer` (which owns the network,
batches, distribution strategy, deadline and checkpoints) within ``steps`` SGD steps, and reports at least what
:func:`~labelmend.train.task.stage_report` returns plus ``validation``.
"""
