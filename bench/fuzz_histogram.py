"""Coverage-guided fuzzing (atheris / libFuzzer) of ``rgb_histogram`` and the runtime's ``check_images``.

Arbitrary bytes become an array of arbitrary dtype (all real ones, byte-swapped, float16, long double, and the
rejected kinds: bool, complex, object, strings, datetimes, void), shape (0-5 axes, any axis lengths, biased to
(.., 3) and (.., 32, 32, 3)), strides (steps of +-1..3, transposes, broadcast zero strides, misaligned data),
values (raw bit patterns: NaN payloads, +-inf, subnormals, huge integers), read-only or not; sometimes a nested
list / scalar / None instead of an ndarray.

Oracles:
* rgb_histogram: either returns int64 counts equal to the client's ``np.histogram`` loop
  (``rgb_histogram_reference``), or raises InputError / InputTypeError; nothing else, and never writes the input.
* check_images: either returns a C-contiguous float32 (N, 32, 32, 3) array equal to ``x.astype(float32)`` with
  values in [0, 255] (and ``was_single`` right), or raises InputError / InputTypeError; never writes the input.
A crash in the compiled kernel kills the process (run it under the ASan build to catch silent overreads:
see bench/asan_histogram.sh).

    pip install atheris
    python bench/fuzz_histogram.py -max_total_time=60 [-print_final_stats=1] [corpus_dir]
"""

import sys

import atheris
import numpy as np

with atheris.instrument_imports():
    from labelmend.ext import rgb_histogram
    from labelmend.ext._reference import rgb_histogram_reference
    from labelmend.runtime.validation import check_images

    from labelmend.errors import InputError, InputTypeError

REAL = ["u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8", "g",
        ">u2", ">i2", ">u4", ">i4", ">u8", ">i8", ">f2", ">f4", ">f8"]
REJECTED = ["?", "c8", "c16", "O", "U2", "S2", "M8[s]", "m8[s]", "V4"]
DIMS = [1, 0, 2, 3, 3, 3, 4, 5, 7, 16, 32, 33, 47, 48, 49, 100]


def _array(fdp):
    """Build an arbitrary ndarray (and maybe a non-array wrapper of it) from the fuzzer's bytes."""
    # (An exhausted provider yields 0s: the picks below then default to a valid uint8 (H, W, 3) case.)
    rejected = fdp.ConsumeIntInRange(0, 15) == 15
    dtype = np.dtype(fdp.PickValueInList(REJECTED if rejected else REAL))
    ndim = fdp.PickValueInList([3, 4, 3, 4, 0, 1, 2, 5])
    mode = fdp.ConsumeIntInRange(0, 3)
    if mode == 0:      # (.., 3) small images
        shape = [fdp.PickValueInList(DIMS) for _ in range(ndim - 1)] + [3] if ndim else []
    elif mode == 1:    # (.., 32, 32, 3) runtime-sized
        lead = [fdp.ConsumeIntInRange(0, 3) for _ in range(max(ndim - 3, 0))]
        shape = (lead + [32, 32, 3])[-ndim:] if ndim else []
    else:              # anything
        shape = [fdp.ConsumeIntInRange(0, 6) for _ in range(ndim)]
    steps = [fdp.PickValueInList([1, 1, 1, 2, 3, -1, -2]) for _ in shape]
    base_shape = [s * abs(k) for s, k in zip(shape, steps)]
    size = int(np.prod(base_shape, dtype=np.int64))
    if size > 200_000:
        return None
    offset = fdp.ConsumeIntInRange(0, 1) if dtype.itemsize > 1 and dtype.kind != "O" else 0  # 1: misaligned
    if dtype.kind == "O":
        base = np.array([fdp.ConsumeInt(2) for _ in range(size)] + [None], dtype=object)[:size]
    else:
        raw = fdp.ConsumeBytes(size * dtype.itemsize)
        raw = (raw * (size * dtype.itemsize // max(len(raw), 1) + 1))[:size * dtype.itemsize] if raw else \
            bytes(size * dtype.itemsize)
        buf = bytearray(offset + size * dtype.itemsize)
        buf[offset:] = raw
        base = np.ndarray((size,), dtype=dtype, buffer=buf, offset=offset)
    base = base.reshape(base_shape)
    arr = base[tuple(slice(None, None, k) for k in steps) + (Ellipsis,)]  # Ellipsis: 0-d stays an array
    if arr.ndim >= 2 and fdp.ConsumeBool():
        axes = list(range(arr.ndim))
        i, j = fdp.ConsumeIntInRange(0, arr.ndim - 1), fdp.ConsumeIntInRange(0, arr.ndim - 1)
        axes[i], axes[j] = axes[j], axes[i]
        arr = arr.transpose(axes)
    if arr.ndim >= 1 and fdp.ConsumeIntInRange(0, 7) == 0:      # a broadcast (zero-stride, read-only) axis
        ax = fdp.ConsumeIntInRange(0, arr.ndim - 1)
        if arr.shape[ax] == 1:
            new = list(arr.shape)
            new[ax] = fdp.PickValueInList([0, 2, 32])
            arr = np.broadcast_to(arr, new)
    if arr.flags.writeable and fdp.ConsumeBool():
        arr.flags.writeable = False
    wrap = fdp.ConsumeIntInRange(0, 15)
    if wrap == 0 and arr.size <= 4096 and dtype.kind in "uif":
        return arr, arr.tolist()           # nested lists
    if wrap == 1:
        return arr, None
    return arr, arr


def _check_histogram(arr, x):
    before = arr.copy()
    xa = arr if x is None or isinstance(x, np.ndarray) else np.asarray(x)  # what was passed, as an array
    valid = x is not None and xa.dtype.kind in "uif" and xa.ndim in (3, 4) and xa.shape[-1] == 3
    try:
        got = rgb_histogram(x)
    except (InputError, InputTypeError):
        assert not valid, f"rejected a valid input: {xa.dtype} {xa.shape}"
        return
    assert valid, (xa.dtype, xa.shape)
    ref = rgb_histogram_reference(xa)
    assert got.dtype == np.int64 and got.shape == ref.shape, (got.dtype, got.shape, ref.shape)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(arr, before)


def _check_validation(arr, x):
    before = arr.copy()
    try:
        images, single = check_images(x)
    except (InputError, InputTypeError):
        return
    xa = arr if x is None or isinstance(x, np.ndarray) else np.asarray(x)
    assert xa.dtype.kind in "uif" and xa.shape[-3:] == (32, 32, 3) and xa.ndim in (3, 4), (xa.dtype, xa.shape)
    assert images.dtype == np.float32 and images.flags.c_contiguous and images.shape[1:] == (32, 32, 3)
    assert single == (xa.ndim == 3)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = xa.astype(np.float32).reshape(images.shape)
    np.testing.assert_array_equal(images, expected)
    if images.size:
        assert np.isfinite(images).all() and images.min() >= 0 and images.max() <= 255
    np.testing.assert_array_equal(arr, before)


def TestOneInput(data):
    fdp = atheris.FuzzedDataProvider(data)
    made = _array(fdp)
    if made is None:
        return
    arr, x = made
    _check_histogram(arr, x)
    _check_validation(arr, x)


def main():
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
