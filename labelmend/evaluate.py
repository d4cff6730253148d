"""`labelmend evaluate`: score every model of a bundle on a client test folder, through the runtime.

Needs only the ``eval`` extra (the runtime + scikit-learn + matplotlib + Pillow): test folders are listed by
:mod:`labelmend.folders`; the client's numbered 32×32 PNGs are decoded by the runtime's own PNG reader, class-folder
test sets (images of any size) by the runtime's one preprocessing (:func:`labelmend.runtime.images.to_input`), so
neither TensorFlow nor OpenCV is imported.
The test images are decoded and predicted in batches (a folder of any size never sits in memory whole), every model
sees the same batch, and the outputs are written atomically into one directory:
``classification_report_<model>.txt`` (scikit-learn), ``confusion_<model>.png``, ``label_prediction.csv``
(one row per test image, one column per model, like the client's) and ``metrics.json``.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from labelmend import registry
from labelmend._atomic import atomic_directory
from labelmend._progress import progress_bar
from labelmend.bundle_format import IMAGE_SHAPE, read_manifest
from labelmend.errors import DataError
from labelmend.folders import NUMBERED, list_test_folder


def evaluate(bundle_dir: str | os.PathLike, test_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
             models: list[str] | None = None, batch_size: int = 2048, progress: bool = True) -> dict:
    """Predict ``test_dir`` with each model of ``bundle_dir``; write reports to ``out_dir``; return the metrics."""
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix

    from labelmend.runtime import load

    manifest = read_manifest(bundle_dir)
    names = models or registry.ordered(manifest["models"])
    missing = [m for m in names if m not in manifest["models"]]
    if missing:
        raise DataError(f"{bundle_dir}: bundle has no model {missing[0]!r}; it has {sorted(manifest['models'])}")
    predictors = {m: load(bundle_dir, m) for m in names}
    class_names = list(manifest["class_names"])
    k = len(class_names)
    layout, paths, image_names, labels = list_test_folder(test_dir, class_names=tuple(class_names))
    preds = {m: np.empty(len(paths), dtype=np.int64) for m in names}
    with progress_bar(total=len(paths), desc="evaluating", unit="img", disable=not progress) as bar:
        for start in range(0, len(paths), batch_size):
            images = read_images(paths[start:start + batch_size], numbered=layout == NUMBERED)
            for m, predictor in predictors.items():
                preds[m][start:start + len(images)] = predictor.predict_batch(images)
            bar.update(len(images))

    metrics = {"bundle": str(Path(bundle_dir).resolve()), "test_data": str(Path(test_dir).resolve()),
               "test_layout": layout, "n_images": len(paths), "models": {}}
    reports = {}
    with atomic_directory(out_dir) as tmp:
        for m in names:
            report = classification_report(labels, preds[m], labels=list(range(k)), target_names=class_names,
                                           digits=4, zero_division=0)
            reports[m] = report
            (tmp / f"classification_report_{m}.txt").write_text(report, encoding="utf-8")
            cm = confusion_matrix(labels, preds[m], labels=list(range(k)))
            _plot_confusion(cm, tmp / f"confusion_{m}.png", class_names, title=f"{m} on {len(paths)} test images")
            metrics["models"][m] = {"accuracy": float(accuracy_score(labels, preds[m])),
                                    "confusion_matrix": cm.tolist()}
        with open(tmp / "label_prediction.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["image", "true_label", *names])
            for i, name in enumerate(image_names):
                writer.writerow([name, int(labels[i]), *(int(preds[m][i]) for m in names)])
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    metrics["reports"] = reports
    return metrics


def read_images(paths: list[Path], *, numbered: bool = True) -> np.ndarray:
    """Test images as (N, 32, 32, 3) uint8 RGB: the client's numbered PNGs exactly as stored (a wrong size names the
    file), class-folder images of any size through the runtime's one preprocessing."""
    from labelmend.runtime.images import to_input
    from labelmend.runtime.png import read_png

    out = np.empty((len(paths), *IMAGE_SHAPE), dtype=np.uint8)
    for i, path in enumerate(paths):
        if not numbered:
            out[i] = to_input(path)
            continue
        image = read_png(path)
        if image.shape != IMAGE_SHAPE:
            raise DataError(f"{path}: image is {image.shape[1]}x{image.shape[0]} pixels; expected 32x32")
        out[i] = image
    return out


def _plot_confusion(cm: np.ndarray, path: Path, class_names: list[str], *, title: str) -> None:
    """Confusion matrix: each row's rates as colour, the counts written in."""
    from labelmend.plots import heatmap

    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    heatmap(rates, path, class_names=class_names, text=cm, xlabel="predicted", ylabel="true", title=title,
            cmap="Blues")
