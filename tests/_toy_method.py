"""A method written the way a researcher adds one: this file plus one registry line (see test_engine.py).

"Noisy labels, hard targets": Model I without label smoothing, trained with the shared Trainer.
"""

import numpy as np
from labelmend.train.cnn import one_hot
from labelmend.train.inputs import TrainingTargets
from labelmend.train.task import stage_report, validation_report

HYP = {"smoothing": 0.0}


def train(task, trainer, *, steps):
    model = trainer.model(task.n_classes, task.images[task.train])
    rows = task.train
    data = TrainingTargets(task.images[rows], one_hot(task.noisy_labels[rows], task.n_classes, smoothing=0.0),
                           np.zeros(len(rows), bool))
    hist = trainer.fit(model, data, steps=steps, name="all", desc="toy", val=task.val)
    report = stage_report({"all": hist.as_dict()}, planned_steps=steps)
    report["validation"] = validation_report(trainer.predict_proba(model, task.val[0]), task.val[1])
    return model, report
