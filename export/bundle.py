"""Turn a training run directory into a verified bundle: one ONNX file per model + manifest.json.

The bundle is written atomically (a failed export leaves any earlier bundle at that path byte-identical), every
conversion is parity-checked against its source model, and the manifest records what the runtime needs to verify
and feed each model (see :mod:`labelmend.bundle_format`).
"""

from __future__ import annotations

import datetime as _dt
import os
import pickle
from pathlib import Path

import numpy as np
from labelmend.export.onnx_models import baseline_to_onnx, cnn_to_onnx

import labelmend
from labelmend import registry
from labelmend._atomic import atomic_directory
from labelmend.bundle_format import FORMAT, FORMAT_VERSION, read_manifest, sha256_file, write_manifest
from labelmend.errors import DataError
from labelmend.run_format import CALIBRATION, PARITY_IMAGES, VALIDATION, library_versions, read_run


def export_bundle(run_dir: str | os.PathLike, bundle_dir: str | os.PathLike, *, models: list[str] | None = None,
                  flip_tta: bool | None = None, int8: bool = False, int8_max_drop: float | None = None,
                  progress: bool = True) -> dict:
    """Convert the models of ``run_dir`` (default: all it has) into ``bundle_dir``; returns the manifest.

    ``flip_tta`` overrides the run's test-time augmentation for the CNN graphs: with it (the default) a graph averages
    the image and its mirror — more accurate, about twice the compute per image. ``int8`` writes statically
    quantized CNN graphs (:mod:`labelmend.export.quantize`), calibrated on the run's training images and refused
    when their validation accuracy drops more than ``int8_max_drop`` (default 0.01) below float32.
    """
    from labelmend._progress import progress_bar

    run_dir = Path(run_dir)
    run = read_run(run_dir)
    available = list(run.models)
    models = models or available
    unknown = [m for m in models if m not in available]
    if unknown:
        raise DataError(f"{run_dir}: run has no model {unknown[0]!r}; it has {available}")
    quantized = [m for m in models if m != registry.BASELINE] if int8 else []
    for needed in [PARITY_IMAGES, *(run.models[m].file for m in models),
                   *([VALIDATION, CALIBRATION] if quantized else [])]:
        if not (run_dir / needed).is_file():
            raise DataError(f"{run_dir / needed}: missing from the run directory; train again")
    parity_images = np.load(run_dir / PARITY_IMAGES)
    if quantized:  # read once for every quantized model
        from labelmend.export.quantize import MAX_DROP, quantize_cnn

        calibration = np.load(run_dir / CALIBRATION)
        with np.load(run_dir / VALIDATION) as val:
            val_images, val_labels = val["images"], val["labels"]
    entries = {}
    with atomic_directory(bundle_dir) as tmp, progress_bar(total=len(models), desc="exporting to ONNX", unit="model",
                                                            disable=not progress) as bar:
        for name in models:
            record = run.models[name]
            src = run_dir / record.file
            if name == registry.BASELINE:
                from labelmend.train.baseline import histogram_features

                with open(src, "rb") as f:
                    clf = pickle.load(f)
                data, spec = baseline_to_onnx(clf, histogram_features(parity_images))
                spec["preprocessing"] = "rgb_histogram"
            else:
                import keras
                model = keras.models.load_model(src, compile=False)  # saved float32 (cnn.float32_copy)
                tta = record.training.get("flip_tta", True) if flip_tta is None else flip_tta
                data, spec = cnn_to_onnx(model, parity_images, flip_tta=tta)
                spec["preprocessing"] = "raw_rgb"
                if name in quantized:
                    data, facts = quantize_cnn(data, calibration, val_images, val_labels,
                                               max_drop=MAX_DROP if int8_max_drop is None else int8_max_drop,
                                               name=name)
                    spec["export"]["quantization"] = facts
            file = f"{name}.onnx"
            (tmp / file).write_bytes(data)
            entries[name] = {
                **spec,
                "file": file,
                "sha256": sha256_file(tmp / file),
                "size_bytes": len(data),
                "description": registry.summary(name) if name in registry.MODEL_NAMES else name,
                "training": record.training,
                "validation": record.validation,
            }
            if "quantization" in spec["export"]:
                q = spec["export"]["quantization"]
                entries[name]["validation"] = {**entries[name]["validation"], "accuracy": q["val_accuracy_int8"],
                                               "note": "int8 graph, scored at export on the run's validation images "
                                                       f"(float32 graph: {q['val_accuracy_fp32']:.4f})"}
            elif spec["export"].get("flip_tta", True) != record.training.get("flip_tta", True):
                entries[name]["validation"] = {**entries[name]["validation"], "note": (
                    "measured during training with flip_tta={}; this graph has flip_tta={}: run "
                    "`labelmend evaluate` for its own figure".format(record.training.get("flip_tta", True),
                                                                      spec["export"]["flip_tta"]))}
            bar.update(1)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "labelmend_version": labelmend.__version__,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "class_names": list(run.class_names),
            "default_model": registry.default_model(entries),
            "library_versions": library_versions(),
            "source_run": {"path": str(run_dir.resolve()), "seed": run.seed, "git_revision": run.git_revision,
                           "validation_split": run.split},
            "models": entries,
        }
        write_manifest(tmp, manifest)
        read_manifest(tmp)  # the bundle must verify before it replaces anything
    return manifest
