"""Benchmark labelmend.ext.rgb_histogram against the client's per-image np.histogram loop.

Measures, on the same images in one run: (a) the client's loop, (b) rgb_histogram called once
per image, (c) rgb_histogram on the whole batch; checks that all features are identical (also
for the images cast to float32/float64). Acceptance: (b) at least 100x faster than (a).

    python bench/bench_histogram.py --n 5000
    python bench/bench_histogram.py --n 50000 --npy /tmp/seed50k.npy   # caches the decoded images
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BINS = np.linspace(0, 255, 6)


def client_features(img):
    """The client's baseline, verbatim."""
    return np.concatenate([np.histogram(img[:, :, c], bins=BINS)[0] for c in (0, 1, 2)])


def load_images(data_dir, n):
    import cv2

    paths = sorted((Path(data_dir) / "images").glob("*.png"))[:n]
    if not paths:
        sys.exit(f"no PNG images under {Path(data_dir) / 'images'}")
    images = np.empty((len(paths), 32, 32, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        img = cv2.imread(str(p))
        if img is None or img.shape != (32, 32, 3):
            sys.exit(f"{p}: unreadable or not a 32x32 colour image")
        images[i] = img[:, :, ::-1]  # BGR -> RGB
    return images


def best_time(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO / ".." / "shared" / "data" / "seed"),
                    help="data folder with images/*.png (default: ../shared/data/seed from the repo root)")
    ap.add_argument("--n", type=int, default=5000, help="number of images (default 5000)")
    ap.add_argument("--npy", help="cached (N, 32, 32, 3) uint8 RGB .npy: loaded if it exists, else written")
    ap.add_argument("--repeat", type=int, default=3, help="timing repeats, best is reported (default 3)")
    args = ap.parse_args(argv)

    from labelmend.ext import HAVE_EXTENSION, rgb_histogram

    t0 = time.perf_counter()
    if args.npy and Path(args.npy).exists():
        images = np.load(args.npy)[: args.n]
    else:
        images = load_images(args.data, args.n)
        if args.npy:
            np.save(args.npy, images)
    n = len(images)
    print(f"{n} images {images.shape[1:]} {images.dtype} loaded in {time.perf_counter() - t0:.1f} s; "
          f"compiled extension: {HAVE_EXTENSION}; numpy {np.__version__}")

    # Per-image loops collect into a list; stacking it (not the work being compared) is not timed.
    t_client, ref = best_time(lambda: [client_features(img) for img in images], args.repeat)
    t_single, single = best_time(lambda: [rgb_histogram(img) for img in images], args.repeat)
    t_batch, batch = best_time(lambda: rgb_histogram(images), args.repeat)
    ref, single = np.stack(ref), np.stack(single)

    us = 1e6 / n
    print(f"(a) client np.histogram loop : {t_client * us:9.3f} us/image")
    print(f"(b) rgb_histogram per image  : {t_single * us:9.3f} us/image   speedup vs (a): {t_client / t_single:7.1f}x")
    print(f"(c) rgb_histogram on batch   : {t_batch * us:9.3f} us/image   speedup vs (a): {t_client / t_batch:7.1f}x")

    mismatches = {
        "per-image uint8": int((single != ref).any(axis=1).sum()),
        "batch uint8": int((batch != ref).any(axis=1).sum()),
    }
    for dtype in (np.float32, np.float64):
        bad = 0
        t_float = 0.0
        for start in range(0, n, 5000):  # bounded memory for the float copies
            chunk = images[start:start + 5000].astype(dtype)
            t1 = time.perf_counter()
            feats = rgb_histogram(chunk)
            t_float += time.perf_counter() - t1
            bad += int((feats != ref[start:start + 5000]).any(axis=1).sum())
        mismatches[f"batch {np.dtype(dtype).name}"] = bad
        print(f"    rgb_histogram {np.dtype(dtype).name} batch: {t_float * us:9.3f} us/image")
    # The float path against np.histogram on float input itself, on a sample.
    sample = images[: min(n, 500)].astype(np.float32)
    mismatches["float32 vs client loop on float32 (500)"] = int(
        (rgb_histogram(sample) != np.stack([client_features(img) for img in sample])).any(axis=1).sum())

    for name, bad in mismatches.items():
        print(f"mismatching images, {name}: {bad}")
    total = sum(mismatches.values())
    ok = total == 0 and t_client / t_single >= 100
    print(f"RESULT: {'PASS' if ok else 'FAIL'} (mismatches {total}, per-image speedup "
          f"{t_client / t_single:.1f}x, need >= 100x)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
