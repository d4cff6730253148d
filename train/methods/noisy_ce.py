"""Model I: every training image fits its noisy label as if it were clean (cross-entropy, label smoothing).

The control arm of the client's question: same network, same steps as Model II, no weak supervision.
"""

from __future__ import annotations

import numpy as np
from labelmend.train.cnn import one_hot
from labelmend.train.inputs import TrainingTargets
from labelmend.train.loop import Trainer
from labelmend.train.task import Task, stage_report, validation_report


def train(task: Task, trainer: Trainer, *, steps: int):
    """Returns (model, report)."""
    model = trainer.model(task.n_classes, task.images[task.train])
    train = task.train
    targets = one_hot(task.noisy_labels[train], task.n_classes, smoothing=trainer.hyp["opt"]["label_smoothing"])
    data = TrainingTargets(task.images[train], targets, np.zeros(len(train), bool))
    hist = trainer.fit(model, data, steps=steps, name="all", desc="model1: noisy labels", val=task.val)
    val_images, val_labels = task.val
    report = stage_report({"all": hist.as_dict()}, planned_steps=hist.planned_steps)  # a re-plan may change it
    report["validation"] = validation_report(trainer.predict_proba(model, val_images), val_labels)
    return model, report
