"""Check labelmend.runtime on a CUDA GPU: CUDA predictions must equal CPU ones; time both devices.

For every model in the bundle: load it with device="cpu" and device="cuda", print the providers each session really
uses, predict_proba all --images on both, and require identical labels and probabilities within --atol (1e-4).
Then single-image ``predict`` latency p50/p99 and ``predict_batch`` throughput on each device.

Exit codes: 0 all models match; 1 a mismatch or an unexpected error; 2 CUDA cannot be tested here (onnxruntime-gpu
not installed, or installed but the CUDA/cuDNN libraries do not load) — the message says which, and shows the
error that ``labelmend.runtime.load(..., device="cuda")`` gives.

    python bench/cuda_check.py --bundle bundles/latest --images runs/latest/parity_images.npy
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import sys
import time
from pathlib import Path

import numpy as np

BATCH_SIZES = (1, 32, 256, 1024)
CUDA = "CUDAExecutionProvider"


def dist_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def latency(fn, images: np.ndarray, n: int) -> dict:
    for i in range(min(20, n)):
        fn(images[i % len(images)])
    ns = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn(images[i % len(images)])
        ns.append(time.perf_counter_ns() - t0)
    us = np.asarray(ns) / 1e3
    return {"p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99))}


def throughput(fn, batch: np.ndarray, min_seconds: float = 0.3) -> float:
    fn(batch)
    fn(batch)
    times, start = [], time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn(batch)
        times.append(time.perf_counter() - t0)
    return len(batch) / float(np.median(times))


def fmt_us(us: float) -> str:
    return f"{us / 1e3:.2f} ms" if us >= 1000 else f"{us:.1f} µs"


def tf32_off_diff(pred, images: np.ndarray, cpu_proba: np.ndarray) -> str:
    """Diagnostic only: max |CUDA - CPU| with the CUDA provider's TF32 math switched off (use_tf32=0)."""
    import onnxruntime as ort

    try:
        data = (pred.bundle_dir / pred.manifest["file"]).read_bytes()
        sess = ort.InferenceSession(data, providers=[(CUDA, {"use_tf32": "0"}), "CPUExecutionProvider"])
        if sess.get_providers()[0] != CUDA:
            return "n/a (no CUDA session)"
        x = pred._features(images.astype(np.float32))
        p = np.concatenate([sess.run([pred._output], {pred._input: x[i:i + 1024]})[0]
                            for i in range(0, len(x), 1024)])
        return f"{float(np.abs(p - cpu_proba).max()):.3g}"
    except Exception as exc:  # noqa: BLE001 - diagnostic; older onnxruntime may not know the option
        return f"n/a ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True, type=Path, help="bundle directory (manifest.json + *.onnx)")
    ap.add_argument("--images", required=True, type=Path,
                    help="uint8 (N, 32, 32, 3) RGB .npy, e.g. RUN/parity_images.npy")
    ap.add_argument("--atol", type=float, default=1e-4, help="max |p_cuda - p_cpu| allowed (default 1e-4)")
    ap.add_argument("--repeats", type=int, default=300, help="single-image predict calls per device (default 300)")
    args = ap.parse_args(argv)

    images = np.load(args.images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3) or not len(images):
        print(f"error: {args.images}: expected uint8 (N, 32, 32, 3), got {images.dtype} {images.shape}")
        return 1

    import labelmend.runtime as rt
    import onnxruntime as ort

    from labelmend.bundle_format import read_manifest

    cpu_pkg, gpu_pkg = dist_version("onnxruntime"), dist_version("onnxruntime-gpu")
    print(f"onnxruntime {ort.__version__} (packages: onnxruntime={cpu_pkg}, onnxruntime-gpu={gpu_pkg}); "
          f"available providers: {ort.get_available_providers()}; device: {ort.get_device()}")
    if cpu_pkg and gpu_pkg:
        print("warning: both onnxruntime and onnxruntime-gpu are installed; they share the 'onnxruntime' module and "
              "the CPU one can hide CUDA. Uninstall both, then install onnxruntime-gpu alone.")
    if gpu_pkg and hasattr(ort, "preload_dlls"):
        try:  # CUDA/cuDNN from the nvidia-* pip wheels, if that is how they were installed
            ort.preload_dlls()
        except Exception as exc:  # noqa: BLE001 - optional help; the load below reports what matters
            print(f"note: onnxruntime.preload_dlls() failed: {exc}")

    models = sorted(read_manifest(args.bundle)["models"])
    try:
        rt.load(args.bundle, models[0], device="cuda")
    except RuntimeError as exc:
        why = ("onnxruntime-gpu is NOT installed (this onnxruntime has no CUDAExecutionProvider)"
               if CUDA not in ort.get_available_providers() else
               "onnxruntime-gpu is installed but a CUDA session cannot start (CUDA/cuDNN libraries or GPU missing)")
        print(f"\nCUDA CHECK NOT RUN: {why}.")
        print(f'labelmend.runtime.load(..., device="cuda") raised RuntimeError:\n  {exc}')
        print("Install: pip uninstall -y onnxruntime && pip install '.[gpu]'  (onnxruntime-gpu; CUDA 12 + cuDNN 9), "
              "on a machine with an NVIDIA GPU.")
        return 2

    failures = []
    rows = []
    for m in models:
        cpu = rt.load(args.bundle, m, device="cpu")
        gpu = rt.load(args.bundle, m, device="cuda")
        auto = rt.load(args.bundle, m, device="auto")
        print(f"\n[{m}] providers: cpu={list(cpu.providers)} cuda={list(gpu.providers)} auto={list(auto.providers)}")
        if gpu.providers[0] != CUDA:
            failures.append(f"{m}: device='cuda' session runs on {gpu.providers}")
        if auto.providers[0] != CUDA:
            failures.append(f"{m}: device='auto' did not pick CUDA ({auto.providers})")
        p_cpu, p_gpu = cpu.predict_proba(images), gpu.predict_proba(images)
        diff = float(np.abs(p_cpu - p_gpu).max())
        l_cpu, l_gpu = p_cpu.argmax(1), p_gpu.argmax(1)
        n_diff = int(np.sum(l_cpu != l_gpu))
        batch_labels_ok = bool(np.array_equal(gpu.predict_batch(images), l_cpu))
        single_ok = all(gpu.predict(images[i]) == int(l_cpu[i]) for i in range(min(50, len(images))))
        ok = n_diff == 0 and diff <= args.atol and batch_labels_ok and single_ok
        print(f"[{m}] {len(images)} images: labels differ on {n_diff}; max |p_cuda - p_cpu| = {diff:.3g} "
              f"(atol {args.atol:g}); predict_batch labels equal: {batch_labels_ok}; predict (first 50) equal: "
              f"{single_ok} -> {'OK' if ok else 'MISMATCH'}")
        if not ok:
            failures.append(f"{m}: {n_diff} labels differ, max prob diff {diff:.3g}")
            if n_diff:
                top2 = np.sort(p_cpu, axis=1)[:, -2:]
                margins = (top2[:, 1] - top2[:, 0])[l_cpu != l_gpu]
                print(f"[{m}]   CPU top-1/top-2 margins where labels differ: {np.round(margins, 6).tolist()[:10]}")
            print(f"[{m}]   diagnostic, CUDA with use_tf32=0: max diff {tf32_off_diff(cpu, images, p_cpu)}")
        big = np.ascontiguousarray(np.tile(images, (-(-max(BATCH_SIZES) // len(images)), 1, 1, 1))[:max(BATCH_SIZES)])
        for dev, p in (("cpu", cpu), ("cuda", gpu)):
            lat = latency(p.predict, images, args.repeats)
            thr = [throughput(p.predict_batch, big[:bs]) for bs in BATCH_SIZES]
            rows.append((m, dev, lat, thr))

    print("\n| model | device | predict p50 | predict p99 | " +
          " | ".join(f"batch {bs} img/s" for bs in BATCH_SIZES) + " |")
    print("|---|---|---:|---:|" + "---:|" * len(BATCH_SIZES))
    for m, dev, lat, thr in rows:
        print(f"| {m} | {dev} | {fmt_us(lat['p50_us'])} | {fmt_us(lat['p99_us'])} | "
              + " | ".join(f"{t:,.0f}" for t in thr) + " |")

    if failures:
        print("\nFAIL:\n  " + "\n  ".join(failures))
        return 1
    print(f"\nPASS: {len(models)} models give the same labels on CUDA and CPU, probabilities within {args.atol:g}.")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - any other error is a failed check, exit 1 with the reason
        import traceback

        traceback.print_exc()
        print(f"\nFAIL: {type(exc).__name__}: {exc}")
        sys.exit(1)
