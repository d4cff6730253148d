"""Write small data folders in the client's layouts, and PNG files good and bad, for the data-loading tests.

``make_training_dir(root)`` writes ``root/images/00001.png …`` (cv2.imwrite, so RGB is flipped to BGR on disk exactly as
the client's files are), ``noisy_labels.csv`` and (optionally) ``clean_labels.csv``; ``make_test_dir(root)`` writes
``root/test_images/test00001.png …`` and ``test_labels.csv``. Both return what they wrote, so tests compare the loaded
arrays with it. ``write_png_filtered`` writes an 8-bit RGB PNG with zlib, every row with a chosen PNG filter type
(0-4), to exercise every branch of a PNG decoder.

Test files load this module by path under the name ``labelmend_tests_data_factory`` (pytest runs with
``--import-mode=importlib``, so ``tests/`` is not on sys.path); see ``_load_factory()`` in each test file.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLASS_NAMES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")  # the first client's


@dataclass
class Written:
    """What a factory wrote: the folder, the RGB images (N, 32, 32, 3) uint8 and the labels."""

    root: Path
    images: np.ndarray
    labels: np.ndarray          # noisy labels (training) or test labels
    clean: np.ndarray | None = None
    paths: list[Path] | None = None


def random_images(n: int, seed: int = 0, *, size=(32, 32)) -> np.ndarray:
    """``n`` random RGB uint8 images; every channel different so an RGB/BGR swap is caught."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, size[0], size[1], 3), dtype=np.uint8)
    x[:, 0, 0] = (10, 120, 240)  # a pixel whose channels are surely distinct
    return x


def imwrite_rgb(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB (or grayscale / 4-channel, as given) image with OpenCV, flipping RGB to BGR first."""
    import cv2

    img = rgb[..., ::-1] if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb
    if not cv2.imwrite(str(path), np.ascontiguousarray(img)):
        raise OSError(f"cv2.imwrite failed for {path}")


def write_labels(path: Path, labels, *, newline: str = "\n", trailing: str = "\n") -> None:
    """One label per line."""
    text = newline.join(str(int(v)) for v in labels) + (trailing if len(labels) else "")
    path.write_bytes(text.encode("utf-8"))


def make_training_dir(root: Path, *, n: int = 12, n_clean: int | None = 5, seed: int = 0,
                      class_names: tuple[str, ...] | None = None) -> Written:
    """The client's training layout with ``n`` images, ``n`` noisy labels and ``n_clean`` clean labels (None: no
    clean_labels.csv), and ``class_names.txt`` when ``class_names`` is given."""
    root = Path(root)
    (root / "images").mkdir(parents=True)
    images = random_images(n, seed)
    rng = np.random.default_rng(seed + 1)
    noisy = rng.integers(0, 10, size=n).astype(np.int64)
    noisy[:min(n, 10)] = rng.permutation(10)[:min(n, 10)]  # every class occurs once n >= 10 (training needs it)
    paths = _write_numbered(root / "images", "", images)
    write_labels(root / "noisy_labels.csv", noisy)
    if class_names is not None:
        (root / "class_names.txt").write_text("\n".join(class_names) + "\n", encoding="utf-8")
    clean = None
    if n_clean is not None:
        clean = rng.integers(0, 10, size=n_clean).astype(np.int64)
        write_labels(root / "clean_labels.csv", clean)
    return Written(root=root, images=images, labels=noisy, clean=clean, paths=paths)


def _write_numbered(folder: Path, prefix: str, images: np.ndarray) -> list[Path]:
    """Write ``folder/{prefix}00001.png …`` (RGB images, 1-based numbering); returns the paths."""
    paths = [folder / f"{prefix}{i:05d}.png" for i in range(1, len(images) + 1)]
    for p, img in zip(paths, images):
        imwrite_rgb(p, img)
    return paths


def make_test_dir(root: Path, *, n: int = 8, seed: int = 100) -> Written:
    """The client's test layout: ``test_images/test00001.png …`` and ``test_labels.csv``."""
    root = Path(root)
    (root / "test_images").mkdir(parents=True)
    images = random_images(n, seed)
    labels = np.random.default_rng(seed + 1).integers(0, 10, size=n).astype(np.int64)
    paths = _write_numbered(root / "test_images", "test", images)
    write_labels(root / "test_labels.csv", labels)
    return Written(root=root, images=images, labels=labels, paths=paths)


# ---- hand-made PNGs ----------------------------------------------------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_rows(rgb: np.ndarray, filters) -> bytes:
    """The filtered scanlines of an (H, W, 3) uint8 image; ``filters[y]`` is row y's PNG filter type (0-4)."""
    h, w, _ = rgb.shape
    stride = w * 3
    rows = rgb.reshape(h, stride).astype(int).tolist()
    prev = [0] * stride
    out = bytearray()
    for y, row in enumerate(rows):
        f = filters[y]
        out.append(f)
        for x in range(stride):
            a = row[x - 3] if x >= 3 else 0
            b = prev[x]
            c = prev[x - 3] if x >= 3 else 0
            pred = (0, a, b, (a + b) >> 1, _paeth(a, b, c))[f]
            out.append((row[x] - pred) & 0xFF)
        prev = row
    return bytes(out)


def png_bytes(rgb: np.ndarray, *, filters=None, depth: int = 8, colour: int = 2, interlace: int = 0,
              raw: bytes | None = None, n_idat: int = 1) -> bytes:
    """An RGB PNG written by hand (so the filter type of every row is known); ``raw`` overrides the scanlines."""
    h, w = rgb.shape[:2]
    if raw is None:
        raw = filter_rows(rgb, filters if filters is not None else [0] * h)
    comp = zlib.compress(raw, 9)
    step = -(-len(comp) // n_idat)
    idats = b"".join(_chunk(b"IDAT", comp[i:i + step]) for i in range(0, len(comp), step))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, interlace)
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + idats + _chunk(b"IEND", b"")


def write_png_filtered(path: Path, rgb: np.ndarray, filters) -> None:
    Path(path).write_bytes(png_bytes(rgb, filters=filters))


def hostile_png(kind: str, path: Path) -> None:
    """Write one kind of bad "PNG" to ``path``; the kinds are listed in HOSTILE_PNGS."""
    import cv2

    path = Path(path)
    img = random_images(1, 7)[0]
    if kind == "truncated":
        imwrite_rgb(path, img)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not an image\n")
    elif kind == "16bit":
        cv2.imwrite(str(path), img.astype(np.uint16) * 257)
    elif kind == "grayscale":
        cv2.imwrite(str(path), img[:, :, 0])
    elif kind == "rgba":
        cv2.imwrite(str(path), np.dstack([img, np.full((32, 32), 255, np.uint8)]))
    elif kind == "wrong_size":
        imwrite_rgb(path, random_images(1, 7, size=(32, 31))[0])  # 31 wide, 32 high
    elif kind == "bad_crc":
        data = bytearray(png_bytes(img))
        data[40] ^= 0xFF  # inside the IDAT body
        path.write_bytes(bytes(data))
    else:
        raise ValueError(kind)


# name -> a regular expression the DataError message must match (besides the file name)
HOSTILE_PNGS = {
    "truncated": r"(?i)truncated|corrupt",
    "zero_bytes": r"(?i)0 bytes|empty",
    "text": r"(?i)not a PNG",
    "16bit": r"16-bit",
    "grayscale": r"(?i)grayscale",
    "rgba": r"(?i)RGBA",
    "wrong_size": r"(?i)31x32|expected.*32",
    "bad_crc": r"(?i)corrupt|CRC",
}


@dataclass
class Folders:
    """A class-folder data set as written: ``names`` (relative paths, the order labelmend lists them), the noisy
    ``labels`` (folders), the ``true`` labels, the full-size ``pixels`` as decoded, and ``clean`` {name: label}."""

    root: Path
    names: list[str]
    labels: np.ndarray
    true: np.ndarray
    clean: dict


def make_class_folders(root: Path, *, n: int = 30, k: int = 3, n_clean: int = 6, seed: int = 0,
                       class_names: tuple[str, ...] = ("cat", "dog", "frog"), grayscale: int = 1,
                       rgba: int = 1) -> Folders:
    """``root/<class>/img_###.{png,jpg}``: sizes 20-96 px (some not square), JPEG and PNG alternating, the first
    ``grayscale`` images written as grayscale PNGs and the next ``rgba`` as RGBA PNGs; each image a flat colour per
    class (so a tiny network can learn it) with noise; a third of the labels wrong; ``clean_labels.csv`` gives
    ``n_clean`` true labels (every third image, so not the first in any order)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    true = np.arange(n) % k
    noisy = true.copy()
    wrong = rng.random(n) < 1 / 3
    noisy[wrong] = (true[wrong] + rng.integers(1, k, wrong.sum())) % k
    entries = []
    for i in range(n):
        h, w = int(rng.integers(20, 97)), int(rng.integers(20, 97))
        base = np.array([(200, 40, 40), (40, 200, 40), (40, 40, 200)][true[i] % 3], dtype=np.int64)
        img = np.clip(base + rng.integers(-30, 31, (h, w, 3)), 0, 255).astype(np.uint8)
        folder = root / class_names[noisy[i]]
        folder.mkdir(parents=True, exist_ok=True)
        if i < grayscale:
            name, pil = f"img_{i:03d}.png", Image.fromarray(img[:, :, 0], mode="L")
        elif i < grayscale + rgba:
            alpha = np.full((h, w, 1), 128, np.uint8)
            name, pil = f"img_{i:03d}.png", Image.fromarray(np.concatenate([img, alpha], axis=2), mode="RGBA")
        else:
            name, pil = f"img_{i:03d}.{'jpg' if i % 2 else 'png'}", Image.fromarray(img)
        pil.save(folder / name)
        entries.append((f"{class_names[noisy[i]]}/{name}", i))
    entries.sort()
    names = [e[0] for e in entries]
    order = [e[1] for e in entries]
    clean = {names[j]: int(true[order[j]]) for j in range(2, len(names), 3)[:n_clean]}
    (root / "clean_labels.csv").write_text(
        "image,label\n" + "".join(f"{name},{class_names[c]}\n" for name, c in clean.items()), encoding="utf-8")
    return Folders(root=root, names=names, labels=noisy[order], true=true[order], clean=clean)
