"""A method written the way a researcher adds one: this file plus one registry line (see test_engine.py).

"Noisy labels, hard targets": Model I without label smoothing, trained with the shared Trainer; its report section
says how often its training labels disagree with what it predicts on them, and draws that per class.
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
    predicted = trainer.predict_proba(model, task.images[rows]).argmax(1)
    report["disagreement"] = float(np.mean(predicted != task.noisy_labels[rows]))
    return model, report


def report_section(name, report, run, reports_dir):
    """report.md's lines on the toy method, from its own report."""
    (reports_dir / f"toy_{name}.txt").write_text(f"{report['disagreement']:.4f}\n", encoding="utf-8")
    return ["", f"## Toy method ({name})", "",
            f"It disagrees with {100 * report['disagreement']:.1f} % of its {len(run.class_names)}-class training "
            "labels."]
