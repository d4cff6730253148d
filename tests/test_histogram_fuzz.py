"""Property tests: rgb_histogram never crashes and equals the client's np.histogram loop.

The two randomised comparison tests use a Hypothesis profile chosen by ``HYPOTHESIS_PROFILE``:
``long`` (20000 each, or ``HYPOTHESIS_LONG_EXAMPLES``) or anything else / unset (250 each, the CI default),
e.g. ``HYPOTHESIS_PROFILE=long pytest tests/test_histogram_fuzz.py``.
The profiles are registered here and only parent this module's settings; the active global profile
(and so every other test module) is left alone.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays, from_dtype
from labelmend.ext import rgb_histogram
from labelmend.ext._reference import rgb_histogram_numpy, rgb_histogram_reference

from labelmend.errors import InputError, InputTypeError

DTYPES = ["u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8", "g",
          ">u2", ">i4", ">i8", ">f4", ">f8"]

SPECIAL = [0.0, -0.0, -1e-300, 50.99999999, 51.0, 101.99999, 102.0, 153.0, 203.99999, 204.0,
           254.5, 255.0, 255.0000001, 256.0, -1.0, 1e300, -1e300, np.nan, np.inf, -np.inf]
SPECIAL_INT = [0, 1, 50, 51, 101, 102, 152, 153, 203, 204, 254, 255, 256, -1, -128, 127]

# Own profile names, so Hypothesis's built-in "ci" profile (auto-loaded when CI is set) is not replaced.
settings.register_profile("histogram-fuzz-ci", max_examples=250, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("histogram-fuzz-long",
                          max_examples=int(os.environ.get("HYPOTHESIS_LONG_EXAMPLES", 20000)),
                          deadline=None, suppress_health_check=[HealthCheck.too_slow])
_PROFILE = "long" if os.environ.get("HYPOTHESIS_PROFILE") == "long" else "ci"  # anything else: ci
FUZZ = settings(settings.get_profile(f"histogram-fuzz-{_PROFILE}"))


def _elements(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            special = np.array(SPECIAL).astype(dtype)
        special = [dtype.type(v) for v in special]
        return st.one_of(st.sampled_from(special), from_dtype(dtype),
                         st.integers(-2, 258).map(dtype.type))
    info = np.iinfo(dtype)
    special = [v for v in SPECIAL_INT if info.min <= v <= info.max] + [int(info.min), int(info.max)]
    return st.one_of(st.sampled_from(special), from_dtype(dtype),
                     st.integers(max(-2, int(info.min)), min(258, int(info.max))))


@st.composite
def rgb_arrays(draw):
    """An (H, W, 3) or (N, H, W, 3) view with any dtype above, steps +-1/+-2, maybe read-only."""
    dtype = draw(st.sampled_from(DTYPES))
    ndim = draw(st.sampled_from([3, 4]))
    shape = [draw(st.integers(0, 4))] if ndim == 4 else []
    shape += [draw(st.integers(0, 9)), draw(st.integers(0, 9)), 3]
    steps = [draw(st.sampled_from([1, 1, 2, -1, -2])) for _ in shape]
    base_shape = tuple(s * abs(k) for s, k in zip(shape, steps))
    base = draw(arrays(dtype, base_shape, elements=_elements(dtype)))
    view = base[tuple(slice(None, None, k) for k in steps)]
    if draw(st.booleans()):
        view = view.transpose(*range(ndim - 3), ndim - 2, ndim - 3, ndim - 1)  # (.., W, H, 3)
    if draw(st.booleans()):
        view.flags.writeable = False
    return view


@FUZZ
@given(rgb_arrays())
def test_equals_reference(images):
    before = images.copy()
    expected = rgb_histogram_reference(images)
    got = rgb_histogram(images)
    assert got.dtype == np.int64 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(rgb_histogram_numpy(images), expected)
    np.testing.assert_array_equal(images, before)


@FUZZ
@given(st.integers(1, 3), st.integers(1, 40), st.integers(1, 40), st.data())
def test_uint8_chunk_tails(n, h, w, data):
    # Image sizes across the kernel's 48-value chunks, including 255+ chunks per image.
    images = data.draw(arrays(np.uint8, (n, h, w, 3)))
    expected = rgb_histogram_reference(images)
    np.testing.assert_array_equal(rgb_histogram(images), expected)
    np.testing.assert_array_equal(rgb_histogram(images[0]), expected[0])


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 255), st.sampled_from([(92, 93), (128, 128), (300, 41)]))
def test_uint8_constant_large_images(value, hw):
    # A constant image puts every value in one position's uint8 accumulator: tests the flush.
    img = np.full(hw + (3,), value, dtype=np.uint8)
    np.testing.assert_array_equal(rgb_histogram(img), rgb_histogram_reference(img))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=0, max_size=5),
       st.sampled_from(["u1", "f4", "f8", "i8"]))
def test_bad_shapes_raise_input_error(shape, dtype):
    shape = tuple(shape)
    arr = np.zeros(shape, dtype=dtype)
    if len(shape) in (3, 4) and shape[-1] == 3:
        assert rgb_histogram(arr).shape[-1] == 15
    else:
        with pytest.raises(InputError, match=r"got shape"):
            rgb_histogram(arr)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(["?", "c8", "c16", "O", "U2", "S2", "M8[s]", "m8[s]", "V4"]),
       st.lists(st.integers(0, 4), min_size=3, max_size=4).map(lambda s: tuple(s[:-1]) + (3,)))
def test_bad_dtypes_raise_input_type_error(dtype, shape):
    with pytest.raises(InputTypeError, match="got dtype"):
        rgb_histogram(np.zeros(shape, dtype=dtype))
