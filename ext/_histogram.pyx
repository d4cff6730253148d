# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Private compiled kernel behind :func:`labelmend.ext.rgb_histogram`; call that instead.

Bins are ``np.linspace(0, 255, 6)`` = 0, 51, 102, 153, 204, 255: left-closed, the last one closed.
Counting "how many values are >= each edge" and differencing gives exactly ``np.histogram``'s
counts: with explicit bin edges numpy sorts and ``searchsorted``s, i.e. compares the data with
the edges, and every edge is an integer exactly representable in float32/float64, so comparing
in the input's own precision gives the same answer as numpy's float64 comparison. NaN compares
false against everything and is never counted, nor are -inf/+inf.

``hist_into`` trusts nothing about the caller beyond what its typed memoryviews enforce, and also
checks the output shape, so no input can make it read or write out of bounds. ``hist_u8_image``
takes any object and returns None unless it is the common case (an exact ndarray, uint8,
C-contiguous, shape (H, W, 3)); it is the wrapper's lean single-image path.
"""

cimport numpy as cnp
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memset

import numpy as np

cnp.import_array()

ctypedef fused real_t:
    uint8_t
    int8_t
    uint16_t
    int16_t
    uint32_t
    int32_t
    uint64_t
    int64_t
    float
    double

cdef enum:
    CHUNK = 48          # elements per chunk: a multiple of 3 (channels) and of the SIMD widths
    N_FEATURES = 15


cdef inline void _u8_row(const uint8_t* p, Py_ssize_t n, int64_t* out) noexcept nogil:
    """Histogram of one uint8 image of n = H*W*3 interleaved values into out[0:15].

    Per chunk position j, count values >= 51, 102, 153, 204 in uint8 accumulators (the compiler
    vectorises the inner loop); flush at most every 255 chunks so they cannot overflow.
    """
    cdef uint8_t a1[CHUNK]
    cdef uint8_t a2[CHUNK]
    cdef uint8_t a3[CHUNK]
    cdef uint8_t a4[CHUNK]
    cdef int64_t ge[12]            # ge[c*4 + t]: channel c, values >= 51*(t+1)
    cdef Py_ssize_t nchunk = n // CHUNK, k = 0, kk, m, j, i
    cdef const uint8_t* q
    cdef uint8_t v
    cdef int64_t total = n // 3
    cdef int c
    for j in range(12):
        ge[j] = 0
    while k < nchunk:
        m = nchunk - k
        if m > 255:
            m = 255
        memset(a1, 0, CHUNK)
        memset(a2, 0, CHUNK)
        memset(a3, 0, CHUNK)
        memset(a4, 0, CHUNK)
        for kk in range(m):
            q = p + (k + kk) * CHUNK
            for j in range(CHUNK):
                v = q[j]
                a1[j] += v >= 51
                a2[j] += v >= 102
                a3[j] += v >= 153
                a4[j] += v >= 204
        for j in range(CHUNK):
            c = j % 3
            ge[c * 4 + 0] += a1[j]
            ge[c * 4 + 1] += a2[j]
            ge[c * 4 + 2] += a3[j]
            ge[c * 4 + 3] += a4[j]
        k += m
    for i in range(nchunk * CHUNK, n):     # tail; CHUNK % 3 == 0 so the channel is i % 3
        v = p[i]
        c = i % 3
        ge[c * 4 + 0] += v >= 51
        ge[c * 4 + 1] += v >= 102
        ge[c * 4 + 2] += v >= 153
        ge[c * 4 + 3] += v >= 204
    for c in range(3):
        out[c * 5 + 0] = total - ge[c * 4 + 0]
        out[c * 5 + 1] = ge[c * 4 + 0] - ge[c * 4 + 1]
        out[c * 5 + 2] = ge[c * 4 + 1] - ge[c * 4 + 2]
        out[c * 5 + 3] = ge[c * 4 + 2] - ge[c * 4 + 3]
        out[c * 5 + 4] = ge[c * 4 + 3]


cdef inline void _real_row(const real_t* p, Py_ssize_t n, int64_t* out) noexcept nogil:
    """Histogram of one image of any supported dtype (n interleaved values) into out[0:15].

    Six comparisons per value, in the input's own type: >= 0, 51, 102, 153, 204 and > 255;
    bin i = ge[i] - ge[i+1], last bin = ge[4] - gt255. NaN fails all six, +inf passes all six,
    -inf none: none of them is counted. Per-position int32 accumulators as in _u8_row, flushed
    at most every 2**30 chunks.
    """
    cdef int32_t g0[CHUNK]
    cdef int32_t g1[CHUNK]
    cdef int32_t g2[CHUNK]
    cdef int32_t g3[CHUNK]
    cdef int32_t g4[CHUNK]
    cdef int32_t g5[CHUNK]
    cdef int64_t ge[18]            # ge[c*6 + t]
    cdef Py_ssize_t nchunk = n // CHUNK, k = 0, kk, m, i, j
    cdef const real_t* q
    cdef real_t v
    cdef int c, t
    for j in range(18):
        ge[j] = 0
    while k < nchunk:
        m = nchunk - k
        if m > (1 << 30):
            m = 1 << 30
        for j in range(CHUNK):
            g0[j] = 0
            g1[j] = 0
            g2[j] = 0
            g3[j] = 0
            g4[j] = 0
            g5[j] = 0
        for kk in range(m):
            q = p + (k + kk) * CHUNK
            for j in range(CHUNK):
                v = q[j]
                g0[j] += v >= 0
                g1[j] += v >= 51
                g2[j] += v >= 102
                g3[j] += v >= 153
                g4[j] += v >= 204
                g5[j] += v > 255
        for j in range(CHUNK):
            c = j % 3
            ge[c * 6 + 0] += g0[j]
            ge[c * 6 + 1] += g1[j]
            ge[c * 6 + 2] += g2[j]
            ge[c * 6 + 3] += g3[j]
            ge[c * 6 + 4] += g4[j]
            ge[c * 6 + 5] += g5[j]
        k += m
    for i in range(nchunk * CHUNK, n):     # tail; CHUNK % 3 == 0 so the channel is i % 3
        v = p[i]
        c = i % 3
        ge[c * 6 + 0] += v >= 0
        ge[c * 6 + 1] += v >= 51
        ge[c * 6 + 2] += v >= 102
        ge[c * 6 + 3] += v >= 153
        ge[c * 6 + 4] += v >= 204
        ge[c * 6 + 5] += v > 255
    for c in range(3):
        for t in range(5):
            out[c * 5 + t] = ge[c * 6 + t] - ge[c * 6 + t + 1]


cdef void _fill(const real_t[:, ::1] x, int64_t[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t i, n = x.shape[1]
    cdef int j
    if n == 0:
        for i in range(x.shape[0]):
            for j in range(N_FEATURES):
                out[i, j] = 0
        return
    for i in range(x.shape[0]):
        if real_t is uint8_t:
            _u8_row(&x[i, 0], n, &out[i, 0])
        else:
            _real_row(&x[i, 0], n, &out[i, 0])


def hist_into(object x, int64_t[:, ::1] out):
    """Fill ``out`` (N, 15) int64 with the histograms of ``x`` (N, H*W*3), C-contiguous.

    ``x`` must have one of the ten native dtypes uint8..int64, float32, float64 (ValueError
    otherwise); the caller makes it C-contiguous and native-endian.
    """
    if not cnp.PyArray_Check(x):
        raise TypeError("x must be a numpy array")
    cdef cnp.ndarray a = <cnp.ndarray>x
    if cnp.PyArray_NDIM(a) != 2:
        raise ValueError("x must be 2-D (N, H*W*3)")
    if cnp.PyArray_DIM(a, 1) % 3 != 0:
        raise ValueError("row length of x must be a multiple of 3")
    if out.shape[0] != cnp.PyArray_DIM(a, 0) or out.shape[1] != N_FEATURES:
        raise ValueError("out must have shape (N, 15)")
    cdef Py_ssize_t size = cnp.PyArray_ITEMSIZE(a)
    if not cnp.PyArray_ISNOTSWAPPED(a):
        raise ValueError("x must be native-endian")
    if cnp.PyArray_ISUNSIGNED(a):
        if size == 1:
            _call_u8(x, out)
        elif size == 2:
            _call_u16(x, out)
        elif size == 4:
            _call_u32(x, out)
        elif size == 8:
            _call_u64(x, out)
        else:
            raise ValueError(f"unsupported dtype {a.dtype}")
    elif cnp.PyArray_ISSIGNED(a):
        if size == 1:
            _call_i8(x, out)
        elif size == 2:
            _call_i16(x, out)
        elif size == 4:
            _call_i32(x, out)
        elif size == 8:
            _call_i64(x, out)
        else:
            raise ValueError(f"unsupported dtype {a.dtype}")
    elif cnp.PyArray_ISFLOAT(a) and size == 4:
        _call_f32(x, out)
    elif cnp.PyArray_ISFLOAT(a) and size == 8:
        _call_f64(x, out)
    else:
        raise ValueError(f"unsupported dtype {a.dtype}")


# One typed entry point per dtype: the memoryview acquisition checks dtype, ndim and contiguity.
cdef _call_u8(const uint8_t[:, ::1] x, int64_t[:, ::1] out):
    with nogil:
        _fill(x, out)

cdef _call_i8(const int8_t[:, ::1] x, int64_t[:, ::1] out):
    with nogil:
        _fill(x, out)

cdef _call_u16(const uint16_t[:, ::1] x, int64_t[:, ::1] out):
    with nogil:
        _fill(x, out)

cdef _call_i16(const int16_t[:, ::1] x, int64_t[:, ::1] out):
    with nogil:
        _fill(x, out)

cdef _call_u32(const uint32_t[:, ::1] x, int64_t[:, ::1] out):
    with nogil:
        _fill(x, out)

cdef _call_i32(const int32_t[:, ::1] x, int64_t[:, ::1] out):
    with nogil:
        _fill(x, out)

cdef _call_u64(const uint64_t[:, ::1] x, int64_t[:, ::1] out):
    with nogil:
        _fill(x, out)

cdef _call_i64(const int64_t[:, ::1] x, int64_t[:, ::1] out):
    with nogil:
        _fill(x, out)

cdef _call_f32(const float[:, ::1] x, int64_t[:, ::1] out):
    with nogil:
        _fill(x, out)

cdef _call_f64(const double[:, ::1] x, int64_t[:, ::1] out):
    with nogil:
        _fill(x, out)


def hist_u8_image(object img):
    """Histogram (15,) of one image if it is an exact uint8 C-contiguous (H, W, 3) ndarray, else None.

    All checks are done here at C level, so the common single-image call costs well under a µs.
    """
    if not cnp.PyArray_CheckExact(img):
        return None
    cdef cnp.ndarray a = <cnp.ndarray>img
    if (cnp.PyArray_TYPE(a) != cnp.NPY_UINT8 or cnp.PyArray_NDIM(a) != 3
            or cnp.PyArray_DIM(a, 2) != 3 or not cnp.PyArray_IS_C_CONTIGUOUS(a)):
        return None
    cdef cnp.npy_intp dim = N_FEATURES
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, &dim, cnp.NPY_INT64, 0)
    cdef const uint8_t* p = <const uint8_t*>cnp.PyArray_DATA(a)
    cdef int64_t* o = <int64_t*>cnp.PyArray_DATA(out)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(a)
    cdef int j
    with nogil:
        if n == 0:
            for j in range(N_FEATURES):
                o[j] = 0
        else:
            _u8_row(p, n, o)
    return out
