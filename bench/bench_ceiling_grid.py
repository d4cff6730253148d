"""Accuracy per CPU-second of network variants: the ceiling (true labels) on the client's clean-labelled images.

The 10,000 images with clean labels are split by seed into 9,000 training and 1,000 validation images; each network
trains on the 9,000 *clean* labels (the ceiling's regime: no noise, so only the network and its steps differ) through
the shipped :class:`~labelmend.train.loop.Trainer` loop, and is scored with flip TTA on the 1,000. Give each network
the steps the same seconds buy it — its img/s from ``bench_step_speed.py`` times the base's steps — so the table
compares accuracy per CPU-second; each row also prints the seconds it took::

    python bench/bench_ceiling_grid.py --data ../shared/data/seed --seeds 1,2 --net 7392c46:450 --net tree:555

``--net NAME:STEPS`` (repeatable): NAME is a git revision (``train/cnn.py`` as it was), ``tree`` (the working
tree's network) or ``patchify`` (the working tree's network with a 2×2 stride-2 whitening stem and no first pooling:
every map after the stem is 16×16; measured and not kept, see BENCHMARKS.md). Rows append to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_ablation import append_row  # noqa: E402
from bench_step_speed import load_network_builder  # noqa: E402


def make_patchify(images, *, n_classes, width, seed, policy):
    """The working tree's network with a stride-2 stem: 2×2 whitening filters (all 12 dimensions, ±) applied to
    non-overlapping patches, so the first block runs at 16×16 and the 32×32 passes disappear."""
    import keras
    from keras import layers
    from labelmend.bundle_format import IMAGE_SHAPE
    from labelmend.train import cnn

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(IMAGE_SHAPE, name="images")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="scale", dtype=policy)(inputs)
    whiten = layers.Conv2D(24, 2, strides=2, use_bias=False, trainable=False, name="prep_conv", dtype=policy)
    x = whiten(x)
    whiten.kernel.assign(cnn.whitening_filters(images, 24, patch=2))
    x = cnn._batch_norm("prep_bn", policy)(x)
    x = layers.ReLU(name="prep_relu", dtype=policy)(x)
    x = cnn._conv_bn_relu(x, 2 * width, "layer1", policy)
    r = cnn._conv_bn_relu(cnn._conv_bn_relu(x, 2 * width, "res1a", policy), 2 * width, "res1b", policy)
    x = layers.Add(name="res1", dtype=policy)([x, r])
    x = cnn._conv_bn_relu(x, 4 * width, "layer2", policy, pool="pool2")
    x = cnn._conv_bn_relu(x, 8 * width, "layer3", policy, pool="pool3")
    r = cnn._conv_bn_relu(cnn._conv_bn_relu(x, 8 * width, "res3a", policy), 8 * width, "res3b", policy)
    x = layers.Add(name="res3", dtype=policy)([x, r])
    x = layers.GlobalMaxPooling2D(name="pool", dtype=policy)(x)
    x = layers.Rescaling(cnn.HYP["net"]["logit_scale"], name="logit_scale", dtype=policy)(x)
    model = keras.Model(inputs, layers.Dense(n_classes, name="logits", dtype="float32")(x), name="patchify")
    cnn.dirac_init(model, skip=("prep_conv",))
    return model


def builder(name: str):
    if name == "patchify":
        return make_patchify
    return load_network_builder(None if name == "tree" else name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--net", action="append", required=True, metavar="NAME:STEPS")
    ap.add_argument("--seeds", default="1,2", help="comma-separated; each seed its own split (never seed 0's)")
    ap.add_argument("--width", type=int, default=None, help="network width (default: the shipped one)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/ceiling_grid.jsonl"))
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    from labelmend.train.distribute import configure_tensorflow

    configure_tensorflow(0)
    from labelmend.train import cnn
    from labelmend.train.data import load_training_data
    from labelmend.train.inputs import TrainingTargets
    from labelmend.train.loop import WARM_UP_STEPS, Trainer
    from labelmend.train.task import Split

    data = load_training_data(args.data, progress=False)
    k, width = data.n_classes, args.width or cnn.HYP["net"]["width"]
    smoothing = cnn.HYP["opt"]["label_smoothing"]
    print("| network | seed | steps | validation accuracy (ceiling) | seconds | s/step |\n|---|---|---:|---:|---:|---:|")
    for seed in (int(s) for s in args.seeds.split(",")):
        split = Split.make(data.n_clean, val_fraction=0.1, seed=seed)
        images, labels = data.images[split.train_clean], data.clean_labels[split.train_clean]
        targets = TrainingTargets(images, cnn.one_hot(labels, k, smoothing=smoothing), np.zeros(len(labels), bool))
        for spec in args.net:
            name, _, steps = spec.rpartition(":")
            configure_tensorflow(seed)
            trainer = Trainer(seed=seed, progress=False)
            model = builder(name)(images, n_classes=k, width=width, seed=seed, policy=trainer.policy)
            t0 = time.monotonic()
            hist = trainer.fit(model, targets, steps=int(steps), name="ceiling", desc="ceiling")
            acc = float(np.mean(trainer.predict_proba(model, data.images[split.val]).argmax(1)
                                == data.clean_labels[split.val]))
            row = {"network": name, "seed": seed, "steps": int(steps), "width": width, "val_accuracy": acc,
                   "seconds": round(time.monotonic() - t0, 1),
                   "seconds_per_step": hist.warm_seconds / max(1, hist.steps - WARM_UP_STEPS)}
            append_row(args.out, row)
            print(f"| {name} | {seed} | {steps} | {acc:.4f} | {row['seconds']:.0f} | "
                  f"{row['seconds_per_step']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
