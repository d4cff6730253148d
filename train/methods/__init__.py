"""Weak-supervision methods, one module each, registered in :mod:`labelmend.registry`.

A method module exposes ``train(task, trainer, *, steps) -> (keras model, report dict)``: it reads the data from the
:class:`~labelmend.train.task.Task`, trains with :class:`~labelmend.train.loop.Trainer` (which owns the network,
batches, distribution strategy, deadline and checkpoints) within ``steps`` SGD steps, and reports at least what
:func:`~labelmend.train.task.stage_report` returns plus ``validation``. A report may carry ``transition_matrix``
(K × K, T[i, j] = P(ỹ = j | y = i)): the label judgment then ranks the review queue with it.

Optionally ``report_section(name, report, run, reports_dir) -> list[str]``: the method's own Markdown lines for
report.md, rendered from its report (and the :class:`~labelmend.run_format.RunRecord`), drawing any PNG it wants
into ``reports_dir``. The pipeline and the reports know no method's keys.
"""
