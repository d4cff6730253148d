"""What a network change costs the shipped graph: ONNX size, export parity and onnxruntime latency, per revision.

Each network (``train/cnn.py`` at ``--rev``, and the working tree's) is built at the shipped width, given a few SGD
steps on random images so its BatchNorm statistics are not the identity, exported exactly as ``labelmend export``
does (:func:`~labelmend.export.onnx_models.cnn_to_onnx`, flip TTA inside the graph; the parity check raises above
1e-4) and quantized to int8 (:func:`~labelmend.export.quantize.quantize_graph`). Then one onnxruntime session per
graph predicts one image at a time (p50 / p99 over ``--repeats``, sessions alternating) and batches of 256::

    python bench/bench_network_latency.py --rev 7392c46 --repeats 2000
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

from bench_step_speed import load_network_builder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", action="append", default=[], help="git revision(s) whose network to compare")
    ap.add_argument("--repeats", type=int, default=2000, help="single-image predictions per graph")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    from labelmend.train.distribute import configure_tensorflow

    configure_tensorflow(0)
    import onnxruntime as ort
    from labelmend.export.onnx_models import cnn_to_onnx
    from labelmend.export.quantize import quantize_graph
    from labelmend.train import cnn
    from labelmend.train.inputs import TrainingTargets
    from labelmend.train.loop import Trainer

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (1024, 32, 32, 3), dtype=np.uint8)
    data = TrainingTargets(images, cnn.one_hot(rng.integers(0, 10, len(images)), 10), np.zeros(len(images), bool))
    sessions, rows = {}, {}
    for name in [*args.rev, "working tree"]:
        trainer = Trainer(hyp=cnn.hyperparameters(net={"precision": "float32"}), seed=0, progress=False)
        model = load_network_builder(None if name == "working tree" else name)(
            images, n_classes=10, width=cnn.HYP["net"]["width"], seed=0, policy="float32")
        trainer.fit(model, data, steps=8, name="latency", desc="latency")
        fp32, spec = cnn_to_onnx(model, images[:256], flip_tta=True)
        int8 = quantize_graph(fp32, images[:256])
        rows[name] = {"parity": spec["export"]["parity_max_abs_diff"], "size_fp32": len(fp32), "size_int8": len(int8)}
        options = ort.SessionOptions()
        options.log_severity_level = 3
        for kind, graph in (("fp32", fp32), ("int8", int8)):
            sessions[(name, kind)] = ort.InferenceSession(graph, sess_options=options,
                                                          providers=["CPUExecutionProvider"])
    one = images[:1].astype(np.float32)
    batch = images[:256].astype(np.float32)
    times = {key: [] for key in sessions}
    for session in sessions.values():  # warm up
        session.run(None, {session.get_inputs()[0].name: one})
    for _ in range(args.repeats):
        for key, session in sessions.items():  # alternating, so drift hits every graph alike
            t0 = time.perf_counter()
            session.run(None, {session.get_inputs()[0].name: one})
            times[key].append(time.perf_counter() - t0)
    print("| network | graph | size (KB) | parity max abs diff | predict p50 (ms) | p99 (ms) | batch 256 (img/s) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (name, kind), session in sessions.items():
        feed = {session.get_inputs()[0].name: batch}
        session.run(None, feed)
        t0 = time.perf_counter()
        for _ in range(5):
            session.run(None, feed)
        rate = 5 * len(batch) / (time.perf_counter() - t0)
        ms = 1e3 * np.asarray(times[(name, kind)])
        size = rows[name][f"size_{kind}"] / 1024
        parity = f"{rows[name]['parity']:.1e}" if kind == "fp32" else "—"  # int8 is checked by accuracy at export
        print(f"| {name} | {kind} | {size:.0f} | {parity} | {np.percentile(ms, 50):.3f} | "
              f"{np.percentile(ms, 99):.3f} | {rate:.0f} |")


if __name__ == "__main__":
    main()
