"""`labelmend train`: load the client's data, fit the baseline, Model I and Model II within a time budget, and
write a run directory (models, run.json, reports) atomically.

Budget: after loading and the baseline, the remaining time (less a reserve for inference, plots and saving) is
measured in SGD steps by timing a few steps of the real network, and split equally between Model I and Model II,
so both get the same architecture *and* the same number of steps. Each model also has a hard deadline, so a machine
slower than the calibration suggested still ends on time (the curves then show a shorter run). ``epochs`` fixes
the step count instead, which makes a run reproducible bit-for-bit with its ``seed`` on the same machine.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from labelmend.train import run as runfiles
from labelmend.train.data import load_training_data

import labelmend
from labelmend._atomic import commit_directory
from labelmend.errors import DataError

ALL_MODELS = ("baseline", "model1", "model2")
RESERVE_FRAC = 0.04       # of the budget, kept for inference, plots and saving ...
RESERVE_MIN_S = 15.0      # ... but at least this many seconds (graph tracing, saving, plots are fixed costs)
CALIBRATION_STEPS = 16    # timed steps of the real network, after its warm-up steps
TRUSTED_WARNING_PER_CLASS = 50  # fewer trusted labels per class: T's rows have standard errors above ~0.07
CALIBRATION_IMAGES = 512  # training images kept in the run for int8 calibration at export
CONFIG_JSON = "config.json"      # in the partial directory: the settings, so --resume needs nothing else
PROGRESS_JSON = "progress.json"  # in the partial directory: the records of the models finished so far


def _log(msg: str) -> None:
    print(f"[labelmend] {msg}", file=sys.stderr, flush=True)


def configure_tensorflow(seed: int) -> str:
    """Seed everything, make ops deterministic, quiet TF's logging; returns 'gpu' or 'cpu'."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    return "gpu" if gpus else "cpu"


def seconds_per_step(images: np.ndarray, *, hyp: dict, seed: int) -> float:
    """Median wall seconds of one training step of the real network on this machine."""
    from labelmend.train import cnn

    model = cnn.make_model(width=hyp["net"]["width"], logit_scale=hyp["net"]["logit_scale"], seed=seed)
    bs = hyp["opt"]["batch_size"]
    n = min(len(images), bs * 4)
    data = cnn.TrainingTargets(images[:n], cnn.one_hot(np.zeros(n, np.int64)), np.zeros(n, bool))
    hist = cnn.fit(model, data, steps=cnn.WARM_UP_STEPS + CALIBRATION_STEPS, seed=seed, hyp=hyp, progress=False)
    return hist.warm_seconds / CALIBRATION_STEPS


def partial_dir(out_dir: str | os.PathLike) -> Path:
    """The hidden working directory of a run in progress; it becomes ``out_dir`` only when the run completes."""
    out = Path(out_dir)
    return out.with_name(f".{out.name}.partial")


def train(data_dir: str | os.PathLike | None, out_dir: str | os.PathLike, *, models=ALL_MODELS,
          time_budget_s: float = 1800, seed: int = 0, val_fraction: float = 0.2, epochs: float | None = None,
          width: int | None = None, progress: bool = True, resume: bool = False,
          class_names: str | os.PathLike | None = None) -> dict:
    """Train ``models`` on the data in ``data_dir``; write the run to ``out_dir``; return the run record.

    Work happens in :func:`partial_dir` (finished models and per-epoch checkpoints land there as they are made) and
    is renamed to ``out_dir`` at the end, so ``out_dir`` is always either the previous complete run or the new one.
    ``resume=True`` continues the interrupted run of ``out_dir`` with its saved settings (``data_dir`` may be None):
    finished models and epochs are not redone; the remaining planned steps run without a deadline.
    """
    t_start = time.monotonic()
    work = partial_dir(out_dir)
    if resume:
        if not (work / CONFIG_JSON).is_file():
            raise DataError(f"{out_dir}: no interrupted run to resume (no {work / CONFIG_JSON})")
        config = json.loads((work / CONFIG_JSON).read_text(encoding="utf-8"))
        _log(f"resuming {out_dir} from {work}")
    else:
        config = {"data_dir": str(Path(data_dir).resolve()) if data_dir is not None else None, "models": list(models),
                  "time_budget_s": time_budget_s, "seed": seed, "val_fraction": val_fraction, "epochs": epochs,
                  "width": width, "class_names_file": str(Path(class_names).resolve()) if class_names else None}
        unknown = [m for m in models if m not in ALL_MODELS]
        if unknown:
            raise DataError(f"unknown model {unknown[0]!r}; choose from {', '.join(ALL_MODELS)}")
        if data_dir is None:
            raise DataError("no --data folder given")
        if time_budget_s <= 0:
            raise DataError(f"--time-budget must be positive, got {time_budget_s}")
    models, seed, time_budget_s = config["models"], config["seed"], config["time_budget_s"]
    data = load_training_data(config["data_dir"], progress=progress, class_names=config.get("class_names_file"))
    _log(f"loaded {len(data.images)} images, {data.n_clean} clean labels in {time.monotonic() - t_start:.1f} s")

    from labelmend.train.weak import Split, counts_transition

    split = Split.make(data.n_clean, val_fraction=config["val_fraction"], seed=seed)
    cnns = [m for m in models if m != "baseline"]
    if cnns and len(split.val) == 0:
        _log("warning: no clean labels held out, so the CNNs' validation accuracy cannot be measured")
    absent = sorted(set(range(data.n_classes)) - set(np.unique(data.noisy_labels).tolist()))
    if absent:
        raise DataError(f"{Path(config['data_dir']) / 'noisy_labels.csv'}: class {data.class_names[absent[0]]!r} "
                        f"(label {absent[0]}) never occurs; every one of the {data.n_classes} classes needs examples")
    n_trusted = len(split.train_clean)
    if "model2" in models and n_trusted < TRUSTED_WARNING_PER_CLASS * data.n_classes:
        how = "" if counts_transition(n_trusted, data.n_classes) else " (estimated from the data alone)"
        _log(f"warning: {n_trusted} trusted training labels (< {TRUSTED_WARNING_PER_CLASS} per class): "
             f"the noise transition matrix will be rough{how}")
    if not resume:
        shutil.rmtree(work, ignore_errors=True)  # an abandoned interrupted run is replaced by a fresh one
        (work / runfiles.REPORTS).mkdir(parents=True)
        (work / CONFIG_JSON).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    progress_file = work / PROGRESS_JSON
    record = json.loads(progress_file.read_text(encoding="utf-8")) if progress_file.is_file() else {
        "labelmend_version": labelmend.__version__, "seed": seed, "data_dir": config["data_dir"],
        "n_images": int(len(data.images)), "n_clean": int(data.n_clean), "split": split.as_dict(),
        "class_names": list(data.class_names), "trusted_warning_per_class": TRUSTED_WARNING_PER_CLASS,
        "time_budget_s": time_budget_s, "git_revision": runfiles.git_revision(Path(__file__).parent),
        "library_versions": runfiles.library_versions(), "models": {},
    }

    def save_progress():
        tmp = progress_file.with_name(progress_file.name + ".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, progress_file)

    parity = split.val[:256] if len(split.val) else np.arange(min(256, len(data.images)))
    np.save(work / runfiles.PARITY_IMAGES, data.images[parity])
    np.savez(work / runfiles.VALIDATION, images=data.images[split.val], labels=data.clean_labels[split.val])
    pool = split.training_images(len(data.images))
    calibration = np.random.default_rng(seed).choice(pool, size=min(CALIBRATION_IMAGES, len(pool)), replace=False)
    np.save(work / runfiles.CALIBRATION, data.images[np.sort(calibration)])
    if "baseline" in models and "baseline" not in record["models"]:
        record["models"]["baseline"] = _train_baseline(data, split, work)
        save_progress()
    if cnns:
        _train_cnns(data, split, cnns, work, record, save_progress, t_start=t_start, time_budget_s=time_budget_s,
                    seed=seed, epochs=config["epochs"], width=config["width"], progress=progress, resume=resume)
    record["total_seconds"] = time.monotonic() - t_start
    record["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    from labelmend.train.reports import write_summary

    write_summary(record, work / runfiles.REPORTS / "report.md")
    (work / runfiles.RUN_JSON).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    for leftover in (CONFIG_JSON, PROGRESS_JSON, runfiles.CHECKPOINTS):
        target = work / leftover
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
    commit_directory(work, Path(out_dir))
    _log(f"run written to {out_dir} in {record['total_seconds']:.0f} s")
    return record


def _train_baseline(data, split, tmp: Path) -> dict:
    from labelmend.train.baseline import fit_baseline, histogram_features

    t0 = time.monotonic()
    clf = fit_baseline(data.images, data.noisy_labels)
    with open(tmp / runfiles.MODEL_FILES["baseline"], "wb") as f:
        pickle.dump(clf, f, protocol=pickle.HIGHEST_PROTOCOL)
    val_acc = None
    if len(split.val):
        predicted = clf.predict(histogram_features(data.images[split.val]))
        val_acc = float(np.mean(predicted == data.clean_labels[split.val]))
    seconds = time.monotonic() - t0
    _log(f"baseline: validation accuracy {val_acc} ({seconds:.1f} s)")
    return {"file": runfiles.MODEL_FILES["baseline"], "seconds": seconds,
            "training": {"estimator": "LogisticRegression(random_state=0)", "features": "rgb_histogram_5bins",
                         "labels": "noisy, all images",
                         "note": "validation images' noisy labels are in its training set (the client's recipe)"},
            "validation": {"accuracy": val_acc, "n": int(len(split.val))}}


def _train_cnns(data, split, cnns, work: Path, record: dict, save_progress, *, t_start, time_budget_s, seed, epochs,
                width, progress, resume) -> None:
    from labelmend.train import cnn, weak
    from labelmend.train.reports import plot_training_curves, plot_transition_matrix

    device = configure_tensorflow(seed)
    reports = work / runfiles.REPORTS
    todo = [m for m in cnns if m not in record["models"]]
    if not todo:
        return
    hyp = record.get("hyperparameters") or cnn.hyperparameters()
    hyp["net"]["width"] = width or (hyp["net"]["gpu_width"] if device == "gpu" else hyp["net"]["width"])
    n = len(data.images)
    reserve = max(RESERVE_FRAC * time_budget_s, RESERVE_MIN_S)
    per_model_s = None
    if "cnn_steps" in record:  # resuming: the plan is fixed, finish it
        steps, sps = record["cnn_steps"], record["seconds_per_step"]
    elif epochs is not None:
        n_train = n - len(split.val)  # the CNNs train on all but the validation images, in batches of at most n_train
        steps, sps = weak.steps_for_epochs(n_train, epochs, min(hyp["opt"]["batch_size"], n_train)), None
    else:
        sps = seconds_per_step(data.images, hyp=hyp, seed=seed)
        left = time_budget_s - reserve - (time.monotonic() - t_start)
        per_model_s = left / len(cnns)
        # evaluation per epoch and the final inference passes cost about as much as 6 % of the steps
        steps = int(per_model_s / sps / 1.06)
        if steps < 10:
            raise DataError(f"--time-budget {time_budget_s:.0f} s leaves {max(left, 0):.0f} s for {len(cnns)} CNN(s): "
                            f"too little for even 10 steps at {sps:.2f} s/step; raise the budget")
    record.update({"device": device, "cnn_steps": steps, "seconds_per_step": sps, "hyperparameters": hyp,
                   "hyperparameters_noise": weak.HYP_NOISE})
    save_progress()
    _log(f"CNNs on {device}: width {hyp['net']['width']}, {steps} steps each "
         f"({steps * hyp['opt']['batch_size'] / n:.1f} epochs)" + (f", {sps:.3f} s/step measured" if sps else ""))
    checkpoints = work / runfiles.CHECKPOINTS
    checkpoints.mkdir(exist_ok=True)
    t_cnns = time.monotonic()
    for i, name in enumerate(todo):
        # model i must be done by the end of its slot, so an overrun never eats the next model's time
        deadline = None if per_model_s is None or resume else t_cnns + (i + 1) * per_model_s
        trainer = weak.train_model1 if name == "model1" else weak.train_model2
        model, rep = trainer(data.images, data.noisy_labels, data.clean_labels, split, steps=steps, seed=seed,
                             deadline=deadline, hyp=hyp, progress=progress, checkpoints=checkpoints,
                             n_classes=data.n_classes)
        model.save(work / runfiles.MODEL_FILES[name])
        plot_training_curves(rep["history"], reports / f"curves_{name}.png",
                             title=f"{name}: {rep['steps']} steps, {rep['seconds']:.0f} s")
        if "transition_matrix" in rep:
            plot_transition_matrix(np.asarray(rep["transition_matrix"]), reports / "transition_matrix.png",
                                   class_names=data.class_names, source=rep["transition_source"])
        record["models"][name] = {
            "file": runfiles.MODEL_FILES[name], "seconds": rep["seconds"], "validation": rep["validation"],
            "training": {**{k: v for k, v in rep.items() if k not in ("validation", "seconds")},
                         "width": hyp["net"]["width"], "device": device, "flip_tta": hyp["eval"]["flip_tta"],
                         "clean_labels_used": "train split only",
                         "validation_images": "held out entirely (neither clean nor noisy label trained on)"},
        }
        save_progress()
        _log(f"{name}: validation accuracy {rep['validation']['accuracy']} "
             f"({rep['seconds']:.0f} s, {rep['steps']} steps)")
