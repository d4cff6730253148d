"""The client's images as a user's own class-folder set, end to end: train, judge the labels, evaluate, predict.

    python bench/bench_class_folders.py --data ../shared/data/seed --work /tmp/cf [--budget 15] [--trusted 2000]

Writes (under --work, outside the repo) a training set and a held-out test set in the class-folder layout:

- training: every image but 9001-10000, in the folder of its *noisy* label, as PNG or JPEG (quality 90, chosen at
  random) upscaled (Pillow bicubic) to a random size of 32-96 px per side; image 1 as a grayscale PNG; and
  ``clean_labels.csv`` with the clean labels of ``--trusted`` images drawn at random from images 1-9000;
- test: images 9001-10000 (never trained on), in the folder of their *clean* label, written the same way.

Then runs `labelmend train --time-budget`, `export`, `evaluate` on the test folders and `predict` on 50 test files,
and prints: the test accuracy of each model; the label judgment's precision / recall / F1 on the training images
whose clean label the run did not see (the clean-labelled images 1-9000 not in clean_labels.csv); and whether
`predict` agrees with `evaluate` on those 50 files.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CLASSES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TEST = range(9000, 10000)  # 0-based image indices held out as the test set


def write_image(src: Path, dst_folder: Path, rng, *, grayscale: bool = False) -> str:
    from PIL import Image

    h, w = (int(v) for v in rng.integers(32, 97, 2))
    with Image.open(src) as img:
        big = img.convert("RGB").resize((w, h), Image.BICUBIC)
    if grayscale:
        big = big.convert("L")
    ext = "png" if grayscale or rng.random() < 0.5 else "jpg"
    name = f"{src.stem}.{ext}"
    big.save(dst_folder / name, **({"quality": 90} if ext == "jpg" else {}))
    return f"{dst_folder.name}/{name}"


def build(data: Path, work: Path, n_trusted: int, seed: int) -> tuple[dict, dict]:
    """The two folders; returns {name: clean label} for the training images with a clean label, and for the test."""
    from labelmend.folders import read_labels

    noisy = read_labels(data / "noisy_labels.csv")
    clean = read_labels(data / "clean_labels.csv")
    rng = np.random.default_rng(seed)
    train, test = work / "train", work / "test"
    for root in (train, test):
        for c in CLASSES:
            (root / c).mkdir(parents=True, exist_ok=True)
    known, test_truth = {}, {}
    t = time.perf_counter()
    for i in range(len(noisy)):
        src = data / "images" / f"{i + 1:05d}.png"
        if i in TEST:
            test_truth[write_image(src, test / CLASSES[clean[i]], rng)] = int(clean[i])
            continue
        name = write_image(src, train / CLASSES[noisy[i]], rng, grayscale=i == 0)
        if i < len(clean):
            known[name] = int(clean[i])
    trusted = rng.choice(sorted(known), size=n_trusted, replace=False)
    (train / "clean_labels.csv").write_text("image,label\n" + "".join(
        f"{name},{CLASSES[known[name]]}\n" for name in sorted(trusted)), encoding="utf-8")
    print(f"wrote {len(noisy)} images in {time.perf_counter() - t:.0f} s", flush=True)
    return {n: c for n, c in known.items() if n not in set(trusted)}, test_truth


def cli(*args) -> None:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "labelmend", *map(str, args)], check=True)
    print(f"labelmend {args[0]} {args[1] if args[0] == '--quiet' else ''}: {time.perf_counter() - t:.0f} s", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "seed")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--budget", type=float, default=15)
    ap.add_argument("--trusted", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    unseen, test_truth = build(args.data, args.work, args.trusted, args.seed)
    run, bundle, evaluation = args.work / "run", args.work / "bundle", args.work / "evaluation"
    cli("--quiet", "train", "--data", args.work / "train", "--out", run, "--time-budget", args.budget)
    cli("--quiet", "export", "--run", run, "--bundle", bundle)
    cli("--quiet", "evaluate", "--bundle", bundle, "--test-data", args.work / "test", "--out", evaluation)
    metrics = json.loads((evaluation / "metrics.json").read_text())
    record = json.loads((run / "run.json").read_text())
    print(f"steps per CNN: {record['cnn_steps']} at {record['seconds_per_step']:.3f} s/step; layout "
          f"{record['data_layout']}; conversions {record['image_conversions']}")
    for m, v in metrics["models"].items():
        print(f"test accuracy {m}: {v['accuracy']:.4f} on {metrics['n_images']} class-folder test images")
    with open(run / "label_issues.csv", newline="", encoding="utf-8") as f:
        rows = {r["image"]: r for r in csv.DictReader(f)}
    given = np.array([CLASSES.index(rows[n]["given_label"]) for n in unseen])
    true = np.array([unseen[n] for n in unseen])
    flagged = np.array([rows[n]["is_label_issue"] == "True" for n in unseen])
    suggested = np.array([CLASSES.index(rows[n]["suggested_label"]) for n in unseen])
    wrong = given != true
    tp = int(np.sum(flagged & wrong))
    precision, recall = tp / max(1, flagged.sum()), tp / max(1, wrong.sum())
    print(f"label issues on the {len(unseen)} training images with an unseen clean label ({wrong.sum()} wrong): "
          f"precision {precision:.4f} recall {recall:.4f} F1 {2 * precision * recall / (precision + recall):.4f}; "
          f"suggested label right for {np.mean(suggested[wrong] == true[wrong]):.4f} of the wrong ones")
    with open(evaluation / "label_prediction.csv", newline="", encoding="utf-8") as f:
        evaluated = {r["image"]: int(r["model2"]) for r in csv.DictReader(f)}
    sample = sorted(evaluated)[:50]
    out = subprocess.run([sys.executable, "-m", "labelmend", "predict", "--bundle", str(bundle),
                          *(str(args.work / "test" / n) for n in sample)], check=True, capture_output=True, text=True)
    predicted = [int(line.split("\t")[1]) for line in out.stdout.splitlines()]
    agree = sum(p == evaluated[n] for p, n in zip(predicted, sample))
    print(f"predict agrees with evaluate on {agree} of {len(sample)} test files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
