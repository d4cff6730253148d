"""Paired comparison of ``bench_ablation.py`` rows: a variant against a base on the same validation images.

For every seed where both labels have a row on the same split, the variant's accuracy minus the base's, image by
image (:func:`~labelmend.train.task.paired_difference`: only the images exactly one of them gets right count), with
its paired standard error; beside it each row's label judgment on the validation images (F1 of "predicted ≠ given"
against the clean labels, and how often the suggested label is right where the given one is wrong). Then the mean
over seeds with its standard error (the seeds' paired errors combined) and the seeds' spread::

    python bench/compare_ablation.py --rows bench/results/full_scale.jsonl --base shipped --variant cleanlab-workflow

Rows pair only at the same step count unless ``--across-steps`` is given (what more steps buy the same recipe).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=Path, default=Path("bench/results/ablation.jsonl"))
    ap.add_argument("--base", required=True, help="label of the base rows")
    ap.add_argument("--variant", required=True, action="append", help="label(s) of the variant rows")
    ap.add_argument("--across-steps", action="store_true",
                    help="also pair rows whose step counts differ (to measure what more steps buy)")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/seed"), help="for the clean labels")
    args = ap.parse_args()

    from labelmend.folders import read_labels
    from labelmend.train.reports import fmt
    from labelmend.train.task import paired_difference

    clean = read_labels(args.data / "clean_labels.csv")
    rows = [json.loads(line) for line in args.rows.read_text(encoding="utf-8").splitlines() if line.strip()]

    def latest(label: str) -> dict:
        """label's newest row per (seed, split)."""
        return {(r["seed"], tuple(r["val_indices"])): r for r in rows if r["label"] == label}

    base = latest(args.base)
    print("| variant | seed | steps | base accuracy | variant accuracy | paired difference ± s.e. | base F1 / "
          "suggested right | variant F1 / suggested right |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label in args.variant:
        diffs, errors = [], []
        for key, v in sorted(latest(label).items()):
            b = base.get(key)
            if b is None or (b["steps"] != v["steps"] and not args.across_steps):
                continue
            truth = clean[np.asarray(v["val_indices"])]
            d = paired_difference(b["val_predictions"], v["val_predictions"], truth)
            diffs.append(d["difference"])
            errors.append(d["standard_error"])
            judged = [f"{fmt(r.get('judgment', {}).get('f1'))} / "
                      f"{fmt(r.get('judgment', {}).get('suggested_right_where_given_wrong'))}" for r in (b, v)]
            steps = v["steps"] if v["steps"] == b["steps"] else f"{b['steps']} → {v['steps']}"
            print(f"| {label} | {key[0]} | {steps} | {b['val_accuracy']:.4f} | {v['val_accuracy']:.4f} | "
                  f"{100 * d['difference']:+.2f} ± {100 * d['standard_error']:.2f} | {judged[0]} | {judged[1]} |")
        if len(diffs) > 1:
            se = np.sqrt(np.sum(np.square(errors))) / len(errors)
            print(f"| **{label}, mean of {len(diffs)} seeds** | | | | | **{100 * np.mean(diffs):+.2f} ± "
                  f"{100 * se:.2f}** (seeds {', '.join(f'{100 * x:+.2f}' for x in diffs)}) | | |")


if __name__ == "__main__":
    main()
