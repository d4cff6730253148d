"""The peer a user would reach for: cleanlab's documented workflow with labelmend's network, in Model II's budget.

1. Out-of-sample ``pred_probs`` for every training image by K-fold cross-validation: K networks of labelmend's
   recipe (Model I's loss: cross-entropy with label smoothing), each trained on the other folds' images; a trusted
   image is given its clean label, as a user would, every other image its noisy label.
2. ``cleanlab.filter.find_label_issues(labels, pred_probs)`` (its defaults).
3. A fresh network trained on the images not flagged (trusted ones always kept), scored on the validation images.

The K fold networks share ``--cv-frac`` of ``--steps`` and the retraining gets the rest, so the whole workflow costs
what Model II's ``--steps`` cost. Same data, split and seed rules as ``bench_ablation.py`` and the same row format in
the same file, so ``compare_ablation.py`` pairs it with a Model II row of the same seed::

    python bench/bench_cleanlab_workflow.py --data ../shared/data/seed --steps 1600 --val-fraction 0.2 --seed 1 \\
        --out bench/results/full_scale.jsonl

Needs ``pip install cleanlab`` (a benchmark tool, not a labelmend dependency).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=1600, help="SGD steps of the whole workflow (global batch 256)")
    ap.add_argument("--folds", type=int, default=2, help="cross-validation folds")
    ap.add_argument("--cv-frac", type=float, default=0.6, help="share of the steps the fold networks get together")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--label", default="cleanlab-workflow")
    ap.add_argument("--out", type=Path, default=Path("bench/results/full_scale.jsonl"))
    args = ap.parse_args()

    from bench_ablation import append_row
    from cleanlab.filter import find_label_issues
    from labelmend.train.cnn import one_hot
    from labelmend.train.data import load_training_data
    from labelmend.train.distribute import configure_tensorflow
    from labelmend.train.inputs import TrainingTargets
    from labelmend.train.label_issues import flag_quality
    from labelmend.train.loop import Trainer
    from labelmend.train.task import Split, Task

    configure_tensorflow(args.seed)
    data = load_training_data(args.data, progress=False)
    split = Split.make(data.n_clean, val_fraction=args.val_fraction, seed=args.seed)
    task = Task(data.images, data.noisy_labels, data.clean_labels, split, n_classes=data.n_classes)
    trainer = Trainer(seed=args.seed, progress=False)
    k, train, smoothing = task.n_classes, task.train, trainer.hyp["opt"]["label_smoothing"]
    given = data.noisy_labels.copy()
    given[split.train_clean] = data.clean_labels[split.train_clean]
    trusted = np.zeros(len(given), bool)
    trusted[split.train_clean] = True
    t0 = time.monotonic()

    fold = np.random.default_rng(args.seed).permutation(len(train)) % args.folds
    pred_probs = np.zeros((len(train), k), np.float32)
    fold_steps = max(1, round(args.steps * args.cv_frac / args.folds))
    for f in range(args.folds):
        rows = train[fold != f]
        net = trainer.model(k, data.images[rows])
        trainer.fit(net, TrainingTargets(data.images[rows], one_hot(given[rows], k, smoothing=smoothing),
                                         np.zeros(len(rows), bool)),
                    steps=fold_steps, name=f"fold{f}", desc=f"fold {f + 1}/{args.folds}", seed_offset=f)
        pred_probs[fold == f] = trainer.predict_proba(net, data.images[train[fold == f]])
    issues = find_label_issues(given[train], pred_probs) & ~trusted[train]

    keep = train[~issues]
    final_steps = args.steps - fold_steps * args.folds
    model = trainer.model(k, data.images[keep])
    trainer.fit(model, TrainingTargets(data.images[keep], one_hot(given[keep], k, smoothing=smoothing),
                                       np.zeros(len(keep), bool)),
                steps=final_steps, name="retrain", desc="retrain on the rest", seed_offset=args.folds)
    seconds = time.monotonic() - t0
    val_images, val_labels = task.val
    predicted = trainer.predict_proba(model, val_images).argmax(axis=1)
    noisy_only = ~trusted[train]
    row = {"label": args.label, "model": "cleanlab workflow", "steps": args.steps, "seed": args.seed,
           "set": [f"folds={args.folds}", f"cv_frac={args.cv_frac}"], "method_set": [],
           "val_accuracy": float(np.mean(predicted == val_labels)), "n_val": int(len(val_labels)),
           "seconds": seconds, "label_issues": {"flagged_training_images": int(issues.sum()),
                                                "of": int(noisy_only.sum()), "folds": args.folds},
           "judgment": flag_quality(data.noisy_labels[split.val], predicted, val_labels),
           "val_indices": split.val.tolist(), "val_predictions": predicted.tolist()}
    append_row(args.out, row)
    print(f"| {args.label} | {args.steps} | {args.seed} | {row['val_accuracy']:.4f} | "
          f"flagged {int(issues.sum()):,} of {int(noisy_only.sum()):,} | {seconds:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
