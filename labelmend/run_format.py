"""A training run directory: the files it holds and its typed record, ``run.json``.

``labelmend train`` writes a run; ``export``, ``issues`` and the report read it back through :func:`read_run`, so
every reader sees the same fields with the same types, and a folder that is not a finished run (or a ``run.json``
that is corrupt) is named in one clear line. A method's own report (its noise model, stages, label correction) is
kept whole under ``ModelRecord.training`` and rendered by the method itself (:mod:`labelmend.registry`).

Pure Python: readable without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from labelmend._atomic import read_json, write_json
from labelmend.errors import DataError

RUN_JSON = "run.json"                   # the RunRecord
PARITY_IMAGES = "parity_images.npy"     # validation images the export checks ONNX against the source models with
VALIDATION = "validation.npz"           # the held-out images and their clean labels: export --int8 scores with them
CALIBRATION = "calibration_images.npy"  # a seeded sample of CNN training images: int8 calibration data
REPORTS = "reports"                     # PNG plots and report.md
REPORT_MD = "report.md"
CHECKPOINTS = "checkpoints"             # per-epoch CNN checkpoints, used by --resume (removed when the run ends)
# Share of the clean-labelled images held out for validation: enough images for a validation figure to mean
# something, few enough that Model II keeps most trusted labels to learn from (each one counts)
DEFAULT_VAL_FRACTION = 0.1
PRECISIONS = ("auto", "float32", "bfloat16")  # the CNNs' training arithmetic (`--precision`; labelmend.train.cnn)


@dataclass
class ModelRecord:
    """One trained model: its file in the run, wall time, validation figures and what its training reported."""

    file: str
    seconds: float
    validation: dict                     # at least "accuracy" (None without validation images) and "n"
    training: dict                       # the method's report plus the run's common keys (method, width, ...)
    validation_predicted: list | None = None  # predicted class per validation image (paired comparisons)


@dataclass
class RunRecord:
    """What a run did: data and split, the models it trained, how they compare, the label judgment, provenance."""

    labelmend_version: str
    seed: int
    data_dir: str | None
    n_images: int
    n_clean: int
    split: dict
    class_names: list
    time_budget_s: float
    n_verified: int = 0
    data_layout: str = "numbered"                    # folders.NUMBERED, CLASS_FOLDERS or LABEL_TABLE
    image_conversions: dict = field(default_factory=dict)  # TrainingData.conversions (grayscale, alpha)
    trusted_warning_per_class: int = 50
    validation_chose_defaults: bool = False          # task.chosen_on_these_images: the figures read high
    git_revision: str | None = None
    library_versions: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)       # name -> ModelRecord, in training order
    # the CNNs' plan, once made
    device: str | None = None
    distribution: dict | None = None
    cnn_steps: int | None = None
    seconds_per_step: float | None = None
    hyperparameters: dict | None = None
    global_batch_size: int | None = None
    dtype_policy: str | None = None                  # "mixed_bfloat16" or "float32" (cnn.dtype_policy)
    # the end of the run
    comparisons: list = field(default_factory=list)  # task.paired_difference of each weak-supervision CNN
    label_issues: dict | None = None                 # label_issues.judge_run
    total_seconds: float | None = None
    peak_rss_mb: float | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)  # recurses into the ModelRecords of ``models``

    @classmethod
    def from_dict(cls, d: dict, *, source: str = RUN_JSON) -> RunRecord:
        """The record in ``d`` (parsed JSON); a missing field or a wrong shape is a DataError naming ``source``."""
        if not isinstance(d, dict):
            raise DataError(f"{source}: not a run record (a JSON object was expected)")
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            models = {name: ModelRecord(**m) for name, m in d.get("models", {}).items()}
            return cls(**{**{k: v for k, v in d.items() if k in names}, "models": models})
        except (TypeError, AttributeError) as exc:
            raise DataError(f"{source}: incomplete run record ({exc}); train the run again") from None

    def cnn_names(self) -> list[str]:
        """The trained models other than the baseline, in training order."""
        from labelmend.registry import BASELINE

        return [m for m in self.models if m != BASELINE]


def read_run(run_dir: str | os.PathLike) -> RunRecord:
    """The record of the finished run in ``run_dir``; a clear DataError if it is not one or is corrupt."""
    path = Path(run_dir) / RUN_JSON
    d = read_json(path, error=DataError, corrupt="corrupt run record ({exc}); train the run again",
                  missing=f"not found; {run_dir} is not a finished `labelmend train` run (give its --out folder)")
    return RunRecord.from_dict(d, source=str(path))


def write_run(path: str | os.PathLike, record: RunRecord) -> Path:
    """``record`` as JSON at ``path`` (run.json, or a run in progress's progress file), atomically."""
    return write_json(path, record.as_dict())


# ---------------------------------------------------------------- provenance

_PACKAGES = ("labelmend", "numpy", "tensorflow", "tensorflow-cpu", "keras", "scikit-learn", "onnx", "onnxruntime",
             "onnxruntime-gpu", "skl2onnx", "tf2onnx", "opencv-python-headless", "Cython")


def library_versions() -> dict:
    """Installed versions of the libraries that shape a run's or bundle's numbers."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_revision(path: str | Path = ".") -> str | None:
    """The git commit of the checkout at ``path`` (with '-dirty' if modified), or None outside a checkout."""
    try:
        rev = subprocess.run(["git", "-C", str(path), "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return rev.stdout.strip() or None if rev.returncode == 0 else None


def read_partial_state(path: Path) -> dict | None:
    """One of an interrupted run's state files (its settings, finished models, a checkpoint record), or None where it
    was not written yet; a corrupt one is a :class:`DataError` saying to start afresh."""
    if not Path(path).is_file():
        return None
    return read_json(Path(path), error=DataError, missing="not found",
                     corrupt="corrupt ({exc}); start the run afresh (without --resume)")
