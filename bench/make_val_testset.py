"""Lay out a run's validation images as a client test folder, to evaluate a full-data bundle honestly.

The validation images of a run were held out of CNN training (their clean labels were never used), so scoring the
bundle on them in the client's test layout is the closest thing to the client's own held-out test set:

    python bench/make_val_testset.py --data ../shared/data/seed --run RUN --out VALTEST
    labelmend evaluate --bundle BUNDLE --test-data VALTEST
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from labelmend.train.data import CLEAN_CSV, TEST_CSV, TEST_IMAGES, TRAIN_IMAGES, read_labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the training data folder the run used")
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    val = json.loads((args.run / "run.json").read_text())["split"]["val_indices_1based"]
    clean = read_labels(args.data / CLEAN_CSV)
    (args.out / TEST_IMAGES).mkdir(parents=True, exist_ok=False)
    for j, i in enumerate(val, start=1):
        shutil.copyfile(args.data / TRAIN_IMAGES / f"{i:05d}.png", args.out / TEST_IMAGES / f"test{j:05d}.png")
    (args.out / TEST_CSV).write_text("".join(f"{clean[i - 1]}\n" for i in val))
    print(f"{len(val)} validation images of {args.run} → {args.out}")


if __name__ == "__main__":
    main()
