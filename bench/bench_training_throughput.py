"""Training throughput of the training loop against an earlier revision's, side by side in one process.

Both loops train the same width-16 network on the same 12,800 images for the same number of steps, alternating
(old, new, new, old, ...) so that machine noise and drift hit both alike. Reports images per second (after the warm-up
steps that trace the graph), the network's FLOPs per trained image (counted from its layers: 2 FLOPs per
multiply-add, backward ≈ 2× forward), the GFLOP/s that makes, and its share of this CPU's fp32 matrix-product peak
(numpy sgemm, measured in the same run):

    python bench/bench_training_throughput.py --old cd97136 --steps 40 --rounds 3

``--old`` is a git revision whose ``train/cnn.py`` still holds the numpy-indexing ``fit`` (the loop before the
tf.data / tf.distribute engine, e.g. cd97136).
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

from bench_step_speed import cnn_at, forward_macs  # noqa: E402


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 matrix-product rate of numpy (the BLAS it links) on this machine."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.T.copy()
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", default="cd97136", help="git revision of the loop to compare against")
    ap.add_argument("--steps", type=int, default=40, help="steps per timed fit (3 of them warm up)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating (old, new) rounds")
    ap.add_argument("--images", type=int, default=12800)
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    from labelmend.train.distribute import configure_tensorflow

    configure_tensorflow(0)
    from labelmend.train import cnn
    from labelmend.train.inputs import TrainingTargets
    from labelmend.train.loop import WARM_UP_STEPS, Trainer

    old = cnn_at(args.old)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
    targets = cnn.one_hot(rng.integers(0, 10, args.images), 10, smoothing=0.1)
    forward = np.zeros(args.images, bool)
    hyp = cnn.hyperparameters()
    bs = hyp["opt"]["batch_size"]
    timed = args.steps - WARM_UP_STEPS
    rates = {"old": [], "new": []}
    def run_old(r):
        hist = old.fit(old.make_model(seed=r), old.TrainingTargets(images, targets, forward), steps=args.steps,
                       seed=r, hyp=hyp, progress=False)
        rates["old"].append(timed * bs / hist.warm_seconds)

    def run_new(r):
        trainer = Trainer(hyp=hyp, seed=r, progress=False)
        hist = trainer.fit(trainer.model(10, images), TrainingTargets(images, targets, forward), steps=args.steps,
                           name="bench", desc="bench")
        rates["new"].append(timed * bs / hist.warm_seconds)

    for r in range(args.rounds):  # the order alternates too, so a drifting machine favours neither
        for run in ((run_old, run_new) if r % 2 == 0 else (run_new, run_old)):
            run(r)
        print(f"round {r + 1}: old {rates['old'][-1]:.0f} img/s, new {rates['new'][-1]:.0f} img/s", flush=True)
    peak = sgemm_gflops()
    network = cnn.make_model(images, n_classes=10)
    flops = 6 * forward_macs(network)  # forward 2 FLOPs/MAC, backward ≈ 2× forward
    print(f"\nnetwork: {forward_macs(network) / 1e6:.1f} M multiply-adds per image forward; "
          f"{flops / 1e6:.0f} MFLOP per trained image; numpy sgemm peak {peak:.0f} GFLOP/s\n")
    print("| loop | img/s (median of rounds) | all rounds | GFLOP/s | share of sgemm peak | new / old |")
    print("|---|---|---|---|---|---|")
    med = {k: float(np.median(v)) for k, v in rates.items()}
    for name, label in (("old", f"numpy indexing ({args.old})"), ("new", "tf.data + tf.distribute")):
        gf = med[name] * flops / 1e9
        print(f"| {label} | {med[name]:.0f} | {', '.join(f'{x:.0f}' for x in rates[name])} | {gf:.0f} | "
              f"{gf / peak:.0%} | {med[name] / med['old']:.3f} |")


if __name__ == "__main__":
    main()
