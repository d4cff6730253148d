"""labelmend.ext.rgb_histogram: compiled kernel vs the client's np.histogram loop vs the numpy fallback."""

import importlib
import re
import sys

import labelmend.ext as ext
import numpy as np
import pytest
from labelmend.ext import BIN_EDGES, HAVE_EXTENSION, N_FEATURES, rgb_histogram
from labelmend.ext._reference import rgb_histogram_numpy, rgb_histogram_reference

from labelmend.errors import InputError, InputTypeError

REAL_DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64,
               np.longlong, np.ulonglong, np.float16, np.float32, np.float64, np.longdouble]

# Values at and around every edge, special floats and out-of-range values.
EDGE_VALUES = [0.0, -0.0, -1e-300, 1e-300, 50.99999999, 51.0, 51.00000001, 101.99999, 102.0,
               152.9999999999, 153.0, 203.99999, 204.0, 254.99999, 255.0, 255.0000001, 255.00001,
               256.0, -1.0, -50.0, 1e30, -1e30, np.nan, np.inf, -np.inf, np.nextafter(51.0, 0.0),
               np.nextafter(255.0, 300.0), np.nextafter(0.0, -1.0), 25.5, 127.5, 229.5]


def check_all(images):
    """rgb_histogram == reference == numpy fallback, with the right dtype and shape."""
    expected = rgb_histogram_reference(images)
    got = rgb_histogram(images)
    assert got.dtype == np.int64
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(rgb_histogram_numpy(images), expected)
    return got


def test_constants():
    np.testing.assert_array_equal(BIN_EDGES, np.linspace(0, 255, 6))
    assert BIN_EDGES.tolist() == [0.0, 51.0, 102.0, 153.0, 204.0, 255.0]
    assert N_FEATURES == 15
    assert isinstance(HAVE_EXTENSION, bool)


def test_extension_is_built():
    # The product ships with the kernel; the fallback is only a safety net.
    assert HAVE_EXTENSION


def test_random_uint8_batch():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(64, 32, 32, 3), dtype=np.uint8)
    got = check_all(images)
    assert got.shape == (64, 15)
    assert (got.reshape(64, 3, 5).sum(axis=2) == 32 * 32).all()
    for img, row in zip(images[:8], got[:8]):
        np.testing.assert_array_equal(rgb_histogram(img), row)


@pytest.mark.parametrize("shape", [(32, 32, 3), (1, 1, 3), (7, 5, 3), (3, 17, 3), (2, 3, 5, 3), (1, 31, 33, 3)])
def test_shapes_uint8_all_values(shape):
    # Cover every uint8 value in every channel, with image sizes that leave a chunk tail.
    images = (np.arange(int(np.prod(shape))) * 7 % 256).astype(np.uint8).reshape(shape)
    check_all(images)


def test_every_uint8_value_lands_in_its_bin():
    img = np.repeat(np.arange(256, dtype=np.uint8), 3).reshape(16, 16, 3)
    got = check_all(img)
    np.testing.assert_array_equal(got[:5], [51, 51, 51, 51, 52])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.longdouble])
def test_float_edge_values(dtype):
    values = np.array(EDGE_VALUES, dtype=np.float64)
    with np.errstate(over="ignore"):
        values = values.astype(dtype)
    # Each channel gets the values in a different order; one long image and a 1-pixel-per-image batch.
    img = np.stack([values, values[::-1], np.roll(values, 5)], axis=-1).reshape(1, -1, 3)
    check_all(img)
    check_all(img.reshape(-1, 1, 1, 3))


def test_float_edge_counts_float64():
    # Spelled out: NaN, +-inf, < 0 and > 255 are not counted; -0.0 is in bin 0; 255.0 in the last.
    img = np.array([np.nan, np.inf, -np.inf, -1e-300, -0.0, 50.99999999, 51.0, 101.99999, 102.0,
                    255.0, 255.0000001], dtype=np.float64)
    got = check_all(np.repeat(img, 3).reshape(1, -1, 3))
    np.testing.assert_array_equal(got[:5], [2, 2, 1, 0, 1])


def test_float32_rounding_like_numpy():
    # 50.99999999 and 255.0000001 round to 51.0 / 255.0 in float32: numpy bins the float32 value.
    img = np.repeat(np.array([50.99999999, 101.99999, 255.0000001], dtype=np.float32), 3).reshape(1, 3, 3)
    got = check_all(img)
    np.testing.assert_array_equal(got[:5], [0, 2, 0, 0, 1])


@pytest.mark.parametrize("dtype", REAL_DTYPES)
def test_all_real_dtypes_with_out_of_range(dtype):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    lo, hi = (int(info.min), int(info.max)) if info else (-1000, 1000)
    special = [lo, hi, 0, 1, 50, 51, 101, 102, 152, 153, 203, 204, 254, 255, 256, -1]
    special = [v for v in special if lo <= v <= hi]
    data = rng.integers(max(lo, -400), min(hi, 400) + 1, size=(5, 6, 7, 3)).astype(dtype)
    data.reshape(-1)[: len(special)] = np.array(special, dtype=object).astype(dtype)
    check_all(data)


def test_huge_integers():
    big = np.array([2**63 - 1, -(2**63), 2**53 + 1, 255, 256, -1, 0, 2**62], dtype=np.int64)
    check_all(np.stack([big] * 3, axis=-1).reshape(1, -1, 3))
    ubig = np.array([2**64 - 1, 2**63, 255, 256, 0, 51], dtype=np.uint64)
    check_all(np.stack([ubig] * 3, axis=-1).reshape(1, -1, 3))


def test_non_native_byte_order():
    rng = np.random.default_rng(2)
    base = rng.integers(-20, 300, size=(3, 8, 8, 3))
    for dtype in (">f8", ">f4", ">i2", ">u4", ">i8"):
        check_all(base.astype(dtype))


def test_non_contiguous_views():
    rng = np.random.default_rng(3)
    big = rng.integers(0, 256, size=(10, 40, 40, 6), dtype=np.uint8)
    views = [
        big[::2, 3:35, ::-1, 1:4],                    # strided, negative stride
        big[:, ::-1, ::-1, ::-2],                     # all negative, channel step 2
        big[..., :3].transpose(0, 2, 1, 3).transpose(0, 2, 1, 3),  # transposed back
        np.asfortranarray(big[0, :, :, :3]),          # Fortran order single image
        big[3, 5:37, 2:34, 2:5],                      # single image slice
        big[0, :, :, ::2],                            # channel stride on a single image
    ]
    for v in views:
        check_all(v)
        check_all(v.astype(np.float32))
        check_all(v.astype(np.float64)[::-1])


def test_read_only_and_unchanged_input():
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, size=(4, 9, 9, 3), dtype=np.uint8)
    for arr in (images, images.astype(np.float64), images.astype(np.int16)):
        ro = arr.copy()
        ro.flags.writeable = False
        before = ro.copy()
        check_all(ro)
        check_all(ro[0])
        check_all(ro[:, ::-1])
        np.testing.assert_array_equal(ro, before)


def test_single_vs_batch():
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    batch = rgb_histogram(images)
    for i in range(3):
        single = rgb_histogram(images[i])
        assert single.shape == (15,)
        np.testing.assert_array_equal(single, batch[i])
        np.testing.assert_array_equal(rgb_histogram(images[i:i + 1]), batch[i:i + 1])


@pytest.mark.parametrize("shape", [(0, 32, 32, 3), (0, 0, 0, 3), (2, 0, 5, 3), (0, 4, 3), (4, 0, 3)])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64, np.int32])
def test_empty(shape, dtype):
    got = check_all(np.zeros(shape, dtype=dtype))
    expected_shape = (15,) if len(shape) == 3 else (shape[0], 15)
    assert got.shape == expected_shape
    assert (got == 0).all()


def test_array_likes():
    rng = np.random.default_rng(6)
    img = rng.integers(0, 256, size=(4, 5, 3))
    check_all(img.tolist())
    check_all([img.tolist(), img.tolist()])
    check_all(img.astype(float).tolist())
    sub = img.astype(np.uint8).view(np.ma.MaskedArray)  # exact-type check: ndarray subclass
    np.testing.assert_array_equal(rgb_histogram(sub), rgb_histogram_reference(np.asarray(sub)))


@pytest.mark.parametrize("shape", [(32, 32), (32, 32, 4), (32, 32, 1), (3,), (), (1, 2, 3, 3, 3), (32, 3, 32)])
def test_wrong_shape(shape):
    with pytest.raises(InputError, match=r"expected an RGB image of shape \(H, W, 3\) or a batch "
                                         r"\(N, H, W, 3\), got shape " + __import__("re").escape(str(shape))):
        rgb_histogram(np.zeros(shape, dtype=np.uint8))


def test_wrong_shape_is_value_error_with_example_message():
    with pytest.raises(ValueError, match=r"got shape \(32, 32\)$"):
        rgb_histogram(np.zeros((32, 32), dtype=np.uint8))


@pytest.mark.parametrize("dtype", [bool, np.complex64, np.complex128, object, "U3", "S3",
                                   "datetime64[s]", "timedelta64[s]", [("r", "u1"), ("g", "u1")]])
def test_wrong_dtype(dtype):
    arr = np.zeros((4, 4, 3), dtype=dtype)
    with pytest.raises(InputTypeError, match=r"integer or floating dtype.*got dtype " + re.escape(str(arr.dtype))):
        rgb_histogram(arr)
    with pytest.raises(TypeError):
        rgb_histogram(arr[None])


def test_not_array_like():
    with pytest.raises(InputTypeError, match="got dtype object"):
        rgb_histogram(None)
    with pytest.raises(InputTypeError, match="got dtype <U"):
        rgb_histogram([[["a", "b", "c"]]])
    with pytest.raises(InputError, match="could not be converted"):
        rgb_histogram([[[1, 2, 3]], [[1, 2]]])


def test_kernel_rejects_bad_arguments():
    if not HAVE_EXTENSION:
        pytest.skip("extension not built")
    from labelmend.ext._histogram import hist_into, hist_u8_image

    out = np.empty((2, 15), np.int64)
    with pytest.raises(ValueError, match="out must have shape"):
        hist_into(np.zeros((3, 6), np.uint8), out)
    with pytest.raises(ValueError, match="multiple of 3"):
        hist_into(np.zeros((2, 5), np.uint8), out)
    with pytest.raises(ValueError, match="2-D"):
        hist_into(np.zeros((2, 6, 1), np.uint8), out)
    with pytest.raises(ValueError):
        hist_into(np.zeros((2, 12), np.uint8)[:, ::2], out)   # not C-contiguous
    with pytest.raises(ValueError, match="unsupported dtype"):
        hist_into(np.zeros((2, 6), np.float16), out)
    with pytest.raises(ValueError, match="native-endian"):
        hist_into(np.zeros((2, 6), ">f8"), out)
    with pytest.raises(TypeError):
        hist_into([[0, 0, 0]], out)
    assert hist_u8_image(np.zeros((4, 4, 3), np.float32)) is None
    assert hist_u8_image(np.zeros((4, 4, 4), np.uint8)) is None
    assert hist_u8_image(np.zeros((4, 8, 3), np.uint8)[:, ::2]) is None
    assert hist_u8_image([[[0, 0, 0]]]) is None
    np.testing.assert_array_equal(hist_u8_image(np.zeros((4, 4, 3), np.uint8))[::5], [16, 16, 16])


def test_fallback_when_extension_missing(monkeypatch):
    rng = np.random.default_rng(7)
    images = rng.integers(-10, 270, size=(5, 6, 7, 3)).astype(np.float32)
    images.reshape(-1)[:4] = [np.nan, np.inf, -np.inf, 255.0]
    u8 = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    expected = [rgb_histogram(images), rgb_histogram(u8), rgb_histogram(u8[0])]

    calls = []

    def spy(arr):
        calls.append(arr.shape)
        return rgb_histogram_numpy(arr)

    # "Extension missing": importing the compiled module raises ImportError; reload the package.
    monkeypatch.setitem(sys.modules, "labelmend.ext._histogram", None)
    try:
        mod = importlib.reload(ext)
        assert mod.HAVE_EXTENSION is False
        monkeypatch.setattr(mod, "rgb_histogram_numpy", spy)
        got = [mod.rgb_histogram(images), mod.rgb_histogram(u8), mod.rgb_histogram(u8[0])]
        assert calls == [images.shape, u8.shape, u8[0].shape]
        for g, e in zip(got, expected):
            assert g.dtype == np.int64
            np.testing.assert_array_equal(g, e)
        with pytest.raises(InputError):
            mod.rgb_histogram(np.zeros((3, 3), np.uint8))
    finally:
        monkeypatch.undo()
        importlib.reload(ext)
    assert ext.HAVE_EXTENSION
