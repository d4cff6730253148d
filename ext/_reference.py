"""Pure-numpy RGB histograms: the client's loop (ground truth) and a vectorised fallback.

Both return int64 counts, (15,) for one (H, W, 3) image or (N, 15) for an (N, H, W, 3) batch,
and do no validation beyond what numpy itself does (the public wrapper validates).
"""

import numpy as np

BIN_EDGES = np.linspace(0, 255, 6)
"""0, 51, 102, 153, 204, 255: the client's bin edges (left-closed bins, the last one closed)."""

N_FEATURES = 15

_BLOCK = 1024  # images per block in the vectorised fallback, bounds its temporary memory


def rgb_histogram_reference(images):
    """The client's baseline, literally: ``np.histogram`` per image per channel (slow)."""
    images = np.asarray(images)
    single = images.ndim == 3
    batch = images[None] if single else images
    out = np.zeros((batch.shape[0], N_FEATURES), dtype=np.int64)
    for i, img in enumerate(batch):
        out[i] = np.concatenate([np.histogram(img[:, :, c], bins=BIN_EDGES)[0] for c in (0, 1, 2)])
    return out[0] if single else out


def rgb_histogram_numpy(images):
    """Vectorised equivalent of :func:`rgb_histogram_reference` (same counts, exactly).

    Counts the values >= each edge (and > 255) per channel and takes differences, like the
    compiled kernel; the comparisons are exact for every real dtype because every edge is an
    integer that each float type represents exactly. NaN and +-inf are never counted.
    """
    images = np.asarray(images)
    single = images.ndim == 3
    batch = images[None] if single else images
    n = batch.shape[0]
    flat = batch.reshape(n, batch.shape[1] * batch.shape[2], 3)
    out = np.empty((n, N_FEATURES), dtype=np.int64)
    for start in range(0, n, _BLOCK):
        x = flat[start:start + _BLOCK]
        # ge[t] has shape (B, 3): values >= edge t for t < 5, values > 255 for t == 5
        ge = [np.count_nonzero(x >= e, axis=1) for e in BIN_EDGES[:5].tolist()]
        ge.append(np.count_nonzero(x > 255.0, axis=1))
        block = out[start:start + _BLOCK].reshape(-1, 3, 5)
        for t in range(5):
            block[:, :, t] = ge[t] - ge[t + 1]
    return out[0] if single else out


def _box_axis(a: np.ndarray, d: int) -> np.ndarray:
    """Box-filter int64 ``a`` (S, ...) along axis 0 to (d, ...): output i integrates the step function
    f(u) = a[u // d] over u in [i*S, (i+1)*S), exactly, from prefix sums (units of 1/d source pixel)."""
    s = a.shape[0]
    zero = np.zeros((1, *a.shape[1:]), dtype=np.int64)
    prefix = np.concatenate([zero, np.cumsum(a, axis=0)])
    padded = np.concatenate([a, zero])
    t = np.arange(d + 1, dtype=np.int64) * s
    q, r = np.divmod(t, d)
    r = r.reshape(-1, *([1] * (a.ndim - 1)))
    integral = d * prefix[q] + r * padded[q]
    return np.diff(integral, axis=0)


def area_resize_numpy(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` (H, W, C) uint8, box-filtered to (size, size, C) uint8, each axis on its own, rounding half up.

    Pure integer arithmetic (the compiled kernel's rule, see ``_resize.pyx``), vectorised with prefix sums."""
    h, w = image.shape[:2]
    acc = _box_axis(_box_axis(image.astype(np.int64), size).swapaxes(0, 1), size).swapaxes(0, 1)
    return ((2 * acc + h * w) // (2 * h * w)).astype(np.uint8)
