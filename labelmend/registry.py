"""The models labelmend trains: the client's baseline and one CNN method per registered weak-supervision recipe.

Every part that names models reads them from here: the CLI's ``--models``, the training pipeline's dispatch, the run
directory's files, the bundle's descriptions and default model, evaluation order and reports. A new method is one
module under ``labelmend.train.methods`` (exposing ``train(task, trainer, *, steps)`` and, if it has more to say than
its accuracy, ``report_section(name, report, run, reports_dir)``; see ``noisy_ce`` for the smallest one) plus one
line in :data:`METHODS`.

Pure Python: the runtime and ``labelmend evaluate`` read it without TensorFlow installed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

BASELINE = "baseline"
BASELINE_SUMMARY = "Client baseline: 15 RGB-histogram counts + LogisticRegression(random_state=0) on all noisy labels."


@dataclass(frozen=True)
class Method:
    """A CNN training recipe: its public model name, the module that trains it, and a one-line description."""

    name: str
    module: str
    summary: str
    uses_clean_labels: bool

    def trainer(self):
        """The method's ``train(task, trainer, *, steps) -> (model, report)`` (imports TensorFlow)."""
        return importlib.import_module(self.module).train

    def report_section(self, name: str, report: dict, run, reports_dir) -> list[str]:
        """The method's own Markdown lines for report.md (and any PNG it draws into ``reports_dir``) from the report
        its ``train`` returned; none if the module has no ``report_section``."""
        render = getattr(importlib.import_module(self.module), "report_section", None)
        return [] if render is None else list(render(name, report, run, reports_dir))

    def hyperparameters(self) -> dict:
        """The method's own hyperparameters (its module's ``HYP``; {} if it has none)."""
        return dict(getattr(importlib.import_module(self.module), "HYP", {}))


METHODS = {m.name: m for m in (
    Method("model1", "labelmend.train.methods.noisy_ce", uses_clean_labels=False,
           summary="CNN trained on all noisy labels as if clean (same architecture and budget as model2)."),
    Method("model2", "labelmend.train.methods.forward_confident", uses_clean_labels=True,
           summary="CNN trained with weak supervision: clean labels + noisy labels through the estimated noise "
                   "process, then without the noisy labels that confident learning flags as wrong."),
)}
MODEL_NAMES = (BASELINE, *METHODS)
DEFAULT_MODEL = "model2"  # what a bundle serves when the caller names no model (if the bundle has it)


def summary(name: str) -> str:
    """The one-line description of model ``name`` (baseline or a method)."""
    return BASELINE_SUMMARY if name == BASELINE else METHODS[name].summary


def model_file(name: str) -> str:
    """The file a run directory stores model ``name`` in."""
    return f"{name}.pkl" if name == BASELINE else f"{name}.keras"


def default_model(available) -> str:
    """The bundle's default: :data:`DEFAULT_MODEL` if present, else the first of ``available``."""
    available = list(available)
    return DEFAULT_MODEL if DEFAULT_MODEL in available else available[0]


def ordered(names) -> list[str]:
    """``names`` in registry order (baseline first), unknown names last in their given order."""
    names = list(names)
    return [m for m in MODEL_NAMES if m in names] + [m for m in names if m not in MODEL_NAMES]
