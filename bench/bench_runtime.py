"""Benchmark labelmend.runtime (ONNX bundle) against the Keras / scikit-learn models it was exported from.

Everything is measured in one process on one machine, compared candidates interleaved in rounds (so background
load hits them alike), and printed as Markdown tables ready for BENCHMARKS.md:

* single-image latency p50/p99 of ``Predictor.predict(image)`` for every bundle model, vs Keras ``model.predict``,
  the direct call ``model(x, training=False)`` and the exported tf.function (with flip-TTA, the same computation as
  the ONNX graph) for model1/model2; the client's np.histogram + sklearn ``predict`` for the baseline;
* the baseline's parts: ``rgb_histogram`` alone, the ONNX LogisticRegression alone, ``predict`` end to end;
* model2 single-image latency with ``threads=1`` next to onnxruntime's default intra-op threads;
* ``predict_batch`` throughput (images/s) for batch sizes 1, 8, 32, 128, 512, 1024;
* with ``--quantize``: an int8 (QDQ, per-channel, static) copy of model2 written to ``--quantized-out`` (never into
  the bundle): file size, latency/throughput vs fp32, prediction agreement and clean-label accuracy.

    python bench/bench_runtime.py --run runs/latest --bundle bundles/latest
    python bench/bench_runtime.py --run /tmp/run_s --bundle /tmp/bundle_s --repeats 2000 --out-json /tmp/rt.json \\
        --quantize --quantized-out /tmp/model2.int8.onnx
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from labelmend import registry

BATCH_SIZES = (1, 8, 32, 128, 512, 1024)
ROUNDS = 5  # latency candidates are interleaved in this many rounds


# ---------------------------------------------------------------- environment


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
                    return ", ".join(x for x in wanted if x in flags)
    except OSError:
        pass
    return "?"


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("labelmend", "numpy", "onnxruntime", "onnxruntime-gpu", "onnx", "tensorflow", "tensorflow-cpu",
                 "keras", "scikit-learn"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


# ---------------------------------------------------------------- timing


def summary(ns: np.ndarray) -> dict:
    us = np.asarray(ns, dtype=np.float64) / 1e3
    return {"n": int(us.size), "p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99)),
            "mean_us": float(us.mean())}


def interleaved(cands: list[tuple[str, object, int]], *, warmup: int = 20, rounds: int = ROUNDS) -> dict:
    """cands: (key, fn(i), n_calls). Warm each up, then time them round-robin; returns key → summary."""
    for _, fn, n in cands:
        for i in range(min(warmup, max(3, n // 10))):
            fn(i)
    samples: dict[str, list[int]] = {key: [] for key, _, _ in cands}
    clock = time.perf_counter_ns
    for r in range(rounds):
        for key, fn, n in cands:
            per_round = max(1, -(-n // rounds))
            out = samples[key]
            for j in range(r * per_round, (r + 1) * per_round):
                t0 = clock()
                fn(j)
                out.append(clock() - t0)
    return {key: summary(np.array(v)) for key, v in samples.items()}


def throughput(fn, batch: np.ndarray, *, min_seconds: float = 0.25, min_calls: int = 3) -> dict:
    """Images/s of fn(batch) from the median call time (after one warm-up call)."""
    fn(batch)
    times = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter_ns()
        fn(batch)
        times.append(time.perf_counter_ns() - t0)
    med = float(np.median(times)) / 1e9
    return {"batch": int(len(batch)), "calls": len(times), "median_call_ms": med * 1e3,
            "images_per_s": len(batch) / med}


def fmt_us(us: float) -> str:
    return f"{us / 1e3:.2f} ms" if us >= 1000 else f"{us:.1f} µs"


def tile(images: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // len(images))
    return np.ascontiguousarray(np.tile(images, (reps, 1, 1, 1))[:n])


# ---------------------------------------------------------------- data around the run


def run_record(run: Path) -> dict:
    try:
        return json.loads((run / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def extra_images(record: dict, n_skip: int, n: int) -> np.ndarray | None:
    """n training images (excluding the validation split) after the first n_skip such images, or None."""
    from labelmend.runtime.png import read_png

    data_dir = record.get("data_dir")
    if not data_dir or not (Path(data_dir) / "images").is_dir():
        return None
    val = set(record.get("split", {}).get("val_indices_1based", []))
    n_images = int(record.get("n_images", 0))
    wanted = [i for i in range(1, n_images + 1) if i not in val][n_skip:n_skip + n]
    try:
        images = [read_png(Path(data_dir) / "images" / f"{i:05d}.png") for i in wanted]
    except Exception as exc:  # noqa: BLE001 - optional data: say why and carry on without it
        print(f"note: cannot read training images from {data_dir} ({exc}); using parity images", file=sys.stderr)
        return None
    return np.stack(images) if images else None


def parity_clean_labels(record: dict, n_parity: int) -> np.ndarray | None:
    """Clean labels of the parity images (= the first validation images, see train/pipeline.py), or None."""
    data_dir = record.get("data_dir")
    val = record.get("split", {}).get("val_indices_1based", [])
    if not data_dir or len(val) < n_parity or min(256, len(val)) != n_parity:
        return None
    path = Path(data_dir) / "clean_labels.csv"
    if not path.exists():
        return None
    from labelmend.train.data import read_labels

    clean = read_labels(path)
    idx = np.asarray(val[:n_parity]) - 1
    return clean[idx] if idx.max() < len(clean) else None


# ---------------------------------------------------------------- sections


def bench_latency(run: Path, bundle: Path, images: np.ndarray, repeats: int, models: list[str]) -> dict:
    import keras
    import labelmend.runtime as rt
    import tensorflow as tf
    from labelmend.ext import rgb_histogram
    from labelmend.train.cnn import probability_function

    n = len(images)
    singles_f32 = [images[i].astype(np.float32)[None] for i in range(n)]
    predictors = {m: rt.load(bundle, m, device="cpu") for m in models}
    flip_tta = {m: predictors[m].manifest.get("export", {}).get("flip_tta") for m in models}
    cands: list[tuple[str, object, int]] = []
    n_fast, n_mid, n_slow = repeats, max(20, repeats // 10), max(10, repeats // 40)

    for m, p in predictors.items():
        cands.append((f"{m}|runtime predict", lambda i, p=p: p.predict(images[i % n]), n_fast))
    if registry.DEFAULT_MODEL in predictors:
        p1 = rt.load(bundle, registry.DEFAULT_MODEL, device="cpu", threads=1)
        cands.append(("model2|runtime predict, threads=1", lambda i: p1.predict(images[i % n]), n_fast))

    if registry.BASELINE in predictors and (run / registry.model_file(registry.BASELINE)).exists():
        import pickle

        with open(run / registry.model_file(registry.BASELINE), "rb") as f:
            clf = pickle.load(f)
        bins = np.linspace(0, 255, 6)
        lr = predictors[registry.BASELINE]
        feats = [np.ascontiguousarray(rgb_histogram(images[i][None]), dtype=np.float32) for i in range(n)]

        def client(i):
            img = images[i % n]
            x = np.concatenate([np.histogram(img[:, :, c], bins=bins)[0] for c in (0, 1, 2)])
            return clf.predict(x[None])[0]

        cands += [
            ("baseline|rgb_histogram (1 image)", lambda i: rgb_histogram(images[i % n][None]), n_fast),
            ("baseline|ONNX LR session.run (15 features)",
             lambda i: lr._session.run([lr._output], {lr._input: feats[i % n]}), n_fast),
            ("baseline|client: np.histogram ×3 + sklearn predict", client, n_mid),
        ]

    for m in [m for m in predictors if m != registry.BASELINE]:
        path = run / registry.model_file(m)
        if m not in predictors or not path.exists():
            continue
        km = keras.models.load_model(path, compile=False)
        fn = probability_function(km, flip_tta=bool(flip_tta[m]))
        cands += [
            (f"{m}|Keras model.predict", lambda i, km=km: km.predict(singles_f32[i % n], verbose=0), n_slow),
            (f"{m}|Keras model(x, training=False)",
             lambda i, km=km: km(singles_f32[i % n], training=False).numpy(), n_mid),
            (f"{m}|exported tf.function (flip-TTA={bool(flip_tta[m])})",
             lambda i, fn=fn: fn(tf.constant(singles_f32[i % n])).numpy(), n_mid),
        ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"results": interleaved(cands), "predictors": predictors, "flip_tta": flip_tta}


def bench_batches(predictors: dict, images: np.ndarray, bundle: Path) -> dict:
    import labelmend.runtime as rt

    predictors = dict(predictors)
    if registry.DEFAULT_MODEL in predictors:
        predictors[f"{registry.DEFAULT_MODEL}, threads=1"] = rt.load(bundle, registry.DEFAULT_MODEL, device="cpu",
                                                                     threads=1)
    out = {}
    big = tile(images, max(BATCH_SIZES))
    for bs in BATCH_SIZES:
        for m, p in predictors.items():
            out[f"{m}|{bs}"] = throughput(p.predict_batch, big[:bs])
    return out


def bench_quantized(bundle: Path, out_path: Path, calib: np.ndarray, calib_src: str, parity: np.ndarray,
                    extra: np.ndarray | None, clean: np.ndarray | None, repeats: int) -> dict:
    import labelmend.runtime as rt
    import onnxruntime as ort
    from labelmend.export.quantize import quantize_graph

    fp32_path = bundle / rt.load(bundle, registry.DEFAULT_MODEL, device="cpu").manifest["file"]
    input_name = rt.load(bundle, registry.DEFAULT_MODEL, device="cpu").manifest["input"]["name"]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    out_path.write_bytes(quantize_graph(fp32_path.read_bytes(), calib))  # what `labelmend export --int8` ships
    seconds = time.perf_counter() - t0

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    s32 = ort.InferenceSession(str(fp32_path), opts, providers=["CPUExecutionProvider"])
    s8 = ort.InferenceSession(str(out_path), opts, providers=["CPUExecutionProvider"])
    out_name = s32.get_outputs()[0].name

    def run(s, x):
        return s.run([out_name], {input_name: x})[0]

    evalset = parity if extra is None else np.concatenate([parity, extra])
    x = evalset.astype(np.float32)
    p32 = np.concatenate([run(s32, x[i:i + 512]) for i in range(0, len(x), 512)])
    p8 = np.concatenate([run(s8, x[i:i + 512]) for i in range(0, len(x), 512)])
    agree = float(np.mean(p32.argmax(1) == p8.argmax(1)))
    agree_parity = float(np.mean(p32[:len(parity)].argmax(1) == p8[:len(parity)].argmax(1)))
    res = {
        "path": str(out_path), "quantize_seconds": seconds, "calibration": f"{len(calib)} {calib_src}",
        "settings": "quantize_static QDQ, per-channel, U8 activations / S8 weights, Conv+MatMul, MinMax calibration",
        "size_fp32": fp32_path.stat().st_size, "size_int8": out_path.stat().st_size,
        "agreement_images": int(len(x)), "agreement": agree, "agreement_parity": agree_parity,
        "max_abs_prob_diff": float(np.abs(p32 - p8).max()),
        "fp32_predicted_class_counts": np.bincount(p32.argmax(1), minlength=p32.shape[1]).tolist(),
    }
    if clean is not None:
        res["parity_clean_accuracy_fp32"] = float(np.mean(p32[:len(parity)].argmax(1) == clean))
        res["parity_clean_accuracy_int8"] = float(np.mean(p8[:len(parity)].argmax(1) == clean))
    singles = [parity[i].astype(np.float32)[None] for i in range(len(parity))]
    n = len(singles)
    res["latency"] = interleaved([
        ("fp32", lambda i: run(s32, singles[i % n]), repeats),
        ("int8", lambda i: run(s8, singles[i % n]), repeats),
    ])
    big = tile(parity, 512).astype(np.float32)
    res["throughput"] = {f"{k}|{bs}": throughput(lambda b, s=s: run(s, b), big[:bs])
                         for bs in (1, 32, 512) for k, s in (("fp32", s32), ("int8", s8))}
    return res


# ---------------------------------------------------------------- report


def markdown(env: dict, lat: dict, batches: dict, models: list[str], quant: dict | None) -> str:
    lines = [
        f"Machine: {env['cpu']} ({env['cpu_count']} logical CPUs; {env['cpu_flags']}); "
        f"{env['platform']}",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        f"onnxruntime threads: intra-op = {env['ort_threads']}; "
        f"images: {env['n_images']} parity images from {env['run']}, bundle {env['bundle']}",
        f"flip-TTA in the exported CNN graphs: {env['flip_tta']} (the ONNX graph then runs the network twice; "
        "Keras predict / model(x) run it once)",
        "",
        "### Single-image latency (one image per call, CPU)",
        "",
        "| model | implementation | p50 | p99 | calls | p50 / runtime p50 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    res = lat
    for m in models:
        base = res.get(f"{m}|runtime predict")
        for key, s in res.items():
            if not key.startswith(m + "|"):
                continue
            impl = key.split("|", 1)[1]
            ratio = f"{s['p50_us'] / base['p50_us']:.2f}×" if base else ""
            if impl == "runtime predict":
                impl = "**labelmend.runtime `predict`**"
            lines.append(f"| {m} | {impl} | {fmt_us(s['p50_us'])} | {fmt_us(s['p99_us'])} | {s['n']} | {ratio} |")
    for m in [m for m in models if m != registry.BASELINE]:
        k, r = res.get(f"{m}|Keras model.predict"), res.get(f"{m}|runtime predict")
        if k and r:
            lines.append("")
            lines.append(f"{m}: Keras `model.predict` p50 / runtime `predict` p50 = "
                         f"**{k['p50_us'] / r['p50_us']:.0f}×**"
                         + ("  (target ≥ 100×)" if m == registry.DEFAULT_MODEL else ""))
    cols = [m for m in [*models, f"{registry.DEFAULT_MODEL}, threads=1"] if f"{m}|1" in batches]
    lines += ["", "### `predict_batch` throughput (images/s, CPU, default threads unless noted)", "",
              "| batch size | " + " | ".join(cols) + " |", "|---:|" + "---:|" * len(cols)]
    for bs in BATCH_SIZES:
        lines.append(f"| {bs} | " + " | ".join(f"{batches[f'{m}|{bs}']['images_per_s']:,.0f}" for m in cols) + " |")
    if quant:
        q = quant
        lat32, lat8 = q["latency"]["fp32"], q["latency"]["int8"]
        lines += [
            "", "### model2 int8 (static QDQ) vs fp32 — raw onnxruntime session, CPU", "",
            f"{q['settings']}; calibrated on {q['calibration']}; written to `{q['path']}` "
            f"in {q['quantize_seconds']:.1f} s.", "",
            "| | fp32 | int8 | int8 / fp32 |", "|---|---:|---:|---:|",
            f"| file size | {q['size_fp32'] / 1e6:.2f} MB | {q['size_int8'] / 1e6:.2f} MB | "
            f"{q['size_int8'] / q['size_fp32']:.2f} |",
            f"| single image p50 | {fmt_us(lat32['p50_us'])} | {fmt_us(lat8['p50_us'])} | "
            f"{lat8['p50_us'] / lat32['p50_us']:.2f} |",
            f"| single image p99 | {fmt_us(lat32['p99_us'])} | {fmt_us(lat8['p99_us'])} | "
            f"{lat8['p99_us'] / lat32['p99_us']:.2f} |",
        ]
        for bs in (1, 32, 512):
            a, b = q["throughput"][f"fp32|{bs}"]["images_per_s"], q["throughput"][f"int8|{bs}"]["images_per_s"]
            lines.append(f"| throughput, batch {bs} (images/s) | {a:,.0f} | {b:,.0f} | {b / a:.2f} |")
        lines += [
            "",
            f"Top-1 agreement int8 vs fp32: {q['agreement']:.4f} on {q['agreement_images']} images "
            f"(parity images alone: {q['agreement_parity']:.4f}); max |Δprobability| {q['max_abs_prob_diff']:.4f}; "
            f"fp32 predicted-class counts {q['fp32_predicted_class_counts']}.",
        ]
        if "parity_clean_accuracy_fp32" in q:
            lines.append(f"Clean-label accuracy on the parity (validation) images: fp32 "
                         f"{q['parity_clean_accuracy_fp32']:.4f}, int8 {q['parity_clean_accuracy_int8']:.4f}.")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, type=Path, help="training run directory (model*.keras, parity_images.npy)")
    ap.add_argument("--bundle", required=True, type=Path, help="bundle directory (manifest.json + *.onnx)")
    ap.add_argument("--repeats", type=int, default=2000,
                    help="timed calls for fast (runtime) calls; Keras calls get repeats/10, model.predict repeats/40")
    ap.add_argument("--out-json", type=Path, help="also write every measurement as JSON here")
    ap.add_argument("--quantize", action="store_true", help="also build and benchmark an int8 copy of model2")
    ap.add_argument("--quantized-out", type=Path, help="where --quantize writes the int8 model (required with it)")
    ap.add_argument("--calib-images", type=Path,
                    help="uint8 (N, 32, 32, 3) .npy for int8 calibration (default: 512 non-validation training "
                         "images from the run's data_dir, else the parity images)")
    ap.add_argument("--agree-n", type=int, default=1000,
                    help="extra non-validation training images (not used for calibration) for int8 agreement")
    args = ap.parse_args(argv)
    if args.quantize and not args.quantized_out:
        ap.error("--quantize needs --quantized-out PATH (the int8 model is never written into the bundle)")
    if args.quantized_out and args.quantized_out.resolve().parent == args.bundle.resolve():
        ap.error("--quantized-out must not be inside the bundle directory")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t_start = time.perf_counter()

    from labelmend.bundle_format import read_manifest

    images = np.load(args.run / "parity_images.npy")
    if images.dtype != np.uint8 or images.shape[1:] != (32, 32, 3) or not len(images):
        sys.exit(f"{args.run / 'parity_images.npy'}: expected uint8 (N, 32, 32, 3), got {images.dtype} {images.shape}")
    models = registry.ordered(read_manifest(args.bundle)["models"])

    lat = bench_latency(args.run, args.bundle, images, args.repeats, models)
    predictors = lat["predictors"]
    sess_threads = next(iter(predictors.values()))._session.get_session_options().intra_op_num_threads
    batches = bench_batches(predictors, images, args.bundle)

    quant = None
    if args.quantize and registry.DEFAULT_MODEL in models:
        record = run_record(args.run)
        if args.calib_images:
            calib, src = np.load(args.calib_images)[:512], f"images from {args.calib_images}"
        else:
            calib = extra_images(record, 0, 512)
            src = "non-validation training images"
            if calib is None:
                calib, src = tile(images, min(512, 4 * len(images))), "parity images (no training data found!)"
        extra = extra_images(record, 512, args.agree_n) if args.agree_n > 0 else None
        quant = bench_quantized(args.bundle, args.quantized_out, calib, src, images, extra,
                                parity_clean_labels(record, len(images)), args.repeats)

    env = {
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "cpu_flags": cpu_flags(), "platform": platform.platform(),
        "versions": versions(), "run": str(args.run), "bundle": str(args.bundle), "n_images": int(len(images)),
        "ort_threads": "onnxruntime default (one per physical core)" if sess_threads == 0 else sess_threads,
        "flip_tta": {m: v for m, v in lat["flip_tta"].items() if m != registry.BASELINE},
        "repeats": args.repeats,
    }
    report = markdown(env, lat["results"], batches, models, quant)
    print(report)
    print(f"\n(total benchmark time {time.perf_counter() - t_start:.0f} s)")
    if args.out_json:
        args.out_json.write_text(json.dumps({"env": env, "latency": lat["results"], "throughput": batches,
                                             "quantized": quant}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
