"""A run's label judgment against the truth where the data has it, beside cleanlab on the same probabilities.

The images with clean labels are scored in two groups: the validation images (no network trained on them: what
report.md shows) and the trusted training images (the network trained on them, as on every image without a clean
label, so these stand for the images a user wants judged). For each: precision, recall and F1 of labelmend's flags
("the network's class ≠ the given label") and of ``cleanlab.filter.find_label_issues(noisy_labels, pred_probs)``
(default settings) on the run's ``pred_probs.npy``, and how often the suggested label is right where the given one is
wrong. Needs ``pip install cleanlab`` (a benchmark tool, not a labelmend dependency):

    python bench/bench_label_issues.py --data ../shared/data/seed --run RUN
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from labelmend.train import label_issues

from labelmend.folders import read_labels


def _prf(flagged: np.ndarray, wrong: np.ndarray) -> str:
    hits = int(np.sum(flagged & wrong))
    p, r = hits / max(1, flagged.sum()), hits / max(1, wrong.sum())
    return f"{p:.3f} / {r:.3f} / {2 * p * r / max(1e-12, p + r):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--run", type=Path, required=True)
    args = ap.parse_args()
    from cleanlab.filter import find_label_issues

    record = json.loads((args.run / "run.json").read_text(encoding="utf-8"))
    noisy = read_labels(args.data / "noisy_labels.csv")
    clean = read_labels(args.data / "clean_labels.csv")
    probs = np.load(args.run / label_issues.PRED_PROBS_NPY)
    predicted = probs.argmax(1)
    by_cleanlab = find_label_issues(noisy, probs)
    val = np.array(record["split"]["val_indices_1based"]) - 1
    trusted_train = np.setdiff1d(np.arange(len(clean)), val)
    print("| images | n | wrong labels | labelmend P / R / F1 | cleanlab P / R / F1 | suggested right where wrong |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, idx in (("validation (out of sample)", val), ("trusted training (in sample)", trusted_train)):
        wrong = noisy[idx] != clean[idx]
        ours = predicted[idx] != noisy[idx]
        right = float(np.mean(predicted[idx][wrong] == clean[idx][wrong]))
        print(f"| {name} | {len(idx):,} | {int(wrong.sum()):,} | {_prf(ours, wrong)} | "
              f"{_prf(by_cleanlab[idx], wrong)} | {right:.3f} |")


if __name__ == "__main__":
    main()
