# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Private compiled kernel behind :func:`labelmend.ext.area_resize`; call that instead.

Integer arithmetic only, so it equals the numpy reference (``_reference.area_resize_numpy``) bit for bit: the
whole H x W image is resized to D x D by a box filter, each axis on its own. Along an axis of S source pixels,
output pixel i covers [i*S, (i+1)*S) and source pixel j covers [j*D, (j+1)*D) in units of 1/D source pixel; the
weight of j in i is their overlap, an integer, and the weights of one output pixel sum to S. Each output is
round-half-up(sum of weight_y * weight_x * value / (H * W)), computed as (2 * acc + H * W) // (2 * H * W) in int64.
"""

from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport calloc, free


cdef inline int64_t _overlap(int64_t a0, int64_t a1, int64_t b0, int64_t b1) noexcept nogil:
    cdef int64_t lo = a0 if a0 > b0 else b0
    cdef int64_t hi = a1 if a1 < b1 else b1
    return hi - lo if hi > lo else 0


def area_resize_into(const uint8_t[:, :, :] src, uint8_t[:, :, ::1] out):
    """Resize ``src`` (H, W, C) into ``out`` (D, D, C); the wrapper checks shapes."""
    cdef Py_ssize_t h = src.shape[0], w = src.shape[1], c = src.shape[2], d = out.shape[0]
    if out.shape[1] != d or out.shape[2] != c or h < 1 or w < 1 or d < 1:
        raise ValueError("area_resize_into: out must be (D, D, C) with C = the image's channels, image non-empty")
    cdef Py_ssize_t i, j, x, k, ch, j0, j1
    cdef int64_t wt, acc, area2 = 2 * <int64_t>h * w
    cdef int64_t* rows = <int64_t*>calloc(d * w * c, sizeof(int64_t))  # (D, W, C): the vertical pass
    if rows == NULL:
        raise MemoryError()
    try:
        with nogil:
            for i in range(d):
                j0 = (i * h) // d
                j1 = ((i + 1) * h - 1) // d
                for j in range(j0, j1 + 1):
                    wt = _overlap(i * h, (i + 1) * h, j * d, (j + 1) * d)
                    if wt == 0:
                        continue
                    for x in range(w):
                        for ch in range(c):
                            rows[(i * w + x) * c + ch] += wt * src[j, x, ch]
            for i in range(d):
                for k in range(d):
                    j0 = (k * w) // d
                    j1 = ((k + 1) * w - 1) // d
                    for ch in range(c):
                        acc = 0
                        for x in range(j0, j1 + 1):
                            acc += _overlap(k * w, (k + 1) * w, x * d, (x + 1) * d) * rows[(i * w + x) * c + ch]
                        out[i, k, ch] = <uint8_t>((2 * acc + area2 // 2) // area2)
    finally:
        free(rows)
