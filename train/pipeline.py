"""`labelmend train`: load the client's data, fit the baseline, Model I and Model II within a time budget, and
write a run directory (models, run.json, reports) atomically.

Budget: after loading and the baseline, the remaining time (less a reserve for inference, plots and saving) is
measured in SGD steps by timing a few steps of the real network (:mod:`labelmend.train.budget`), and split
equally between the CNN methods (:mod:`labelmend.registry`), so all get the same network *and* the same steps; the
first CNN's first hundred steps on the real data time them again, and the plan for every CNN follows that pace.
Each model also has a hard deadline, so a machine slower than the calibration suggested still ends on time, annealed
(its report says the deadline cut it). ``epochs`` fixes the step count instead, which makes a run reproducible
bit-for-bit with its ``seed`` on the same machine.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from labelmend.train.data import load_training_data

import labelmend
from labelmend import registry
from labelmend import run_format as rf
from labelmend._atomic import commit_directory, write_json
from labelmend.errors import ClusterError, DataError
from labelmend.run_format import DEFAULT_VAL_FRACTION, ModelRecord, RunRecord

TRUSTED_WARNING_PER_CLASS = 50  # fewer trusted labels per class: T's rows have standard errors above ~0.07
CALIBRATION_IMAGES = 512  # training images kept in the run for int8 calibration at export
CONFIG_JSON = "config.json"      # in the partial directory: the settings, so --resume needs nothing else
PROGRESS_JSON = "progress.json"  # in the partial directory: the records of the models finished so far
PRED_PROBS_PARTIAL = "judge_probs.npy"  # in the partial directory: the judging model's probabilities, all images


def _log(msg: str) -> None:
    print(f"[labelmend] {msg}", file=sys.stderr, flush=True)


def partial_dir(out_dir: str | os.PathLike) -> Path:
    """The hidden working directory of a run in progress; it becomes ``out_dir`` only when the run completes."""
    out = Path(out_dir)
    return out.with_name(f".{out.name}.partial")


def train(data_dir: str | os.PathLike | None, out_dir: str | os.PathLike, *, models=registry.MODEL_NAMES,
          time_budget_s: float = 1800, seed: int = 0, val_fraction: float = DEFAULT_VAL_FRACTION,
          epochs: float | None = None, width: int | None = None, precision: str = "auto", progress: bool = True,
          resume: bool = False, class_names: str | os.PathLike | None = None) -> RunRecord:
    """Train ``models`` on the data in ``data_dir``; write the run to ``out_dir``; return its record.

    Work happens in :func:`partial_dir` (finished models and per-epoch checkpoints land there as they are made) and
    is renamed to ``out_dir`` at the end, so ``out_dir`` is always either the previous complete run or the new one.
    ``resume=True`` continues the interrupted run of ``out_dir`` with its saved settings (``data_dir`` may be None):
    finished models and epochs are not redone; the remaining planned steps run without a deadline.
    """
    from labelmend.train import distribute
    from labelmend.train.reports import write_summary
    from labelmend.train.task import Split, chosen_on_these_images

    t_start = time.monotonic()
    resume_path = str(out_dir)  # what every worker passes to --resume
    if distribute.n_workers() > 1 and not distribute.is_chief():  # every worker trains; the chief's is the run
        out_dir = Path(f"{out_dir}.worker{distribute.worker_index()}")
    work = partial_dir(out_dir)
    config = _read_config(work, out_dir) if resume else _check_config(
        data_dir, models=models, time_budget_s=time_budget_s, seed=seed, val_fraction=val_fraction, epochs=epochs,
        width=width, precision=precision, class_names=class_names)
    try:  # a bad --precision or LABELMEND_PRECISION stops here, before any work
        from labelmend.train.cnn import dtype_policy

        dtype_policy(config.get("precision", "auto"))
    except ValueError as exc:
        raise DataError(str(exc)) from None
    if distribute.n_workers() > 1 and config["epochs"] is None:
        raise DataError("several workers (TF_CONFIG) train in lockstep: give --epochs instead of a time budget")
    data = load_training_data(config["data_dir"], progress=progress, class_names=config.get("class_names_file"))
    _log(f"loaded {len(data.images)} images ({data.layout.replace('_', ' ')} layout), {data.n_clean} clean labels"
         + (f", {len(data.verified_index)} verified labels" if len(data.verified_index) else "")
         + f" in {time.monotonic() - t_start:.1f} s")
    from labelmend.runtime.images import CONVERSIONS

    for kind, seen in data.conversions.items():
        _log(f"{seen['count']} {CONVERSIONS[kind]} (e.g. {', '.join(seen['examples'][:3])})")
    split = Split.make(data.n_clean, val_fraction=config["val_fraction"], seed=config["seed"])
    cnns = [m for m in config["models"] if m != registry.BASELINE]
    _check_data(data, split, cnns, data_dir=config["data_dir"])
    if not resume:
        shutil.rmtree(work, ignore_errors=True)  # an abandoned interrupted run is replaced by a fresh one
        (work / rf.REPORTS).mkdir(parents=True)
        write_json(work / CONFIG_JSON, config)
    progress_file = work / PROGRESS_JSON
    done = rf.read_partial_state(progress_file)
    record = (RunRecord.from_dict(done, source=str(progress_file)) if done is not None else RunRecord(
        labelmend_version=labelmend.__version__, seed=config["seed"], data_dir=config["data_dir"],
        n_images=int(len(data.images)), n_clean=int(data.n_clean), n_verified=int(len(data.verified_index)),
        data_layout=data.layout, image_conversions=data.conversions,
        split=split.as_dict(), class_names=list(data.class_names), trusted_warning_per_class=TRUSTED_WARNING_PER_CLASS,
        validation_chose_defaults=chosen_on_these_images(data.noisy_labels, data.clean_labels, seed=config["seed"],
                                                         val_fraction=config["val_fraction"]),
        time_budget_s=config["time_budget_s"], git_revision=rf.git_revision(Path(__file__).parent),
        library_versions=rf.library_versions()))

    def save_progress():
        rf.write_run(progress_file, record)

    _save_export_inputs(work, data, split, seed=config["seed"])
    if registry.BASELINE in config["models"] and registry.BASELINE not in record.models:
        from labelmend.train.baseline import train_baseline

        record.models[registry.BASELINE] = baseline = train_baseline(data, split, work)
        _log(f"baseline: validation accuracy {baseline.validation['accuracy']} ({baseline.seconds:.1f} s)")
        save_progress()
    if cnns:
        try:
            _train_cnns(data, split, cnns, work, record, save_progress, t_start=t_start, config=config,
                        progress=progress, resume=resume)
        except Exception as exc:
            if distribute.n_workers() <= 1 or not distribute.is_lost_worker(exc):
                raise
            raise ClusterError(distribute.lost_worker_message(
                exc, where=_where(work, record, cnns, resume_path=resume_path), resume_path=resume_path)) from exc
    if _judge_labels(data, split, record, work):
        save_progress()
    from labelmend.train.task import paired_comparisons

    record.comparisons = paired_comparisons(record.models, data.clean_labels[split.val])
    record.total_seconds = time.monotonic() - t_start
    record.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    write_summary(record, work / rf.REPORTS / rf.REPORT_MD)
    rf.write_run(work / rf.RUN_JSON, record)
    for leftover in (CONFIG_JSON, PROGRESS_JSON, rf.CHECKPOINTS):
        target = work / leftover
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
    commit_directory(work, Path(out_dir))
    _log(f"run written to {out_dir} in {record.total_seconds:.0f} s")
    return record


def _check_config(data_dir, *, models, time_budget_s, seed, val_fraction, epochs, width, precision,
                  class_names) -> dict:
    """The settings of a new run (saved, so --resume needs nothing else), checked."""
    unknown = [m for m in models if m not in registry.MODEL_NAMES]
    if unknown:
        raise DataError(f"unknown model {unknown[0]!r}; choose from {', '.join(registry.MODEL_NAMES)}")
    if data_dir is None:
        raise DataError("no --data folder given")
    if time_budget_s <= 0:
        raise DataError(f"--time-budget must be positive, got {time_budget_s}")
    return {"data_dir": str(Path(data_dir).resolve()), "models": list(models), "time_budget_s": time_budget_s,
            "seed": seed, "val_fraction": val_fraction, "epochs": epochs, "width": width, "precision": precision,
            "class_names_file": str(Path(class_names).resolve()) if class_names else None}


def _read_config(work: Path, out_dir) -> dict:
    """The settings of the interrupted run being resumed."""
    config = rf.read_partial_state(work / CONFIG_JSON)
    if config is None:
        raise DataError(f"{out_dir}: no interrupted run to resume (no {work / CONFIG_JSON})")
    _log(f"resuming {out_dir} from {work}")
    return config


def _check_data(data, split, cnns, *, data_dir) -> None:
    """Stop on data no model can learn from; warn where the figures will be weak."""
    if cnns and len(split.val) == 0:
        _log("warning: no clean labels held out, so the CNNs' validation accuracy cannot be measured")
    absent = sorted(set(range(data.n_classes)) - set(np.unique(data.noisy_labels).tolist()))
    if absent:
        raise DataError(f"{Path(data_dir) / 'noisy_labels.csv'}: class {data.class_names[absent[0]]!r} "
                        f"(label {absent[0]}) never occurs; every one of the {data.n_classes} classes needs examples")
    n_trusted = len(split.train_clean)
    if any(registry.METHODS[m].uses_clean_labels for m in cnns) and \
            n_trusted < TRUSTED_WARNING_PER_CLASS * data.n_classes:
        _log(f"warning: {n_trusted} trusted training labels (< {TRUSTED_WARNING_PER_CLASS} per class): "
             "estimates built on them (such as a noise transition matrix) will be rough")


def _save_export_inputs(work: Path, data, split, *, seed: int) -> None:
    """The images export needs from the run: parity checks, int8 validation and int8 calibration."""
    parity = split.val[:256] if len(split.val) else np.arange(min(256, len(data.images)))
    np.save(work / rf.PARITY_IMAGES, data.images[parity])
    np.savez(work / rf.VALIDATION, images=data.images[split.val], labels=data.clean_labels[split.val])
    pool = split.training_images(len(data.images))
    calibration = np.random.default_rng(seed).choice(pool, size=min(CALIBRATION_IMAGES, len(pool)), replace=False)
    np.save(work / rf.CALIBRATION, data.images[np.sort(calibration)])


def _where(work: Path, record: RunRecord, cnns, *, resume_path: str) -> str:
    """Where training stood: the model and stage being trained and the checkpoint `--resume` will continue from,
    the newest every worker holds (read from the other workers' run folders where this machine sees them)."""
    from labelmend.train import distribute
    from labelmend.train.loop import read_checkpoint_state

    todo = [m for m in cnns if m not in record.models]
    if not todo:
        return "the work after training"
    states = sorted((work / rf.CHECKPOINTS / todo[0]).glob("*.json"), key=lambda p: p.stat().st_mtime)
    if not states:
        return f"{todo[0]}, before its first checkpoint"
    stage = states[-1].stem
    newest = read_checkpoint_state(states[-1].with_suffix(""))
    mine = [newest, *newest.get("previous", [])]
    common, unseen = mine[0]["step"], []
    for task, folder in distribute.run_dirs(resume_path).items():
        if task == distribute.me():
            continue
        other = read_checkpoint_state(partial_dir(folder) / rf.CHECKPOINTS / todo[0] / stage)
        if other is None:
            unseen.append(task)
        else:
            common = min(common, other["step"])
    chosen = next((s for s in mine if s["step"] == common), mine[0])
    where = (f"{todo[0]} (stage {stage}), last checkpoint every worker holds at step {chosen['step']}, "
             f"epoch {chosen['epoch']:g}")
    if unseen and len(mine) > 1 and chosen is mine[0]:  # lockstep: a lost worker saved this step or the one before
        where += (f" (or step {mine[1]['step']}, epoch {mine[1]['epoch']:g}, if {', '.join(unseen)} had not saved "
                  "the newest)")
    return where


def judging_model(cnns) -> str | None:
    """The CNN whose final network judges every label: the default model when trained, else the last CNN."""
    cnns = list(cnns)
    return None if not cnns else registry.DEFAULT_MODEL if registry.DEFAULT_MODEL in cnns else cnns[-1]


def _judge_labels(data, split, record: RunRecord, work: Path) -> str | None:
    """label_issues.csv, corrected_labels.csv, review_queue.csv, pred_probs.npy and the gallery, from the judging
    model's probabilities (saved when it finished); returns its name (None without a CNN)."""
    from labelmend.train import label_issues

    partial = work / PRED_PROBS_PARTIAL
    judge = judging_model(record.cnn_names())
    if judge is None or not partial.is_file():
        return None
    transition = record.models[judge].training.get("transition_matrix")
    record.label_issues = label_issues.judge_run(
        np.load(partial), data, split, transition=None if transition is None else np.asarray(transition),
        judged_by=judge, folder=work, reports=work / rf.REPORTS)
    partial.unlink()
    _log(label_issues.log_line(record.label_issues, n_labels=len(data.noisy_labels)))
    return judge


def _replanner(record: RunRecord, save_progress, strategy, *, cnns_end: float, n_models: int,
               seconds_per_pass: float):
    """The first CNN's ``replan`` (:func:`labelmend.train.loop.fit`): the step count every CNN gets, planned again
    from the first one's measured pace so that all end by ``cnns_end``; each later model also judges every image
    once (``seconds_per_pass``). Every worker takes the smallest plan, and the record keeps it for --resume."""
    from labelmend.train import budget, distribute

    def replan(steps_done: int, seconds_per_step: float) -> int:
        steps = budget.replan_cnn_steps(seconds_left=cnns_end - time.monotonic(), steps_done=steps_done,
                                        seconds_per_step=seconds_per_step, n_models=n_models,
                                        seconds_per_later_model=seconds_per_pass)
        steps = distribute.agree_min(strategy, min(steps, int(record.cnn_steps * budget.REPLAN_MAX_GROWTH)))
        _log(f"{seconds_per_step:.3f} s/step over the first {budget.REPLAN_STEPS} steps (calibrated "
             f"{record.seconds_per_step:.3f}): {steps} steps each instead of {record.cnn_steps}")
        record.cnn_steps, record.seconds_per_step = steps, seconds_per_step
        save_progress()
        return steps

    return replan


def _train_cnns(data, split, cnns, work: Path, record: RunRecord, save_progress, *, t_start, config, progress,
                resume) -> None:
    from labelmend.train import budget, cnn, distribute
    from labelmend.train.loop import Trainer
    from labelmend.train.reports import plot_training_curves
    from labelmend.train.task import Task

    device = distribute.configure_tensorflow(config["seed"])
    strategy = distribute.make_strategy()
    # a model is done once every worker has it (one worker can be lost between finishing it and recording it)
    done = distribute.agree_min(strategy, next((i for i, m in enumerate(cnns) if m not in record.models),
                                               len(cnns)))
    todo = cnns[done:]
    if not todo:
        return
    hyp = record.hyperparameters or cnn.hyperparameters()
    hyp["net"]["width"] = config["width"] or (hyp["net"]["gpu_width"] if device == "gpu" else hyp["net"]["width"])
    hyp["net"]["precision"] = config.get("precision", "auto")
    trainer = Trainer(hyp=hyp, seed=config["seed"], progress=progress, strategy=strategy, device=device)
    n = len(data.images)
    n_train = n - len(split.val)  # the CNNs train on all but the validation images
    per_model_s = None
    if record.cnn_steps is not None:  # resuming: the plan is fixed, finish it
        steps, sps = record.cnn_steps, record.seconds_per_step
    elif config["epochs"] is not None:
        steps, sps = budget.steps_for_epochs(n_train, config["epochs"], min(trainer.batch_size, n_train)), None
    else:
        sps, seconds_per_image = trainer.calibrate(data.images, data.n_classes)
        try:
            plan = budget.plan_cnn_steps(time_budget_s=config["time_budget_s"],
                                         elapsed_s=time.monotonic() - t_start, seconds_per_step=sps,
                                         n_models=len(cnns),
                                         after_s=seconds_per_image * n if judging_model(cnns) else 0.0)
        except budget.BudgetError as exc:
            raise DataError(str(exc)) from None
        # every worker timed its own steps: all take the smallest plan, or one would wait for steps the others skip
        steps, per_model_s = distribute.agree_min(strategy, plan.steps), plan.seconds_per_model
    record.device, record.distribution, record.cnn_steps = device, distribute.describe(strategy), steps
    record.seconds_per_step, record.hyperparameters, record.global_batch_size = sps, hyp, trainer.batch_size
    record.dtype_policy = trainer.policy
    save_progress()
    _log(f"CNNs on {device} ({record.distribution['strategy']}, {trainer.replicas} replica(s)): width "
         f"{hyp['net']['width']}, {trainer.policy}, {steps} steps each of {trainer.batch_size} images "
         f"({steps * trainer.batch_size / n_train:.1f} epochs)" + (f", {sps:.3f} s/step measured" if sps else ""))
    task = Task(data.images, data.noisy_labels, data.clean_labels, split, n_classes=data.n_classes,
                verified_index=data.verified_index, verified_labels=data.verified_labels)
    judge = judging_model(cnns)
    t_cnns = time.monotonic()
    if per_model_s is not None:
        trainer.replan = _replanner(record, save_progress, strategy, cnns_end=t_cnns + len(todo) * per_model_s,
                                    n_models=len(todo), seconds_per_pass=seconds_per_image * n)
    for i, name in enumerate(todo):
        # model i must be done by the end of its slot, so an overrun never eats the next model's time
        trainer.deadline = None if per_model_s is None or resume else t_cnns + (i + 1) * per_model_s
        trainer.checkpoints = work / rf.CHECKPOINTS / name
        trainer.checkpoints.mkdir(parents=True, exist_ok=True)
        method = registry.METHODS[name]
        model, rep = method.trainer()(task, trainer, steps=steps)
        cnn.float32_copy(model).save(work / registry.model_file(name))  # what export converts and ships
        if name == judge:  # its verdict on every label (label_issues.py), kept for after the last model
            np.save(work / PRED_PROBS_PARTIAL, trainer.predict_proba(model, data.images))
        plot_training_curves(rep["history"], work / rf.REPORTS / f"curves_{name}.png",
                             title=f"{name}: {rep['steps']} steps, {rep['seconds']:.0f} s")
        validation = dict(rep["validation"])
        record.models[name] = ModelRecord(
            file=registry.model_file(name), seconds=rep["seconds"],
            validation_predicted=validation.pop("predicted", None), validation=validation,
            training={**{k: v for k, v in rep.items() if k not in ("validation", "seconds")},
                      "method": method.module.rsplit(".", 1)[-1], "method_hyperparameters": method.hyperparameters(),
                      "width": hyp["net"]["width"], "dtype_policy": trainer.policy, "device": device,
                      "flip_tta": hyp["eval"]["flip_tta"],
                      "clean_labels_used": "train split only" if method.uses_clean_labels else "none",
                      "validation_images": "held out entirely (neither clean nor noisy label trained on)"})
        save_progress()
        _log(f"{name}: validation accuracy {rep['validation']['accuracy']} "
             f"({rep['seconds']:.0f} s, {rep['steps']} steps)")
        steps, trainer.replan = record.cnn_steps, None  # the first model's re-plan holds for every later one
