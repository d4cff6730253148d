"""Loading the client's training images: their notebook loop vs labelmend's cold and cached load, side by side.

    python bench/bench_loading.py [--data ../shared/data/seed] [--n 50000]

(a) the client's loop: ``cv2.imread`` + ``cv2.cvtColor(BGR2RGB)`` per image into a list, then
    ``np.array(list, dtype=np.float64)`` — the array their notebook trains from;
(b) labelmend cold: ``load_images`` with a fresh, empty LABELMEND_CACHE (decode in parallel, validate, write cache);
(c) labelmend cached: the same call again (reads the cache written by (b)).

(a) runs first so the OS page cache holds the PNGs for (b) as well; no run measures the disk. Targets: (b) >= 2x and
(c) >= 20x faster than (a). Peak RSS is the process's high-water mark (ru_maxrss) after each step.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def client_loop(paths: list[Path]) -> np.ndarray:
    import cv2

    images = []
    for p in paths:
        img = cv2.imread(str(p))
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        images.append(img)
    return np.array(images, dtype=np.float64)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "seed",
                    help="training data folder (default: ../shared/data/seed)")
    ap.add_argument("--n", type=int, default=None, help="only the first N images")
    ap.add_argument("--workers", type=int, default=None, help="load_images workers (default: its own choice)")
    args = ap.parse_args(argv)

    cache = tempfile.mkdtemp(prefix="labelmend-bench-cache-")
    os.environ["LABELMEND_CACHE"] = cache
    from labelmend.train.data import TRAIN_IMAGES, load_images, read_labels

    n = len(read_labels(args.data / "noisy_labels.csv"))
    n = min(n, args.n) if args.n else n
    paths = [args.data / TRAIN_IMAGES / f"{i:05d}.png" for i in range(1, n + 1)]
    print(f"{n} images from {args.data}; {os.cpu_count()} CPUs; cache in {cache}")
    try:
        for p in paths:  # warm the OS page cache for everyone (read every file once)
            with open(p, "rb") as f:
                f.read()
        rss0 = peak_rss_mib()

        t = time.perf_counter()
        ref = client_loop(paths)
        t_client = time.perf_counter() - t
        rss_client = peak_rss_mib()
        ref_u8 = ref.astype(np.uint8)
        del ref

        t = time.perf_counter()
        cold = load_images(paths, progress=False, workers=args.workers)
        t_cold = time.perf_counter() - t


        t = time.perf_counter()
        cached = load_images(paths, progress=False, workers=args.workers)
        t_cached = time.perf_counter() - t

        assert np.array_equal(cold, ref_u8) and np.array_equal(cached, ref_u8), "loaders disagree with the client loop"
        print(f"{'':28s}{'seconds':>9s}{'x faster':>10s}")
        print(f"{'(a) client loop (float64)':28s}{t_client:9.2f}{1.0:10.1f}")
        print(f"{'(b) labelmend cold':28s}{t_cold:9.2f}{t_client / t_cold:10.1f}   target >= 2")
        print(f"{'(c) labelmend cached':28s}{t_cached:9.3f}{t_client / t_cached:10.1f}   target >= 20")
        print(f"peak RSS (MiB): start {rss0:.0f}, after client loop {rss_client:.0f} "
              f"(its float64 array: {n * 3072 * 8 / 2**20:.0f}), after cold+cached {peak_rss_mib():.0f} "
              f"(uint8 array: {n * 3072 / 2**20:.0f})")
        ok = t_client / t_cold >= 2 and t_client / t_cached >= 20
        print("targets met" if ok else "targets NOT met")
        return 0 if ok else 1
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
