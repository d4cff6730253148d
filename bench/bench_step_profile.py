"""Where one training step's time goes: TensorFlow profiler trace of the real loop, attributed by op kind and layer.

Trains the shipped network (or the one in ``train/cnn.py`` at ``--rev``) with :class:`~labelmend.train.loop.Trainer`
on random images for a few steps under ``tf.profiler``, reads the trace (XSpace protobuf, no TensorBoard needed) and
prints Markdown tables: each op kind's and each layer's share of the compute threads' busy time and milliseconds per
step, the input pipeline's own threads beside, and the step's wall time with and without the profiler::

    python bench/bench_step_profile.py --precision float32,bfloat16
    python bench/bench_step_profile.py --rev 7392c46 --precision float32

On a CPU without native bfloat16 (no AVX512_BF16 / AMX) the bfloat16 profile shows emulated kernels, not what an AMX
host does; say which host a table came from.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_step_speed import load_network_builder  # noqa: E402

# op kinds, first match wins: (kind, layer-name pattern or None, op-type pattern or None)
KINDS = (
    ("convolution", None, r"Conv2D|Conv2DBackprop|_FusedConv2D|DepthwiseConv"),
    ("batch norm", r"_bn$", None),
    ("batch norm", None, r"FusedBatchNorm"),
    ("ReLU", r"_relu$", r"Relu"),
    ("ReLU", None, r"^Relu|ReluGrad"),
    ("max pooling", None, r"MaxPool"),
    ("cast", None, r"^Cast$"),
    ("optimizer (SGD)", r"^(sgd|SGD)", None),
    ("classifier + loss", r"^(logits|logit_scale|pool)$", None),
)


def op_kind(layer: str, op_type: str) -> str:
    for kind, layer_pattern, type_pattern in KINDS:
        if (layer_pattern is None or re.search(layer_pattern, layer)) and \
                (type_pattern is None or re.search(type_pattern, op_type)):
            return kind
    return "other (adds, gradients' sums, loss)"


def layer_of(op_name: str) -> str:
    """The Keras layer an op belongs to ("layer1_bn"), else the first part of its name scope ("SGD")."""
    match = re.search(r"/resnet9_w\d+(?:_\d+)?/([A-Za-z0-9_]+?)(?:_\d+)?/", "/" + op_name)
    if match:
        return match.group(1)
    head = op_name.split("/")[0]
    return "SGD" if head.lower().startswith("sgd") else re.sub(r"_\d+$", "", head)


def read_trace(logdir: str):
    """(ops, pipeline_ps, step_ps): per (layer, op type) busy picoseconds on the compute threads, the input
    pipeline threads' op time, and the durations of the ``train_step`` calls."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = sorted(glob.glob(f"{logdir}/plugins/profile/*/*.xplane.pb"))[-1]
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(path).read_bytes())
    host = next(p for p in space.planes if p.name == "/host:CPU")
    names = host.event_metadata
    ops: collections.Counter = collections.Counter()
    pipeline_ps, step_ps = 0, []
    for line in host.lines:
        for event in line.events:
            name = names[event.metadata_id].name
            if line.name.startswith("tf_Compute") or line.name.startswith("tf_data"):
                if "::" in name or ":" not in name:  # executor bookkeeping, not an op
                    continue
                if line.name.startswith("tf_data"):
                    pipeline_ps += event.duration_ps
                    continue
                op_name, op_type = name.rsplit(":", 1)
                ops[(layer_of(op_name), op_type)] += event.duration_ps
            elif name == "train_step":
                step_ps.append(event.duration_ps)
    return ops, pipeline_ps, step_ps


def profile(build, precision: str, *, steps: int, images: np.ndarray, width: int) -> dict:
    import tensorflow as tf
    from labelmend.train import cnn
    from labelmend.train.inputs import TrainingTargets
    from labelmend.train.loop import WARM_UP_STEPS, Trainer

    hyp = cnn.hyperparameters(net={"precision": precision, "width": width})
    trainer = Trainer(hyp=hyp, seed=0, progress=False)
    n = len(images)
    data = TrainingTargets(images, cnn.one_hot(np.arange(n) % 10, 10, smoothing=0.1), np.zeros(n, bool))
    model = build(images, n_classes=10, width=width, seed=0, policy=trainer.policy)
    plain = trainer.fit(model, data, steps=steps, name="plain", desc="plain")  # also traces everything
    logdir = tempfile.mkdtemp(prefix="labelmend-profile-")
    tf.profiler.experimental.start(logdir)
    trainer.fit(model, data, steps=steps, name="traced", desc="traced")
    tf.profiler.experimental.stop()
    ops, pipeline_ps, step_ps = read_trace(logdir)
    step_ps = sorted(step_ps)[WARM_UP_STEPS:] or step_ps  # the slowest few include tracing
    return {"ops": ops, "pipeline_ps": pipeline_ps, "traced_steps": len(step_ps) + WARM_UP_STEPS,
            "step_s_traced": float(np.median(step_ps)) / 1e12,
            "step_s_plain": plain.warm_seconds / (steps - WARM_UP_STEPS), "policy": trainer.policy,
            "batch": trainer.batch_size}


def report(result: dict, precision: str) -> None:
    ops, steps = result["ops"], result["traced_steps"]
    busy = sum(ops.values())
    per_step_ms = 1e-9 / steps  # picoseconds over all traced steps → milliseconds per step
    print(f"\n### {precision} ({result['policy']}), batch {result['batch']}\n")
    print(f"step wall time: {result['step_s_plain'] * 1e3:.0f} ms without the profiler "
          f"({result['batch'] / result['step_s_plain']:.0f} img/s), {result['step_s_traced'] * 1e3:.0f} ms traced; "
          f"compute threads busy {busy * per_step_ms:.0f} ms per step (all threads together); input pipeline "
          f"threads {result['pipeline_ps'] * per_step_ms:.0f} ms per step "
          f"({result['pipeline_ps'] / max(busy + result['pipeline_ps'], 1):.1%} of all op time)\n")
    kinds: collections.Counter = collections.Counter()
    for (layer, op_type), ps in ops.items():
        kinds[op_kind(layer, op_type)] += ps
    print("| op kind | share of compute time | ms per step |\n|---|---:|---:|")
    for kind, ps in kinds.most_common():
        print(f"| {kind} | {ps / busy:.1%} | {ps * per_step_ms:.1f} |")
    layers: collections.Counter = collections.Counter()
    types: dict = collections.defaultdict(collections.Counter)
    for (layer, op_type), ps in ops.items():
        layers[layer] += ps
        types[layer][op_type] += ps
    print("\n| layer (forward + backward) | share | ms per step | its costliest ops |\n|---|---:|---:|---|")
    for layer, ps in layers.most_common(16):
        top = ", ".join(f"{t} {v / ps:.0%}" for t, v in types[layer].most_common(3))
        print(f"| {layer} | {ps / busy:.1%} | {ps * per_step_ms:.1f} | {top} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision", default="float32", help="comma-separated: float32, bfloat16")
    ap.add_argument("--rev", help="profile train/cnn.py as it was at this git revision (default: the working tree)")
    ap.add_argument("--steps", type=int, default=15, help="steps per fit (the first 3 trace the graph)")
    ap.add_argument("--width", type=int, default=None, help="network width (default: the shipped one)")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    from labelmend.train.distribute import configure_tensorflow

    configure_tensorflow(0)
    from labelmend.train import cnn

    build = load_network_builder(args.rev)
    width = args.width or cnn.HYP["net"]["width"]
    images = np.random.default_rng(0).integers(0, 256, (cnn.HYP["opt"]["batch_size"] * 8, 32, 32, 3), np.uint8)
    print(f"network: {'train/cnn.py at ' + args.rev if args.rev else 'working tree'}, width {width}; "
          f"{os.cpu_count()} CPUs; native bfloat16: {cnn.native_bf16()}")
    for precision in args.precision.split(","):
        report(profile(build, precision, steps=args.steps, images=images, width=width), precision)


if __name__ == "__main__":
    main()
