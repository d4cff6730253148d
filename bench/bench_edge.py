"""fp32 vs int8 bundles and onnxruntime thread settings, side by side in one process (issue 11).

For each bundle and each CNN model: file size, validation accuracy (the run's held-out images, scored through
``labelmend.runtime``), single-image ``predict`` latency (p50 / p99) and ``predict_batch`` throughput at batch 256,
for each ``threads`` setting. Run it under ``taskset -c 0`` to see a 1-core box:

    python bench/bench_edge.py --run RUN --bundle fp32=BUNDLE --bundle int8=BUNDLE_INT8 --threads 1,2
    taskset -c 0 python bench/bench_edge.py --run RUN --bundle fp32=BUNDLE --bundle int8=BUNDLE_INT8 --threads 1,2

Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import labelmend.runtime as rt
import numpy as np


def latency(predictor, images: np.ndarray, repeats: int) -> tuple[float, float]:
    """p50, p99 of one ``predict(image)`` call, in milliseconds."""
    for i in range(20):
        predictor.predict(images[i % len(images)])
    times = np.empty(repeats)
    for i in range(repeats):
        t = time.perf_counter()
        predictor.predict(images[i % len(images)])
        times[i] = time.perf_counter() - t
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def throughput(predictor, images: np.ndarray, batch: int, rounds: int) -> float:
    """Images per second of ``predict_batch`` at ``batch`` images per call (best of ``rounds``)."""
    x = images[:batch]
    predictor.predict_batch(x)
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        predictor.predict_batch(x)
        best = max(best, len(x) / (time.perf_counter() - t))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="training run (its validation.npz scores accuracy)")
    ap.add_argument("--bundle", action="append", required=True, metavar="LABEL=DIR", help="a bundle to compare")
    ap.add_argument("--threads", default="1,2", help="comma-separated intra-op thread counts")
    ap.add_argument("--models", default="model1,model2")
    ap.add_argument("--repeats", type=int, default=500)
    args = ap.parse_args()
    with np.load(args.run / "validation.npz") as val:
        images, labels = val["images"], val["labels"]
    cores = len(os.sched_getaffinity(0))
    print(f"{len(labels)} validation images; {cores} usable core(s)\n")
    print("| bundle | model | size (KiB) | val. accuracy | threads | p50 predict (ms) | p99 (ms) | batch 256 (img/s) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for spec in args.bundle:
        label, _, folder = spec.partition("=")
        for model in args.models.split(","):
            base = rt.load(folder, model, device="cpu")
            acc = float(np.mean(base.predict_batch(images) == labels))
            size = (Path(folder) / base.manifest["file"]).stat().st_size / 1024
            for threads in map(int, args.threads.split(",")):
                p = rt.load(folder, model, device="cpu", threads=threads)
                p50, p99 = latency(p, images, args.repeats)
                tput = throughput(p, images, 256, 5)
                print(f"| {label} | {model} | {size:.0f} | {acc:.4f} | {threads} | {p50:.3f} | {p99:.3f} | "
                      f"{tput:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
