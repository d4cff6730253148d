"""RGB colour-histogram features: 5 bins per channel over [0, 255], 15 counts per image.

:func:`rgb_histogram` equals the client's baseline
``concatenate([np.histogram(img[:, :, c], bins=np.linspace(0, 255, 6))[0] for c in (0, 1, 2)])``
exactly, for every real dtype and any values (NaN, +-inf and values outside [0, 255] are not
counted). It runs a compiled kernel when ``labelmend.ext._histogram`` is built and a vectorised
numpy fallback otherwise (see :data:`HAVE_EXTENSION`).
"""

import numpy as np

from labelmend.errors import InputError, InputTypeError

from ._reference import BIN_EDGES, N_FEATURES, rgb_histogram_numpy

try:
    from labelmend.ext._histogram import hist_into as _hist_into
    from labelmend.ext._histogram import hist_u8_image as _hist_u8_image
except ImportError:
    _hist_into = None
    _hist_u8_image = None

HAVE_EXTENSION = _hist_into is not None
"""True when the compiled kernel imported; False means the (slower, identical) numpy fallback."""

__all__ = ["BIN_EDGES", "HAVE_EXTENSION", "N_FEATURES", "rgb_histogram"]

# The native dtypes the kernel takes, by (kind, itemsize); float16 is widened to float32 (exact),
# other dtypes (long double) go to the numpy fallback.
_KERNEL_DTYPES = {
    (kind, size): np.dtype(f"{kind}{size}") for kind in "ui" for size in (1, 2, 4, 8)
}
_KERNEL_DTYPES.update({("f", 2): np.dtype(np.float32), ("f", 4): np.dtype(np.float32),
                       ("f", 8): np.dtype(np.float64)})

_SHAPE_MSG = "expected an RGB image of shape (H, W, 3) or a batch (N, H, W, 3), got shape {}"


def rgb_histogram(images):
    """Per-channel histograms of one RGB image or a batch of them.

    Parameters
    ----------
    images : array_like, shape (H, W, 3) or (N, H, W, 3)
        Channels R, G, B; any integer or floating dtype, any strides. N, H, W may be 0.

    Returns
    -------
    numpy.ndarray of int64, shape (15,) or (N, 15)
        Counts of bins [0, 51), [51, 102), [102, 153), [153, 204), [204, 255] for R, then G, then B.

    Raises
    ------
    InputError (a ValueError)
        If the shape is not (H, W, 3) or (N, H, W, 3), or ``images`` is not array-like.
    InputTypeError (a TypeError)
        If the dtype is not a real number type (bool, complex, object, strings, datetimes...).
    """
    # Lean path for the common case: one C-contiguous uint8 (H, W, 3) ndarray, checked in C.
    if _hist_u8_image is not None:
        out = _hist_u8_image(images)
        if out is not None:
            return out
    return _rgb_histogram_checked(images)


def _rgb_histogram_checked(images):
    if isinstance(images, np.ndarray):
        arr = images
    else:
        try:
            arr = np.asarray(images)
        except (ValueError, TypeError) as exc:
            raise InputError(f"images could not be converted to a numpy array: {exc}") from exc
    dtype = arr.dtype
    if dtype.kind not in "uif":
        raise InputTypeError(
            f"images must have an integer or floating dtype (e.g. uint8), got dtype {dtype}")
    shape = arr.shape
    if arr.ndim not in (3, 4) or shape[-1] != 3:
        raise InputError(_SHAPE_MSG.format(shape))

    single = arr.ndim == 3
    n = 1 if single else shape[0]
    kernel_dtype = _KERNEL_DTYPES.get((dtype.kind, dtype.itemsize))
    if _hist_into is None or kernel_dtype is None:
        return rgb_histogram_numpy(arr)
    # Copies only when needed: non-contiguous/negative strides, byte-swapped, float16.
    x = np.ascontiguousarray(arr, dtype=kernel_dtype).reshape(n, shape[-3] * shape[-2] * 3)
    out = np.empty((n, N_FEATURES), dtype=np.int64)
    _hist_into(x, out)
    return out[0] if single else out
