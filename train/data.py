"""Load a training folder as RGB uint8 arrays and integer labels, in any of three layouts (labelmend.folders):

The client's numbered layout (N images, the first M of them with clean labels)::

    DIR/images/00001.png … DIR/images/{N:05d}.png
    DIR/noisy_labels.csv     N lines, one label 0..K-1 per line
    DIR/clean_labels.csv     M <= N lines: the trusted labels of images 1..M (optional)
    DIR/verified_labels.csv  `image,label` lines for any images: labels a person checked (optional)

Class folders (``DIR/<class>/<images>``) or a label table (``DIR/labels.csv``), images of any size and format that
runtime/images.py reads, ``DIR/clean_labels.csv`` as ``image,label`` lines for any images. The images with a clean
label are put first (in listing order), so that everything downstream sees "the first M images are trusted" in
every layout; ``image_names`` (paths relative to DIR) keep naming them in every output.

Test layout::

    DIR/test_images/test00001.png …  and  DIR/test_labels.csv

Numbered PNGs are decoded in parallel with OpenCV (BGR → RGB), other layouts' files with the runtime's
:func:`~labelmend.runtime.images.to_input` (the one preprocessing predict and evaluate use), into one
(N, 32, 32, 3) uint8 array, which is cached on disk
keyed by every file's name, size and modification time, so a second load of an unchanged folder is a memory map away.
Every problem raises :class:`~labelmend.errors.DataError` naming the file (and line, for label files).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labelmend.bundle_format import IMAGE_SHAPE
from labelmend.errors import DataError
from labelmend.folders import (  # noqa: F401  (re-exported: the layout names belong to the data API)
    CLASS_FOLDERS,
    CLASS_NAMES_TXT,
    CLEAN_CSV,
    LABEL_TABLE,
    NUMBERED,
    NOISY_CSV,
    TEST_CSV,
    TEST_IMAGES,
    TRAIN_IMAGES,
    VERIFIED_CSV,
    class_names_for,
    detect_layout,
    list_class_folders,
    list_label_table,
    numbered_pngs,
    read_clean_table,
    read_class_names,
    read_labels,
    read_verified_labels,
    test_files,
)

_CACHE_VERSION = "3"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class TrainingData:
    """The client's training set. ``images`` (N, 32, 32, 3) uint8 RGB; ``noisy_labels`` (N,) int64;
    ``clean_labels`` (M,) int64, the trusted labels of images 0..M-1 (M may be 0); ``class_names`` the K names in
    label order."""

    images: np.ndarray
    noisy_labels: np.ndarray
    clean_labels: np.ndarray
    class_names: tuple[str, ...]
    # verified_labels.csv: labels a person checked, images chosen by a review queue (not a random sample)
    verified_index: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    verified_labels: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    image_names: tuple[str, ...] = ()
    layout: str = NUMBERED
    # images the preprocessing converted: {"grayscale": {"count": n, "examples": [names]}, "alpha": {...}}
    conversions: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_clean(self) -> int:
        return len(self.clean_labels)


# ---------------------------------------------------------------- images


def _decode_png(path: Path) -> np.ndarray:
    """Decode one PNG to RGB uint8 (32, 32, 3), refusing anything else by name."""
    import cv2

    try:  # one open + read syscalls: a third of np.fromfile's cost on a 3 KB file
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.read(fd, 1 << 16)
            if data:  # read to EOF (one more, empty read for the client's ~3 KB files)
                parts = [data]
                while part := os.read(fd, 1 << 20):
                    parts.append(part)
                if len(parts) > 1:
                    data = b"".join(parts)
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    if not data:
        raise DataError(f"{path}: empty file (0 bytes), not a PNG image")
    if not data.startswith(_PNG_SIGNATURE):
        raise DataError(f"{path}: not a PNG file")
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"{path}: corrupt or truncated PNG (OpenCV could not decode it)")
    if img.dtype != np.uint8:
        raise DataError(f"{path}: {img.dtype.itemsize * 8}-bit PNG; expected an 8-bit RGB image")
    if img.ndim != 3 or img.shape[2] != 3:
        kind = "grayscale" if img.ndim == 2 else {2: "grayscale+alpha", 4: "RGBA"}.get(img.shape[2], "multi-channel")
        raise DataError(f"{path}: {kind} image; expected a 3-channel RGB image")
    if img.shape != IMAGE_SHAPE:
        raise DataError(f"{path}: image is {img.shape[1]}x{img.shape[0]} pixels; expected 32x32")
    return img[:, :, ::-1]


def _cache_dir() -> Path:
    root = os.environ.get("LABELMEND_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "labelmend"
    )
    return Path(root)


def _fingerprint(paths: list[str | Path]) -> str:
    """Hash of every file's path, size and mtime (and the real path of each folder): it changes whenever a file is
    added, removed or rewritten. A cached load is mostly these ``stat`` calls, so the loop does nothing else."""
    paths = [os.fspath(p) for p in paths]
    folders = sorted({os.path.dirname(p) for p in paths})
    try:
        stats = list(map(os.stat, paths))
    except FileNotFoundError as exc:
        raise DataError(f"{exc.filename}: image file not found") from None
    except OSError as exc:
        raise DataError(f"{exc.filename}: cannot read ({exc.strerror})") from None
    digest = hashlib.sha256(_CACHE_VERSION.encode())
    digest.update("\0".join(os.path.realpath(f) for f in folders).encode())
    digest.update("\0".join(paths).encode())
    digest.update(np.array([(st.st_size, st.st_mtime_ns) for st in stats], dtype=np.int64).tobytes())
    return digest.hexdigest()[:32]


def _n_workers() -> int:
    """One thread per usable core."""
    return min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def load_images(paths: list[str | Path], *, use_cache: bool = True, workers: int | None = None,
                progress: bool = True, desc: str = "decoding images") -> np.ndarray:
    """Decode numbered 32×32 PNGs into one (N, 32, 32, 3) uint8 RGB array, in parallel, through the on-disk cache."""
    return _load(paths, lambda path: (_decode_png(path), ()), kind="images", use_cache=use_cache, workers=workers,
                 progress=progress, desc=desc)[0]


def load_image_files(paths: list[str | Path], *, use_cache: bool = True, workers: int | None = None,
                     progress: bool = True, desc: str = "reading images") -> tuple[np.ndarray, list[tuple]]:
    """Image files of any size and format, through the runtime's preprocessing, into one (N, 32, 32, 3) uint8 RGB
    array, in parallel, through the on-disk cache; and per image what was converted ("grayscale", "alpha")."""
    from labelmend.runtime.images import PREPROCESSING_VERSION, to_input_noted

    return _load(paths, to_input_noted, kind=f"files-v{PREPROCESSING_VERSION}", use_cache=use_cache, workers=workers,
                 progress=progress, desc=desc)


def _load(paths, decode, *, kind: str, use_cache: bool, workers: int | None, progress: bool,
          desc: str) -> tuple[np.ndarray, list[tuple]]:
    """``decode(path)`` → (image, notes) for every path, in parallel, cached as ``{kind}-<fingerprint>`` (an .npy of
    the images, and a .json of the notes where there are any)."""
    import json

    cache_file = None
    if use_cache and paths:
        cache_file = _cache_dir() / f"{kind}-{_fingerprint(paths)}.npy"
        notes_file = cache_file.with_suffix(".json")
        if cache_file.is_file():
            try:
                cached = np.load(cache_file, mmap_mode="r", allow_pickle=False)
                if cached.shape == (len(paths), *IMAGE_SHAPE) and cached.dtype == np.uint8:
                    notes = ([tuple(n) for n in json.loads(notes_file.read_text(encoding="utf-8"))]
                             if notes_file.is_file() else [()] * len(paths))
                    if len(notes) == len(paths):
                        # a private, writable copy (a cold load returns one too), read in one go from the page cache
                        return np.array(cached, order="C"), notes
            except (OSError, ValueError, EOFError):
                pass  # unreadable cache entry (empty, truncated, not .npy): decode again and overwrite it
    out = np.empty((len(paths), *IMAGE_SHAPE), dtype=np.uint8)
    notes = [()] * len(paths)
    from labelmend._progress import progress_bar

    chunk = 512
    starts = range(0, len(paths), chunk)

    def decode_chunk(start: int) -> int:
        stop = min(start + chunk, len(paths))
        for i in range(start, stop):
            out[i], notes[i] = decode(paths[i])
        return stop - start

    # OpenCV and Pillow release the GIL while decoding, so one thread per core keeps every core busy
    workers = workers or _n_workers()
    with _opencv_quiet(), ThreadPoolExecutor(max_workers=workers) as pool, progress_bar(
        total=len(paths), desc=desc, unit="img", disable=not progress
    ) as bar:
        for done in pool.map(decode_chunk, starts):
            bar.update(done)
    if cache_file is not None:
        if any(notes):  # written first: a cache entry never has images without their notes
            _write_atomic(notes_file, lambda f: f.write(json.dumps([list(n) for n in notes]).encode()))
        _write_cache(cache_file, out)
    return out, notes


@contextlib.contextmanager
def _opencv_quiet():
    """Silence OpenCV's own stderr logging (e.g. "[ WARN:0] ... PNG input buffer is incomplete") while decoding:
    every failure becomes a DataError naming the file, so the log lines would only break the CLI's one-line error."""
    import cv2

    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def _write_cache(cache_file: Path, images: np.ndarray) -> None:
    """Write the cache atomically; a cache that cannot be written is not an error."""
    _write_atomic(cache_file, lambda f: np.save(f, images))


def _write_atomic(cache_file: Path, write) -> None:
    tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, cache_file)
    except OSError:
        try:  # e.g. disk full: leave no half-written temporary behind
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def load_training_data(data_dir: str | os.PathLike, *, use_cache: bool = True, progress: bool = True,
                       class_names: str | os.PathLike | None = None) -> TrainingData:
    """Load a training folder in any layout (module docstring); ``class_names`` overrides the folder's
    class_names.txt with another file."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    names_path = Path(class_names) if class_names is not None else root / CLASS_NAMES_TXT
    names = read_class_names(names_path) if class_names is not None or names_path.exists() else None
    layout = detect_layout(root)
    if layout != NUMBERED:
        return _load_listed(root, layout, names, use_cache=use_cache, progress=progress)
    k = len(names) if names else None
    noisy = read_labels(root / NOISY_CSV, n_classes=k)
    clean_path = root / CLEAN_CSV
    clean = (read_labels(clean_path, n_classes=k, allow_empty=True) if clean_path.exists()
             else np.empty(0, dtype=np.int64))
    names = class_names_for([noisy, clean], names, source=str(root / NOISY_CSV))
    if len(clean) > len(noisy):
        raise DataError(f"{clean_path}: {len(clean)} clean labels but only {len(noisy)} images/noisy labels")
    paths = numbered_pngs(root / TRAIN_IMAGES, len(noisy), prefix="", labels_file=root / NOISY_CSV)
    image_names = tuple(os.path.basename(p) for p in paths)
    verified = _verified(root, image_names, names, clean, np.arange(1, len(clean) + 1), by_basename=True)
    images = load_images(paths, use_cache=use_cache, progress=progress, desc="decoding training images")
    return TrainingData(images=images, noisy_labels=noisy, clean_labels=clean, class_names=names,
                        verified_index=verified[0], verified_labels=verified[1], image_names=image_names)


def _verified(root: Path, image_names, class_names, clean: np.ndarray, clean_lines: np.ndarray, *,
              by_basename: bool) -> tuple[np.ndarray, np.ndarray]:
    """verified_labels.csv, checked against the clean labels of images 0..M-1 (before any image is decoded)."""
    if not (root / VERIFIED_CSV).exists():
        return np.empty(0, np.int64), np.empty(0, np.int64)
    n = len(image_names)
    trusted, lines = np.full(n, -1, np.int64), np.zeros(n, np.int64)
    trusted[:len(clean)], lines[:len(clean)] = clean, clean_lines
    return read_verified_labels(root / VERIFIED_CSV, image_names=image_names, class_names=class_names,
                                trusted=trusted, trusted_line=lines, by_basename=by_basename)


def _load_listed(root: Path, layout: str, names: tuple[str, ...] | None, *, use_cache: bool,
                 progress: bool) -> TrainingData:
    """The class-folder and label-table layouts: trusted images first, then the rest, each in listing order."""
    listing = (list_class_folders(root, class_names=names) if layout == CLASS_FOLDERS
               else list_label_table(root, class_names=names))
    names = class_names_for([listing.labels], listing.class_names, source=str(root))
    n = len(listing.names)
    clean_index = clean = clean_lines = np.empty(0, np.int64)
    if (root / CLEAN_CSV).exists():
        clean_index, clean, clean_lines = read_clean_table(root / CLEAN_CSV, image_names=listing.names,
                                                           class_names=names)
    first = np.argsort(clean_index, kind="stable")
    clean_index, clean, clean_lines = clean_index[first], clean[first], clean_lines[first]
    rest = np.setdiff1d(np.arange(n), clean_index)
    order = np.concatenate([clean_index, rest])
    image_names = tuple(listing.names[i] for i in order)
    paths = [listing.paths[i] for i in order]
    verified = _verified(root, image_names, names, clean, clean_lines, by_basename=False)
    images, notes = load_image_files(paths, use_cache=use_cache, progress=progress, desc="reading training images")
    conversions = {}
    for kind in ("grayscale", "alpha"):
        hit = [image_names[i] for i, note in enumerate(notes) if kind in note]
        if hit:
            conversions[kind] = {"count": len(hit), "examples": hit[:5]}
    return TrainingData(images=images, noisy_labels=listing.labels[order], clean_labels=clean, class_names=names,
                        verified_index=verified[0], verified_labels=verified[1], image_names=image_names,
                        layout=layout, conversions=conversions)
