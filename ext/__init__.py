"""The two image kernels: RGB colour-histogram features, and the resize that turns any image into the models' input.

**Histogram**: 5 bins per channel over [0, 255], 15 counts per image.

:func:`rgb_histogram` equals the client's baseline
``concatenate([np.histogram(img[:, :, c], bins=np.linspace(0, 255, 6))[0] for c in (0, 1, 2)])``
exactly, for every real dtype and any values (NaN, +-inf and values outside [0, 255] are not
counted). It runs a compiled kernel when ``labelmend.ext._histogram`` is built and a vectorised
numpy fallback otherwise (see :data:`HAVE_EXTENSION`).

**Resize**: :func:`area_resize` box-filters a whole (H, W, 3) uint8 image to 32×32, each axis on its own (each
output pixel the area-weighted mean of the source pixels it covers, rounded half up). A non-square image is not
cropped: its aspect ratio is given up, as Keras' ``image_dataset_from_directory`` resizes by default, so nothing
of it is lost and a 32×32 image stretched to any size comes back as it was (up to the stretch's own rounding).
Integer arithmetic throughout, so the compiled kernel (``labelmend.ext._resize``) and its numpy fallback agree bit
for bit; a 32×32 image comes back unchanged.
"""

import numpy as np

from labelmend.errors import InputError, InputTypeError

from ._reference import BIN_EDGES, N_FEATURES, area_resize_numpy, rgb_histogram_numpy

try:
    from labelmend.ext._histogram import hist_into as _hist_into
    from labelmend.ext._histogram import hist_u8_image as _hist_u8_image
except ImportError:
    _hist_into = None
    _hist_u8_image = None

try:
    from labelmend.ext._resize import area_resize_into as _area_resize_into
except ImportError:
    _area_resize_into = None

HAVE_EXTENSION = _hist_into is not None and _area_resize_into is not None
"""True when the compiled kernels imported; False means the (slower, identical) numpy fallbacks."""

INPUT_SIZE = 32
"""The side of the models' square input, in pixels."""

__all__ = ["BIN_EDGES", "HAVE_EXTENSION", "INPUT_SIZE", "N_FEATURES", "area_resize", "rgb_histogram"]

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


def area_resize(image, size: int = INPUT_SIZE) -> np.ndarray:
    """An RGB image of any size, box-filtered to (size, size, 3) uint8 (module docstring).

    Parameters
    ----------
    image : numpy.ndarray, shape (H, W, 3), dtype uint8
        Any H, W >= 1, any strides.

    Raises
    ------
    InputError (a ValueError)
        If the shape is not (H, W, 3) with H, W >= 1.
    InputTypeError (a TypeError)
        If ``image`` is not a uint8 numpy array.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        what = f"dtype {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise InputTypeError(f"image must be a uint8 numpy array (8-bit RGB), got {what}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"expected an RGB image of shape (H, W, 3) with H, W >= 1, got shape {image.shape}")
    if not (isinstance(size, int) and size >= 1):
        raise InputError(f"size must be a whole number >= 1, got {size!r}")
    if _area_resize_into is None:
        return area_resize_numpy(image, size)
    out = np.empty((size, size, 3), dtype=np.uint8)
    _area_resize_into(image, out)
    return out
