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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labelmend.bundle_format import MAX_CLASSES
from labelmend.errors import DataError

TRAIN_IMAGES, NOISY_CSV, CLEAN_CSV = "images", "noisy_labels.csv", "clean_labels.csv"
CLASS_NAMES_TXT = "class_names.txt"
VERIFIED_CSV = "verified_labels.csv"
TEST_IMAGES, TEST_CSV = "test_images", "test_labels.csv"
LABEL_TABLE_CSV = "labels.csv"
NUMBERED, CLASS_FOLDERS, LABEL_TABLE = "numbered", "class_folders", "label_table"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")  # the formats runtime/images.py decodes
# files a class-folder data set may keep in its root, beside the class folders
_ROOT_FILES = {CLEAN_CSV, VERIFIED_CSV, CLASS_NAMES_TXT}
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


def _pairs(path: Path, *, example: str) -> list[tuple[int, str, str]]:
    """(line number, image, label) of each line of an ``image,label`` file (an `image,label` header line, Windows
    line endings, surrounding whitespace and trailing blank lines are fine); any other line raises DataError."""
    lines = read_text(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    rows = []
    for n, raw in enumerate(lines, start=1):
        fields = [f.strip() for f in raw.split(",")]
        if n == 1 and [f.lower() for f in fields] == ["image", "label"]:
            continue
        if len(fields) != 2 or not all(fields):
            raise DataError(f"{path}, line {n}: expected `image,label` (e.g. `{example}`), got {raw.strip()[:60]!r}")
        rows.append((n, fields[0], fields[1]))
    return rows


def _image_label_lines(path: Path, *, index_of, class_names: tuple[str, ...], example: str, what: str,
                       verb: str = "labelled", pairs=None):
    """(line number, image index, label) per line of an ``image,label`` file (``pairs``: its :func:`_pairs`, when
    the caller has read them already); the image is looked up by ``index_of(name)`` (None: unknown), the label is a
    class name or an integer 0..K-1. An `image,label` header is allowed; a malformed line, an unknown image, an
    image named twice or an unknown label raises DataError."""
    by_name = {name: c for c, name in enumerate(class_names)}
    k = len(class_names)
    out, seen = [], {}
    for n, image, label in pairs if pairs is not None else _pairs(path, example=f"{example},{class_names[0]}"):
        i = index_of(image)
        if i is None:
            raise DataError(f"{path}, line {n}: unknown image {image!r}; name {what}, e.g. {example!r}")
        if i in seen:
            raise DataError(f"{path}, line {n}: image {image!r} is already {verb} on line {seen[i]}; keep one line")
        seen[i] = n
        if label in by_name:
            c = by_name[label]
        elif re.fullmatch(r"\d+", label) and int(label) < k:
            c = int(label)
        else:
            raise DataError(f"{path}, line {n}: label {label!r} is not one of the {k} classes "
                            f"({', '.join(class_names[:10])}{', …' if k > 10 else ''}) nor an integer 0-{k - 1}")
        out.append((n, i, c))
    return out


def _relative(name: str) -> str:
    """An image path as a label file gives it, as labelmend names images: ``/``-separated, no leading ``./``."""
    return name.replace("\\", "/").removeprefix("./")


def image_index(image_names, *, by_basename: bool):
    """A look-up from the name a label file gives an image to its index: by file name alone in the numbered
    layout (``00042.png`` or ``images/00042.png``), else by the path relative to the data folder (``/`` or ``\\``,
    a leading ``./`` allowed). Case-insensitive where that is unambiguous."""
    exact = {name: i for i, name in enumerate(image_names)}
    folded: dict[str, int | None] = {}
    for i, name in enumerate(image_names):
        key = name.lower()
        folded[key] = None if key in folded else i  # two names that differ in case only: exact match needed

    def lookup(name: str) -> int | None:
        name = Path(name).name if by_basename else _relative(name)
        return exact[name] if name in exact else folded.get(name.lower())

    return lookup


def read_clean_table(path: str | os.PathLike, *, image_names, class_names: tuple[str, ...]):
    """clean_labels.csv of the class-folder and label-table layouts: ``image,label`` lines for any images, the
    image as a path relative to the data folder. Returns (indices, labels, line numbers), each (M,) int64, in file
    order."""
    path = Path(path)
    rows = _image_label_lines(path, index_of=image_index(image_names, by_basename=False), class_names=class_names,
                              example=image_names[0], what="an image of the data set by its path in the data folder")
    return tuple(np.array([row[f] for row in rows], dtype=np.int64) for f in (1, 2, 0))


def read_verified_labels(path: str | os.PathLike, *, image_names, class_names: tuple[str, ...],
                         trusted: np.ndarray, trusted_line: np.ndarray,
                         by_basename: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read verified_labels.csv: ``image,label`` lines, the image as in the first column of a run's
    review_queue.csv, the label a class name or an integer 0..K-1. ``trusted`` (N,) holds each image's clean label
    or -1, ``trusted_line`` (N,) its line in clean_labels.csv. Returns (indices into the N images, labels), both
    (V,) int64, in file order.

    Refused with the file and line: an unknown image, a label outside the classes, an image named twice, a line that
    is not two fields, and a label that contradicts the image's clean label (one that agrees is dropped: the image
    is trusted already).
    """
    path = Path(path)
    what = "a file of the images/ folder" if by_basename else "an image of the data set by its path in the data folder"
    rows = _image_label_lines(path, index_of=image_index(image_names, by_basename=by_basename),
                              class_names=class_names, example=image_names[0], what=what, verb="verified")
    indices, labels = [], []
    for n, i, c in rows:
        if trusted[i] >= 0:
            if trusted[i] != c:
                raise DataError(f"{path}, line {n}: {image_names[i]} verified as {class_names[c]!r}, but "
                                f"clean_labels.csv line {trusted_line[i]} says {class_names[trusted[i]]!r}; correct "
                                "one of the two")
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


# ---------------------------------------------------------------- class folders and label tables


@dataclass(frozen=True)
class ImageListing:
    """The images of a class-folder or label-table data set, nothing decoded yet: ``paths`` (absolute),
    ``names`` (relative to the data folder, ``/``-separated: how every output names an image), ``labels`` (N,) the
    given labels, ``class_names`` in label order, and ``layout``."""

    layout: str
    paths: list[str]
    names: list[str]
    labels: np.ndarray
    class_names: tuple[str, ...]


def detect_layout(root: Path) -> str:
    """NUMBERED (images/ + noisy_labels.csv), LABEL_TABLE (labels.csv) or CLASS_FOLDERS (one folder per class)."""
    if (root / NOISY_CSV).exists():
        return NUMBERED
    if (root / LABEL_TABLE_CSV).exists():
        return LABEL_TABLE
    folders = [e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")]
    if folders == [TRAIN_IMAGES]:  # the numbered layout without its labels: that is the error to report
        return NUMBERED
    if folders:
        return CLASS_FOLDERS
    raise DataError(f"{root}: no data layout found; expected one folder per class, a {LABEL_TABLE_CSV} "
                    f"(`image,label` lines), or {TRAIN_IMAGES}/ + {NOISY_CSV} (README: Data layouts)")


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _images_under(folder: Path, root: Path) -> list[str]:
    """Every image file below ``folder`` (hidden files and folders skipped), as sorted paths relative to ``root``;
    any other file is refused by name, so nothing is left out silently."""
    found = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            path = Path(here) / name
            if not _is_image(name):
                raise DataError(f"{path}: not an image file ({', '.join(IMAGE_EXTENSIONS)}); move it out of the "
                                "data folder")
            found.append(path.relative_to(root).as_posix())
    return sorted(found)


def list_class_folders(root: Path, *, class_names: tuple[str, ...] | None = None, reserved=_ROOT_FILES,
                       source: str = "data folder") -> ImageListing:
    """DIR/<class name>/<image files, at any depth>: the folder is each image's (maybe wrong) label. Classes in
    sorted folder order (as Keras' image_dataset_from_directory and torchvision's ImageFolder order them) unless
    ``class_names`` gives the order; then every folder must be one of them."""
    folders, stray = [], []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            folders.append(entry.name)
        elif entry.name not in reserved:
            stray.append(entry.name)
    if stray:
        raise DataError(f"{root / stray[0]}: a file in the {source}'s root; in the class-folder layout every image "
                        f"goes in its class's folder (the root may hold only {', '.join(sorted(reserved))})")
    if class_names is None:
        class_names = tuple(folders)
    else:
        unknown = [f for f in folders if f not in class_names]
        if unknown:
            raise DataError(f"{root / unknown[0]}: folder {unknown[0]!r} is not one of the classes "
                            f"({', '.join(class_names[:10])}{', …' if len(class_names) > 10 else ''})")
    if len(class_names) > MAX_CLASSES:
        raise DataError(f"{root}: {len(class_names)} class folders; labelmend supports at most {MAX_CLASSES}")
    names, labels = [], []
    for c, cls in enumerate(class_names):
        if cls not in folders:
            continue
        found = _images_under(root / cls, root)
        if not found:
            raise DataError(f"{root / cls}: empty class folder (no {', '.join(IMAGE_EXTENSIONS)} files); add images "
                            "or remove the folder")
        names += found
        labels += [c] * len(found)
    if not names:
        raise DataError(f"{root}: no class folders with images")
    base = os.fspath(root)
    return ImageListing(CLASS_FOLDERS, [os.path.join(base, n) for n in names], names,
                        np.asarray(labels, dtype=np.int64), tuple(class_names))


def list_label_table(root: Path, *, class_names: tuple[str, ...] | None = None) -> ImageListing:
    """DIR/labels.csv: ``image,label`` lines (an `image,label` header allowed), the image a path relative to DIR,
    the label a class name or an integer. Classes: ``class_names`` if given; else 0 … K-1 when every label is an
    integer, or the sorted distinct names."""
    path = root / LABEL_TABLE_CSV
    pairs = _pairs(path, example="cats/001.jpg,cat")
    if not pairs:
        raise DataError(f"{path}: the file holds no labels")
    if class_names is None:
        values = [label for _, _, label in pairs]
        if all(re.fullmatch(r"\d+", v) for v in values):
            class_names = tuple(str(i) for i in range(max(map(int, values)) + 1))
        else:
            numbers = [(n, v) for n, _, v in pairs if re.fullmatch(r"\d+", v)]
            if numbers:
                raise DataError(f"{path}, line {numbers[0][0]}: label {numbers[0][1]!r} is a number where other lines "
                                f"name classes; use names throughout, or add {CLASS_NAMES_TXT}")
            class_names = tuple(sorted(set(values)))
    if len(class_names) > MAX_CLASSES:
        raise DataError(f"{path}: {len(class_names)} classes; labelmend supports at most {MAX_CLASSES}")
    names = list(dict.fromkeys(_relative(image) for _, image, _ in pairs))  # each image once, in file order
    rows = _image_label_lines(path, index_of=image_index(names, by_basename=False), class_names=class_names,
                              example=names[0], what="an image under the data folder", pairs=pairs)
    for n, i, _ in rows:
        if not _is_image(names[i]):
            raise DataError(f"{path}, line {n}: {names[i]!r} is not an image file ({', '.join(IMAGE_EXTENSIONS)})")
        if not (root / names[i]).is_file():
            raise DataError(f"{path}, line {n}: image file {names[i]!r} not found under {root}")
    base = os.fspath(root)
    return ImageListing(LABEL_TABLE, [os.path.join(base, n) for n in names], names,
                        np.array([c for _, _, c in rows], dtype=np.int64), tuple(class_names))


def list_test_folder(data_dir: str | os.PathLike, *, class_names: tuple[str, ...]) -> tuple[str, list[Path], list[str],
                                                                                          np.ndarray]:
    """A test folder in either test layout: (layout, image paths, names for the outputs, labels)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: test data folder not found")
    if (root / TEST_CSV).exists() or (root / TEST_IMAGES).is_dir():
        paths, labels = test_files(root, n_classes=len(class_names))
        return NUMBERED, paths, [p.name for p in paths], labels
    listing = list_class_folders(root, class_names=class_names, reserved=set(), source="test folder")
    return CLASS_FOLDERS, [Path(p) for p in listing.paths], listing.names, listing.labels
