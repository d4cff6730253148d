"""One row of the accuracy ablation (issue 9): a CNN method trained for a fixed number of steps with hyperparameter
overrides, scored on the default run's held-out clean images (1,000 of the client's; older rows held out 2,000).

Same data, split, seed and code path as ``labelmend train`` (``Split.make``, the registry's method,
:class:`~labelmend.train.loop.Trainer`), but a fixed step count instead of a time budget, so a row's accuracy does
not depend on how busy the machine was (its seconds do)::

    python bench/bench_ablation.py --data ../shared/data/seed --steps 700 --label base
    python bench/bench_ablation.py --data ../shared/data/seed --steps 700 --label w24 --set net.width=24

``--set GROUP.KEY=VALUE`` overrides :data:`labelmend.train.cnn.HYP` (``--method-set KEY=VALUE`` the method's own HYP);
values are JSON (``true``, ``64``, ``0.2``). Appends one JSON line per run to ``--out`` and prints a Markdown row.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from labelmend.train import cnn
from labelmend.train.data import load_training_data
from labelmend.train.label_issues import flag_quality
from labelmend.train.distribute import configure_tensorflow
from labelmend.train.loop import Trainer
from labelmend.train.reports import fmt
from labelmend.train.task import DEFAULT_VAL_FRACTION, Split, Task

from labelmend import registry


def parse_overrides(pairs: list[str], *, dotted: bool, known: dict | None = None) -> dict:
    """KEY=JSON pairs as a dict (GROUP.KEY=JSON as nested dicts when ``dotted``); a key not in ``known`` is refused,
    so a typo cannot silently run the defaults."""
    out: dict = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if known is not None and key not in known:
            raise SystemExit(f"unknown --method-set key {key!r}; keys: {', '.join(sorted(known))}")
        parsed = json.loads(value)
        if dotted:
            group, _, name = key.partition(".")
            out.setdefault(group, {})[name] = parsed
        else:
            out[key] = parsed
    return out


def append_row(path: Path, row: dict) -> None:
    """Append one JSON line to a results file (its folder made if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=700, help="SGD steps (global batch 256)")
    ap.add_argument("--model", default=registry.DEFAULT_MODEL, choices=[m for m in registry.METHODS])
    ap.add_argument("--label", required=True, help="the row's name")
    ap.add_argument("--set", action="append", default=[], metavar="GROUP.KEY=VALUE")
    ap.add_argument("--method-set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                    help=f"(default {DEFAULT_VAL_FRACTION:g}, as train; older rows of BENCHMARKS.md used 0.2)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/ablation.jsonl"))
    ap.add_argument("--save", type=Path, metavar="DIR",
                    help="also save the final network (DIR/model.keras) and the split (DIR/split.npz), for "
                         "offline analysis (bench_tta_views.py)")
    args = ap.parse_args()

    configure_tensorflow(args.seed)
    hyp = cnn.hyperparameters(**parse_overrides(args.set, dotted=True))
    data = load_training_data(args.data, progress=False)
    split = Split.make(data.n_clean, val_fraction=args.val_fraction, seed=args.seed)
    task = Task(data.images, data.noisy_labels, data.clean_labels, split, n_classes=data.n_classes)
    trainer = Trainer(hyp=hyp, seed=args.seed, progress=False)
    method = registry.METHODS[args.model]
    kwargs = {}
    if args.method_set:
        defaults = method.hyperparameters()
        kwargs["hyp_noise"] = {**defaults, **parse_overrides(args.method_set, dotted=False, known=defaults)}
    train = method.trainer()
    t0 = time.monotonic()
    model, report = train(task, trainer, steps=args.steps, **kwargs)
    seconds = time.monotonic() - t0
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        model.save(args.save / "model.keras")
        np.savez(args.save / "split.npz", val=split.val, train_clean=split.train_clean)
    val_images, _ = task.val
    predicted = trainer.predict_proba(model, val_images).argmax(axis=1)
    # the run's label judgment on images it never trained on: "predicted ≠ given" against the truth
    judgment = flag_quality(data.noisy_labels[split.val], predicted, data.clean_labels[split.val])
    row = {"label": args.label, "model": args.model, "steps": args.steps, "seed": args.seed, "set": args.set,
           "method_set": args.method_set, "val_accuracy": report["validation"]["accuracy"],
           "n_val": report["validation"]["n"], "seconds": seconds,
           "stages": report.get("stages"), "label_correction": {
               k: v for k, v in report.get("label_correction", {}).items() if not k.startswith("per_class")},
           "label_issues": report.get("label_issues"), "judgment": judgment, "val_indices": split.val.tolist(),
           "val_predictions": predicted.tolist()}
    append_row(args.out, row)
    print(f"| {args.label} | {args.model} | {args.steps} | {args.seed} | {fmt(row['val_accuracy'])} | "
          f"{fmt(judgment['f1'])} | {fmt(judgment['suggested_right_where_given_wrong'])} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
