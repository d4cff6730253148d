"""Image files and in-memory images of any size → the models' input: one (32, 32, 3) uint8 RGB array.

This is labelmend's one preprocessing: training (class-folder and label-table layouts), ``labelmend evaluate``,
``labelmend predict`` and :meth:`Predictor.predict_file` all call :func:`to_input`, so a file gives the same
pixels, and so the same probabilities, through each of them.

1. Decode (:func:`decode_image`) with Pillow: PNG, JPEG, BMP and WebP (:data:`FORMATS`). A JPEG's EXIF
   orientation is applied (the image as a person sees it). Grayscale becomes RGB (the gray value in each channel),
   an alpha channel is dropped (the colour values as stored, not blended); each is reported, never silent.
   A 16-bit PNG keeps the high byte of each value (Pillow's own reduction for RGB, the same for grayscale).
2. Resize (:func:`labelmend.ext.area_resize`): the whole image box-filtered to 32×32, each axis on its own (no
   crop: a non-square image gives up its aspect ratio, as Keras resizes by default), integer arithmetic, bit-exact
   between its compiled kernel and numpy fallback.

Pillow is imported on the first decode: the ``cpu`` install (numpy + onnxruntime) predicts arrays without it; files
need ``pip install 'labelmend[eval]'``.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from labelmend.errors import DataError, InputError, InputTypeError, MissingDependencyError
from labelmend.ext import area_resize

FORMATS = ("PNG", "JPEG", "BMP", "WEBP")
"""The file formats read (Pillow's names); the file's content decides, not its extension."""
CONVERSIONS = {"grayscale": "grayscale images converted to RGB", "alpha": "images with an alpha channel dropped"}
"""What :func:`to_input_noted` reports, in the words the training log and report.md use."""
PREPROCESSING_VERSION = 1
"""Changes whenever :func:`to_input` would give other pixels for the same file: it keys training's image cache."""

_GRAY_MODES = {"1", "L", "LA", "La"}
_ALPHA_MODES = {"LA", "La", "RGBA", "RGBa", "PA"}
_COLOUR_MODES = _GRAY_MODES | _ALPHA_MODES | {"RGB", "P", "CMYK", "YCbCr", "RGBX"}


def _pillow():
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise MissingDependencyError("reading image files needs Pillow: pip install 'labelmend[eval]' "
                                     "(or pass decoded numpy arrays)") from None
    return Image, ImageOps


def from_pil(img, *, name: str = "image") -> tuple[np.ndarray, tuple[str, ...]]:
    """A PIL image as (H, W, 3) uint8 RGB, and what was converted: ("grayscale",), ("alpha",), both or ()."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L"):  # 16-bit grayscale: the high byte, as Pillow reduces 16-bit RGB
        gray = (np.asarray(img, dtype=np.uint16) >> 8).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2), ("grayscale",)
    if mode not in _COLOUR_MODES:
        raise DataError(f"{name}: {mode} image (16-bit or floating-point pixels); save it as an 8-bit RGB, "
                        "grayscale or RGBA image")
    notes = []
    if mode in _GRAY_MODES:
        notes.append("grayscale")
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in img.info):
        notes.append("alpha")
    rgb = img if mode == "RGB" else img.convert("RGB")
    return np.asarray(rgb, dtype=np.uint8), tuple(notes)


def decode_image(path: str | os.PathLike) -> tuple[np.ndarray, tuple[str, ...]]:
    """Decode an image file into (H, W, 3) uint8 RGB at its own size, and what was converted (:func:`from_pil`).
    A missing, empty, truncated or corrupt file, or another format, raises DataError naming the file."""
    Image, ImageOps = _pillow()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=FORMATS) as img:
                img.load()  # decodes the whole file now: a truncated one fails here, by name
                img = ImageOps.exif_transpose(img)
                return from_pil(img, name=os.fspath(path))
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{path}: image too large to decode safely ({exc})") from None
    except Image.UnidentifiedImageError:
        empty = os.path.isfile(path) and os.path.getsize(path) == 0
        raise DataError(f"{path}: " + ("empty file (0 bytes)" if empty else
                                       f"not a readable image ({', '.join(FORMATS)})")) from None
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's "image file is truncated", bad chunks, …
        raise DataError(f"{path}: corrupt or truncated image ({exc})") from None


def to_input(image) -> np.ndarray:
    """The models' (32, 32, 3) uint8 input from a file path, a PIL image, or a uint8 numpy image of any size:
    (H, W) grayscale, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA (alpha dropped)."""
    return to_input_noted(image)[0]


def to_input_noted(image) -> tuple[np.ndarray, tuple[str, ...]]:
    """:func:`to_input` and what was converted on the way ("grayscale", "alpha")."""
    if isinstance(image, (str, os.PathLike)):
        pixels, notes = decode_image(image)
    elif isinstance(image, np.ndarray):
        pixels, notes = _from_array(image)
    elif hasattr(image, "mode") and hasattr(image, "convert"):  # a PIL image (Pillow itself is not imported)
        pixels, notes = from_pil(image)
    else:
        raise InputTypeError(f"expected an image file path, a PIL image or a numpy array, got {type(image).__name__}")
    return area_resize(pixels), notes


def _from_array(a: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    if a.dtype != np.uint8:
        raise InputTypeError(f"an image of any size must be 8-bit (uint8), got dtype {a.dtype}; a (32, 32, 3) "
                             "float image in [0, 255] goes to predict() directly")
    if a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 1):
        gray = a.reshape(a.shape[0], a.shape[1], 1)
        return np.repeat(gray, 3, axis=2), ("grayscale",)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        return a[:, :, :3], (("alpha",) if a.shape[2] == 4 else ())
    raise InputError(f"expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {a.shape}")
