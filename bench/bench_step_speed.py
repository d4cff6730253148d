"""Training-step speed of the network in the working tree against the one at earlier revisions, side by side.

Each network (``train/cnn.py`` at ``--rev``, and the working tree's) trains through the same
:class:`~labelmend.train.loop.Trainer` loop, input pipeline and batch on the same random images, alternating
(A, B, B, A, ...) so machine noise and drift hit all alike. Printed per precision: images per second after the
warm-up steps, FLOPs per trained image (counted from the layers: 2 per multiply-add, backward ≈ 2× forward), the
GFLOP/s that makes, and its ratio to this host's own rate for a 3×3 convolution (64→64 channels, 16×16, batch 256)
in the same precision, measured in the same run, so hosts compare as ratios::

    python bench/bench_step_speed.py --rev 7392c46 --precision float32,bfloat16
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent


def cnn_at(rev: str):
    """The module ``train/cnn.py`` as it was at git revision ``rev``."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:train/cnn.py"], check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"cnn_{rev}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"cnn_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def load_network_builder(rev: str | None):
    """``make_model`` of ``train/cnn.py`` at git revision ``rev`` (None: the working tree's)."""
    if rev is None:
        from labelmend.train import cnn

        return cnn.make_model
    return cnn_at(rev).make_model


def forward_macs(model) -> int:
    """Multiply-adds of one image's forward pass: convolutions and the classifier."""
    macs = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            h, w, c_out = layer.output.shape[1:]
            kh, kw, c_in, _ = layer.kernel.shape
            macs += h * w * c_out * kh * kw * c_in
        elif kind == "Dense":
            macs += int(np.prod(layer.kernel.shape))
    return int(macs)


def conv_gflops(precision: str, *, repeats: int = 10) -> float:
    """This host's best rate for TensorFlow's 3×3 convolution, 64→64 channels, 16×16, batch 256, forward."""
    import tensorflow as tf

    dtype = tf.bfloat16 if precision == "bfloat16" else tf.float32
    x = tf.cast(tf.random.stateless_normal([256, 16, 16, 64], seed=[0, 1]), dtype)
    k = tf.cast(tf.random.stateless_normal([3, 3, 64, 64], seed=[0, 2]), dtype)
    conv = tf.function(lambda: tf.nn.conv2d(x, k, 1, "SAME"))
    conv().numpy()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        conv().numpy()
        best = min(best, time.perf_counter() - t0)
    return 2 * 256 * 16 * 16 * 64 * 9 * 64 / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", action="append", default=[], help="git revision(s) whose network to compare")
    ap.add_argument("--precision", default="float32", help="comma-separated: float32, bfloat16")
    ap.add_argument("--steps", type=int, default=23, help="steps per timed fit (3 of them warm up)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    ap.add_argument("--width", type=int, default=None, help="network width (default: the shipped one)")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    from labelmend.train.distribute import configure_tensorflow

    configure_tensorflow(0)
    from labelmend.train import cnn
    from labelmend.train.inputs import TrainingTargets
    from labelmend.train.loop import WARM_UP_STEPS, Trainer

    names = [*args.rev, "working tree"]
    builders = {name: load_network_builder(None if name == "working tree" else name) for name in names}
    width = args.width or cnn.HYP["net"]["width"]
    batch = cnn.HYP["opt"]["batch_size"]
    rng = np.random.default_rng(0)
    n = batch * 16
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    data = TrainingTargets(images, cnn.one_hot(rng.integers(0, 10, n), 10, smoothing=0.1), np.zeros(n, bool))
    print(f"{os.cpu_count()} CPUs; native bfloat16: {cnn.native_bf16()}; width {width}, batch {batch}, "
          f"{args.steps - WARM_UP_STEPS} timed steps per fit\n")
    print("| network | precision | img/s (median) | all rounds | MFLOP per trained image | GFLOP/s | host conv "
          "GFLOP/s | step / conv | img/s vs first |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|")
    for precision in args.precision.split(","):
        hyp = cnn.hyperparameters(net={"precision": precision, "width": width})
        rates: dict[str, list[float]] = {name: [] for name in names}
        flops: dict[str, float] = {}
        for r in range(args.rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                trainer = Trainer(hyp=hyp, seed=r, progress=False)
                model = builders[name](images, n_classes=10, width=width, seed=r, policy=trainer.policy)
                flops[name] = 6 * forward_macs(model)
                hist = trainer.fit(model, data, steps=args.steps, name="speed", desc="speed")
                rates[name].append((args.steps - WARM_UP_STEPS) * batch / hist.warm_seconds)
        peak = conv_gflops(precision)
        first = float(np.median(rates[names[0]]))
        for name in names:
            med = float(np.median(rates[name]))
            gf = med * flops[name] / 1e9
            print(f"| {name} | {precision} | {med:.0f} | {', '.join(f'{x:.0f}' for x in rates[name])} | "
                  f"{flops[name] / 1e6:.0f} | {gf:.0f} | {peak:.0f} | {gf / peak:.1%} | {med / first:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
