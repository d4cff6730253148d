"""Loading a class-folder data set of JPEGs (assorted sizes) beside the client's numbered 32×32 PNGs, cold and cached.

    python bench/bench_loading_folders.py [--data ../shared/data/seed] [--n 50000] [--keep DIR]

Writes the client's first N images as a class-folder set in a temporary folder (deleted after, unless --keep): each
image upscaled (Pillow bicubic) to a random size of 32-96 px per side and saved as JPEG (quality 90) in the folder of
its noisy label. Then, each with a fresh, empty LABELMEND_CACHE: (a) the numbered PNGs (`load_training_data`, OpenCV
decode), (b) the JPEG class folders (`load_training_data`: Pillow decode + the area-resize kernel), each cold and then
cached. The files are read once first, so no figure measures the disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def write_class_folders(data: Path, out: Path, n: int, seed: int = 0) -> None:
    from PIL import Image

    from labelmend.train.data import TRAIN_IMAGES, read_labels

    labels = read_labels(data / "noisy_labels.csv")[:n]
    rng = np.random.default_rng(seed)
    for c in np.unique(labels):
        (out / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        h, w = (int(v) for v in rng.integers(32, 97, 2))
        with Image.open(data / TRAIN_IMAGES / f"{i + 1:05d}.png") as img:
            img.convert("RGB").resize((w, h), Image.BICUBIC).save(out / f"class{labels[i]}" / f"{i + 1:05d}.jpg",
                                                                    quality=90)


def timed_load(root: Path) -> tuple[float, float, int]:
    from labelmend.train.data import load_training_data

    cache = tempfile.mkdtemp(prefix="labelmend-bench-cache-")
    os.environ["LABELMEND_CACHE"] = cache
    try:
        t = time.perf_counter()
        data = load_training_data(root, progress=False)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        load_training_data(root, progress=False)
        return cold, time.perf_counter() - t, len(data.images)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "seed")
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--keep", type=Path, default=None, help="write the class folders here and keep them")
    args = ap.parse_args(argv)
    folders = args.keep or Path(tempfile.mkdtemp(prefix="labelmend-bench-folders-"))
    try:
        if not any(folders.glob("class*")):
            t = time.perf_counter()
            write_class_folders(args.data, folders, args.n)
            print(f"wrote {args.n} JPEGs to {folders} in {time.perf_counter() - t:.0f} s")
        numbered = args.data
        if args.n < 50_000:  # a numbered subset: the first n images and labels
            numbered = Path(tempfile.mkdtemp(prefix="labelmend-bench-numbered-"))
            (numbered / "images").mkdir()
            for i in range(1, args.n + 1):
                os.symlink(args.data / "images" / f"{i:05d}.png", numbered / "images" / f"{i:05d}.png")
            lines = (args.data / "noisy_labels.csv").read_text().splitlines()[:args.n]
            (numbered / "noisy_labels.csv").write_text("\n".join(lines) + "\n")
        for p in list(folders.rglob("*.jpg")) + list((numbered / "images").glob("*.png")):
            p.read_bytes()  # the OS page cache holds every file for both loads
        print(f"{os.cpu_count()} CPUs; {'layout':34s}{'cold (s)':>10s}{'cached (s)':>12s}{'images/s cold':>15s}")
        for name, root in (("numbered 32x32 PNGs (OpenCV)", numbered),
                           ("class folders, JPEG 32-96 px (Pillow)", folders)):
            cold, cached, n = timed_load(root)
            print(f"{'':8s}{name:34s}{cold:10.2f}{cached:12.3f}{n / cold:15.0f}")
        return 0
    finally:
        if args.keep is None:
            shutil.rmtree(folders, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
