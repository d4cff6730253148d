"""The client's folder layouts and label files: pure Python + numpy (no image decoding, no OpenCV).

Training layout (N images, the first M of them with clean labels)::

    DIR/images/00001.png … DIR/images/{N:05d}.png
    DIR/noisy_labels.csv     N lines, one integer label 0..K-1 per line
    DIR/clean_labels.csv     M <= N lines: the trusted labels of images 1..M (optional; M may be 0)
    DIR/class_names.txt      K lines, the class names in label order (optional; else "0" … "K-1")
    DIR/verified_labels.csv  `image,label` lines: labels a person checked, for any images (optional; e.g. the top
                             of a run's review_queue.csv); an `image,label` header line is allowed

K, the number of classes, is the length of class_names.txt when the folder has one (a label >= K is then an
error), else the largest label used + 1. labelmend supports 2 <= K <= 100 (MAX_CLASSES): more classes than that
are refused, because the noise model estimates K² transition probabilities, which a few thousand trusted labels
cannot pin down beyond ~100 classes.

Test layout::

    DIR/test_images/test00001.png …  and  DIR/test_labels.csv

Both training (:mod:`labelmend.train.data`) and evaluation (:mod:`labelmend.evaluate`) list their files here, so
evaluation needs neither TensorFlow nor OpenCV. Every problem raises :class:`~labelmend.errors.DataError` naming the
file (and line, for label files).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from labelmend.bundle_format import MAX_CLASSES
from labelmend.errors import DataError

TRAIN_IMAGES, NOISY_CSV, CLEAN_CSV = "images", "noisy_labels.csv", "clean_labels.csv"
CLASS_NAMES_TXT = "class_names.txt"
VERIFIED_CSV = "verified_labels.csv"
TEST_IMAGES, TEST_CSV = "test_images", "test_labels.csv"
_PLAIN_LABELS = re.compile(r"[ \t]*\d+[ \t]*(?:\n[ \t]*\d+[ \t]*)*", re.ASCII)


def read_text(path: Path) -> str:
    """A small UTF-8 text file (a byte-order mark is fine), or DataError naming it."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None


def read_labels(path: str | os.PathLike, *, n_classes: int | None = None, allow_empty: bool = False,
                classes_from: str = CLASS_NAMES_TXT) -> np.ndarray:
    """Read a label file: one integer in [0, n_classes) per line (n_classes None: at most MAX_CLASSES classes).

    Windows line endings and surrounding whitespace are fine, and so are blank lines at the end of the file; a blank
    line elsewhere, a header, a non-integer or an out-of-range label is refused with the file and line number.
    """
    path = Path(path)
    declared = n_classes is not None
    n_classes = n_classes if declared else MAX_CLASSES
    if not path.is_file():
        raise DataError(f"{path}: label file not found")
    text = read_text(path)
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if lines and _PLAIN_LABELS.fullmatch("\n".join(lines)):  # the usual file: parse in one go
        labels = np.array(list(map(int, lines)), dtype=np.int64)
        if labels.min() >= 0 and labels.max() < n_classes:
            return labels
    labels = np.empty(len(lines), dtype=np.int64)  # otherwise line by line, to name the first bad line
    for i, raw in enumerate(lines):
        field = raw.strip()
        if not re.fullmatch(r"[+-]?\d+", field):
            what = "a blank line" if not field else f"{field[:40]!r}"
            hint = " (label files have no header)" if i == 0 and field else ""
            raise DataError(f"{path}, line {i + 1}: expected one integer label 0-{n_classes - 1}, got {what}{hint}")
        value = int(field)
        if not 0 <= value < n_classes:
            why = (f" ({classes_from} names {n_classes} classes)" if declared else
                   f" (labelmend supports at most {MAX_CLASSES} classes)" if value >= n_classes else "")
            raise DataError(f"{path}, line {i + 1}: label {value} is outside 0-{n_classes - 1}{why}")
        labels[i] = value
    if len(labels) == 0 and not allow_empty:
        raise DataError(f"{path}: the file holds no labels")
    return labels


def read_class_names(path: str | os.PathLike) -> tuple[str, ...]:
    """Read class_names.txt: one non-empty, distinct name per line, in label order; 2 to MAX_CLASSES names."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: class names file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    for i, name in enumerate(lines):
        if not name:
            raise DataError(f"{path}, line {i + 1}: blank class name (one name per line, in label order)")
        if name in lines[:i]:
            raise DataError(f"{path}, line {i + 1}: class name {name!r} repeats line {lines.index(name) + 1}")
    if not 2 <= len(lines) <= MAX_CLASSES:
        raise DataError(f"{path}: {len(lines)} class names; labelmend needs 2 to {MAX_CLASSES} classes")
    return tuple(lines)


def read_verified_labels(path: str | os.PathLike, *, image_names: list[str], class_names: tuple[str, ...],
                         clean_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Read verified_labels.csv: ``image,label`` lines, the image a file name of the images/ folder (as in the first
    column of a run's review_queue.csv), the label a class name or an integer 0..K-1. Returns (indices into the N
    images, labels), both (V,) int64, in file order.

    Refused with the file and line: an unknown image, a label outside the classes, an image named twice, a line that
    is not two fields, and a label that contradicts the image's clean label (one that agrees is dropped: the image
    is trusted already).
    """
    path = Path(path)
    text = read_text(path)
    index_of = {name.lower(): i for i, name in enumerate(image_names)}
    by_name = {name: c for c, name in enumerate(class_names)}
    k = len(class_names)
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    indices, labels, seen = [], [], {}
    for n, raw in enumerate(lines, start=1):
        fields = [f.strip() for f in raw.split(",")]
        if n == 1 and [f.lower() for f in fields] == ["image", "label"]:
            continue
        if len(fields) != 2 or not all(fields):
            raise DataError(f"{path}, line {n}: expected `image,label` (e.g. `00042.png,{class_names[0]}`), "
                            f"got {raw.strip()[:60]!r}")
        image, label = fields
        i = index_of.get(Path(image).name.lower())
        if i is None:
            raise DataError(f"{path}, line {n}: unknown image {image!r}; name a file of the images/ folder, "
                            f"e.g. {image_names[0]!r}")
        if i in seen:
            raise DataError(f"{path}, line {n}: image {image!r} is already verified on line {seen[i]}; keep one line")
        seen[i] = n
        if label in by_name:
            c = by_name[label]
        elif re.fullmatch(r"\d+", label) and int(label) < k:
            c = int(label)
        else:
            raise DataError(f"{path}, line {n}: label {label!r} is not one of the {k} classes "
                            f"({', '.join(class_names[:10])}{', …' if k > 10 else ''}) nor an integer 0-{k - 1}")
        if i < len(clean_labels):
            if clean_labels[i] != c:
                raise DataError(f"{path}, line {n}: {image} verified as {class_names[c]!r}, but clean_labels.csv "
                                f"line {i + 1} says {class_names[clean_labels[i]]!r}; correct one of the two")
            continue
        indices.append(i)
        labels.append(c)
    return np.asarray(indices, dtype=np.int64), np.asarray(labels, dtype=np.int64)


def class_names_for(labels: list[np.ndarray], names: tuple[str, ...] | None, *, source: str) -> tuple[str, ...]:
    """The K class names of a data set: ``names`` if given (labels were checked against them), else "0" … "K-1"
    with K = the largest label + 1. Fewer than 2 classes cannot be trained: DataError naming ``source``."""
    if names is None:
        k = max((int(lab.max()) + 1 for lab in labels if len(lab)), default=0)
        names = tuple(str(i) for i in range(k))
    if len(names) < 2:
        raise DataError(f"{source}: the labels use {len(names)} class(es); a classifier needs at least 2")
    return names


def numbered_pngs(folder: Path, n: int, *, prefix: str, labels_file: Path) -> list[str]:
    """The paths ``folder/{prefix}00001.png … {prefix}{n:05d}.png``; refuses missing images and unlabelled extras.

    Plain strings, not Path objects: for 50,000 files the difference is a large part of a cached load.
    """
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found")
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.png$", re.IGNORECASE | re.ASCII)
    present: dict[int, str] = {}
    for name in os.listdir(folder):
        m = pattern.match(name)
        if m:
            index = int(m.group(1))
            if index in present:  # e.g. 1.png next to 00001.png: which one is image 1?
                first, second = sorted([present[index], name])
                raise DataError(f"{folder}: {first} and {second} are both image number {index}; keep one")
            present[index] = name
    for index in range(1, n + 1):
        if index not in present:
            missing = folder / f"{prefix}{index:05d}.png"
            raise DataError(f"{missing}: image file not found ({labels_file.name} has {n} labels)")
    extra = sorted(i for i in present if i > n or i < 1)
    if extra:
        raise DataError(f"{folder / present[extra[0]]}: image has no label ({labels_file} has {n} lines)")
    base = os.fspath(folder)
    return [os.path.join(base, present[i]) for i in range(1, n + 1)]


def test_files(data_dir: str | os.PathLike, *, n_classes: int | None = None) -> tuple[list[Path], np.ndarray]:
    """The image paths and labels (each < ``n_classes``) of a test folder (nothing decoded yet), refusing missing or
    unlabelled images."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: test data folder not found")
    labels = read_labels(root / TEST_CSV, n_classes=n_classes, classes_from="the bundle")
    paths = numbered_pngs(root / TEST_IMAGES, len(labels), prefix="test", labels_file=root / TEST_CSV)
    return [Path(p) for p in paths], labels
