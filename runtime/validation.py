"""The one input validator every runtime entry point calls.

Notation: an *image* is an RGB array of shape (32, 32, 3) (height, width, channels-last) with values in [0, 255];
a *batch* is an array of shape (N, 32, 32, 3), N >= 0.

:func:`check_images` accepts unsigned/signed integer and float16/32/64 arrays (and lists/tuples that convert to such
an array), and returns a float32, C-contiguous (N, 32, 32, 3) array; it never writes to the caller's array (the
result may share memory with it when it already is float32 and C-contiguous). Wrong type or dtype →
:class:`~labelmend.errors.InputTypeError` (a ``TypeError``); wrong shape or values →
:class:`~labelmend.errors.InputError` (a ``ValueError``). Every message names the parameter, says what was
expected and what was got, and how to fix it.
"""

from __future__ import annotations

import numpy as np

from labelmend.bundle_format import IMAGE_SHAPE
from labelmend.errors import InputError, InputTypeError

_H, _W, _C = IMAGE_SHAPE
_RANGE_HINT = "expected RGB values in [0, 255]; if your image is scaled to [0, 1] multiply by 255"
_DTYPE_KINDS_OK = "uif"  # unsigned int, signed int, float
_DTYPE_KIND_NAMES = {
    "b": "boolean",
    "c": "complex",
    "O": "object",
    "U": "string",
    "S": "bytes",
    "M": "datetime",
    "m": "timedelta",
    "V": "structured/void",
}

__all__ = ["IMAGE_SHAPE", "check_images"]


def _expected(allow_single: bool, allow_batch: bool) -> str:
    if allow_single and allow_batch:
        return "(32, 32, 3) for one image or (N, 32, 32, 3) for a batch"
    if allow_single:
        return "(32, 32, 3)"
    return "(N, 32, 32, 3)"


def _shape_hint(shape: tuple) -> str:
    """A fix-it hint for a shape that is neither (32, 32, 3) nor (N, 32, 32, 3)."""
    nd = len(shape)
    if nd == 0:
        return "got a scalar, not an image"
    if nd in (3, 4) and shape[-3] in (1, 3, 4) and shape[-2:] == (_H, _W):
        return "the channel axis comes first; transpose to channels-last, e.g. np.moveaxis(x, -3, -1)"
    if shape[-2:] == (_H, _W) and nd in (2, 3):
        return "this looks grayscale; stack it to 3 channels, e.g. np.stack([x] * 3, axis=-1)"
    if nd in (3, 4) and shape[-1] == 1 and shape[-3:-1] == (_H, _W):
        return "this looks grayscale; stack it to 3 channels, e.g. np.repeat(x, 3, axis=-1)"
    if nd in (3, 4) and shape[-1] == 4:
        return "this looks like RGBA; drop the alpha channel, e.g. x[..., :3]"
    if nd in (3, 4) and shape[-1] == 3:
        return f"the image is {shape[-3]}×{shape[-2]}; resize to 32×32"
    if nd > 4:
        return "too many axes; remove the extra ones (e.g. np.squeeze) so the shape is (N, 32, 32, 3)"
    return "an image must be RGB, 32×32 pixels, channels-last"


def _describe(x: object) -> str:
    t = type(x)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _as_array(x: object, name: str, expected: str) -> np.ndarray:
    """Turn ``x`` into an ndarray without copying ndarrays; reject types that are not image arrays."""
    if isinstance(x, np.ndarray):
        return x
    if x is None or isinstance(x, (str, bytes, bytearray, dict, set, frozenset)):
        raise InputTypeError(
            f"{name}: expected a numpy array of shape {expected} with values in [0, 255], got {_describe(x)}"
        )
    if isinstance(x, (list, tuple)):
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise InputError(
                f"{name}: the {_describe(x)} does not convert to a rectangular numeric array (ragged nesting?); "
                f"expected shape {expected} ({exc})"
            ) from None
        if arr.dtype.kind == "O":
            raise InputTypeError(
                f"{name}: the {_describe(x)} holds non-numeric elements (or mixed nesting) and does not convert to "
                f"a numeric array; expected shape {expected} with values in [0, 255]"
            )
        return arr
    if isinstance(x, (bool, np.bool_)):
        raise InputTypeError(f"{name}: expected a numpy array of shape {expected}, got a bool")
    if isinstance(x, (int, float, complex, np.generic)):
        return np.asarray(x)  # a 0-d array: rejected below with a dtype or shape message
    hint = ""
    if hasattr(x, "__array_interface__") or hasattr(x, "__array__"):
        hint = f"; convert it first, e.g. np.asarray({name})"
    raise InputTypeError(f"{name}: expected a numpy array of shape {expected}, got {_describe(x)}{hint}")


def _nonfinite_error(arr: np.ndarray, name: str) -> InputError:
    bad = ~np.isfinite(arr)
    count = int(np.count_nonzero(bad))
    first = np.unravel_index(int(np.flatnonzero(bad)[0]), arr.shape)
    first = tuple(int(i) for i in first)
    return InputError(
        f"{name}: contains {count} non-finite value{'s' if count != 1 else ''} (NaN or inf); the first is "
        f"{arr[first].item()!r} at index {first}; {_RANGE_HINT}"
    )


def check_images(
    x: object, *, name: str = "image", allow_single: bool = True, allow_batch: bool = True
) -> tuple[np.ndarray, bool]:
    """Validate one image (32, 32, 3) or a batch (N, 32, 32, 3) of RGB values in [0, 255].

    Returns ``(images, was_single)``: ``images`` is float32, C-contiguous, shape (N, 32, 32, 3) (N = 1 for a single
    image); it may share memory with ``x`` but is never written to. ``allow_single`` / ``allow_batch`` restrict which
    of the two forms is accepted. Raises InputTypeError (TypeError) or InputError (ValueError).
    """
    expected = _expected(allow_single, allow_batch)
    arr = _as_array(x, name, expected)

    kind = arr.dtype.kind
    if kind not in _DTYPE_KINDS_OK:
        what = _DTYPE_KIND_NAMES.get(kind, "non-numeric")
        raise InputTypeError(
            f"{name}: dtype {arr.dtype} ({what}) is not supported; expected an integer (e.g. uint8) or float "
            f"array of RGB values in [0, 255]"
        )

    shape = tuple(arr.shape)
    is_single = shape == IMAGE_SHAPE
    is_batch = len(shape) == 4 and shape[1:] == IMAGE_SHAPE
    if is_single and not allow_single:
        raise InputError(
            f"{name}: expected a batch of shape (N, 32, 32, 3), got a single image of shape {shape}; "
            f"use predict() for one image, or add a batch axis with {name}[None]"
        )
    if is_batch and not allow_batch:
        raise InputError(
            f"{name}: expected one image of shape (32, 32, 3), got a batch of shape {shape}; "
            f"use predict_batch() for a batch"
        )
    if not (is_single or is_batch):
        raise InputError(f"{name}: expected shape {expected} RGB, got {shape}; {_shape_hint(shape)}")

    if arr.size and not (kind == "u" and arr.dtype.itemsize == 1):  # uint8 is always in range
        # min/max propagate NaN and show ±inf, so the happy path needs no temporary boolean array.
        lo, hi = arr.min().item(), arr.max().item()
        if kind == "f" and not (np.isfinite(lo) and np.isfinite(hi)):  # NaN, +inf or -inf somewhere
            raise _nonfinite_error(arr, name)
        if lo < 0 or hi > 255:
            raise InputError(f"{name}: values range from {lo!r} to {hi!r}; {_RANGE_HINT}")

    images = np.ascontiguousarray(arr, dtype=np.float32)
    if is_single:
        images = images.reshape((1, *IMAGE_SHAPE))
    return images, is_single
