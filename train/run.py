"""What a training run directory holds, and the provenance every run records next to its outputs."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

RUN_JSON = "run.json"                   # hyperparameters, seed, split, metrics, timings, versions
PARITY_IMAGES = "parity_images.npy"     # validation images the export checks ONNX against the source models with
VALIDATION = "validation.npz"           # the held-out images and their clean labels: export --int8 scores with them
CALIBRATION = "calibration_images.npy"  # a seeded sample of CNN training images: int8 calibration data
REPORTS = "reports"                     # PNG plots and report.md
CHECKPOINTS = "checkpoints"             # per-epoch CNN checkpoints, used by --resume

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
