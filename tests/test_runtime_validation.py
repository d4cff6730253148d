"""labelmend.runtime.validation.check_images: one test per failure mode, messages pinned; plus property tests."""

from __future__ import annotations

import datetime
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from labelmend.runtime.validation import check_images

from labelmend.errors import InputError, InputTypeError

GOOD = np.full((32, 32, 3), 7, dtype=np.uint8)


def _with(value, index=(3, 4, 1), shape=(32, 32, 3), dtype=np.float64):
    x = np.full(shape, 10, dtype=dtype)
    x[index] = value
    return x


class FakePILImage:
    """Quacks like PIL.Image.Image: has __array_interface__ but is not an ndarray."""

    @property
    def __array_interface__(self):
        return np.zeros((32, 32, 3), np.uint8).__array_interface__


# (id, input, exception class, message regex). ≥ 30 distinct bad inputs, one failure mode each.
BAD = [
    ("none", None, InputTypeError, r"^image: expected a numpy array .* got NoneType"),
    ("str", "cat.png", InputTypeError, r"got str"),
    ("bytes", b"\x00" * 3072, InputTypeError, r"got bytes"),
    ("dict", {"image": GOOD}, InputTypeError, r"got dict"),
    ("set", {1, 2}, InputTypeError, r"got set"),
    ("object", object(), InputTypeError, r"got object"),
    ("pil_like", FakePILImage(), InputTypeError, r"got .*FakePILImage; convert it first, e.g. np.asarray\(image\)"),
    ("python_bool", True, InputTypeError, r"got a bool"),
    ("list_wrong_shape", [1, 2, 3], InputError, r"got \(3,\)"),
    ("ragged_list", [[1, 2], [3]], InputError, r"does not convert to a rectangular numeric array"),
    ("ragged_images", [GOOD, GOOD[:16]], InputError, r"rectangular numeric array"),
    ("list_of_str", [["a", "b", "c"]] * 32, InputTypeError, r"dtype <U1 \(string\)"),
    ("tuple_wrong_shape", (GOOD, GOOD[..., :1]), InputError, r"rectangular|got"),
    ("grayscale", np.zeros((32, 32)), InputError, r"got \(32, 32\); this looks grayscale; stack it to 3 channels"),
    ("grayscale_batch", np.zeros((5, 32, 32)), InputError, r"stack it to 3 channels"),
    ("one_channel", np.zeros((32, 32, 1)), InputError, r"got \(32, 32, 1\); .*stack it to 3 channels"),
    ("rgba", np.zeros((32, 32, 4), np.uint8), InputError, r"got \(32, 32, 4\); .*drop the alpha channel"),
    ("rgba_batch", np.zeros((2, 32, 32, 4), np.uint8), InputError, r"drop the alpha channel"),
    ("channels_first", np.zeros((3, 32, 32), np.uint8), InputError, r"got \(3, 32, 32\); .*transpose to channels-last"),
    ("channels_first_batch", np.zeros((8, 3, 32, 32)), InputError, r"transpose to channels-last"),
    ("wrong_height", np.zeros((31, 32, 3)), InputError, r"got \(31, 32, 3\); the image is 31×32; resize to 32×32"),
    ("too_big", np.zeros((64, 64, 3)), InputError, r"resize to 32×32"),
    ("batch_wrong_size", np.zeros((2, 28, 28, 3)), InputError, r"resize to 32×32"),
    ("five_dims", np.zeros((1, 1, 32, 32, 3)), InputError, r"got \(1, 1, 32, 32, 3\); too many axes"),
    ("zero_d", np.array(5.0), InputError, r"got \(\); got a scalar"),
    ("python_int", 5, InputError, r"got a scalar"),
    ("numpy_scalar", np.float32(3), InputError, r"got a scalar"),
    ("empty_1d", np.zeros((0,)), InputError, r"got \(0,\)"),
    ("flat", np.zeros(3072), InputError, r"got \(3072,\)"),
    ("bool_array", np.zeros((32, 32, 3), bool), InputTypeError, r"dtype bool \(boolean\) is not supported"),
    ("complex", np.zeros((32, 32, 3), complex), InputTypeError, r"dtype complex128 \(complex\)"),
    ("object_array", np.zeros((32, 32, 3), object), InputTypeError, r"dtype object \(object\)"),
    ("datetime64", np.zeros((32, 32, 3), "datetime64[s]"), InputTypeError, r"datetime64\[s\] \(datetime\)"),
    ("timedelta64", np.zeros((32, 32, 3), "timedelta64[ms]"), InputTypeError, r"\(timedelta\)"),
    ("str_array", np.full((32, 32, 3), "x"), InputTypeError, r"\(string\)"),
    ("structured", np.zeros((32, 32, 3), [("r", "u1")]), InputTypeError, r"\(structured/void\)"),
    ("nan", _with(np.nan), InputError, r"1 non-finite value \(NaN or inf\); the first is nan at index \(3, 4, 1\)"),
    ("pos_inf", _with(np.inf), InputError, r"1 non-finite value .* the first is inf at index \(3, 4, 1\)"),
    ("neg_inf", _with(-np.inf), InputError, r"the first is -inf"),
    ("float16_inf", _with(np.inf, dtype=np.float16), InputError, r"non-finite"),
    ("float32_nan_batch", _with(np.nan, (2, 0, 5, 2), (4, 32, 32, 3), np.float32), InputError,
     r"index \(2, 0, 5, 2\)"),
    ("all_nan", np.full((32, 32, 3), np.nan), InputError, r"3072 non-finite values"),
    ("minus_one_int", _with(-1, dtype=np.int16), InputError, r"values range from -1 to 10; expected RGB values in "
     r"\[0, 255\]; if your image is scaled to \[0, 1\] multiply by 255"),
    ("256_int", _with(256, dtype=np.int64), InputError, r"from 10 to 256; expected RGB values in \[0, 255\]"),
    ("uint16_big", _with(60000, dtype=np.uint16), InputError, r"to 60000"),
    ("255.5", _with(255.5), InputError, r"to 255.5;"),
    ("huge_float", _with(1e300), InputError, r"to 1e\+300"),
    ("huge_int", _with(2**62, dtype=np.int64), InputError, r"to 4611686018427387904"),
    ("normalised_negative", _with(-0.5, dtype=np.float32), InputError, r"from -0.5 to .*multiply by 255"),
    ("int8_negative", _with(-128, dtype=np.int8), InputError, r"from -128"),
]


@pytest.mark.parametrize(("x", "exc", "match"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_raises_with_pinned_message(x, exc, match):
    with pytest.raises(exc, match=match) as info:
        check_images(x)
    assert isinstance(info.value, ValueError if exc is InputError else TypeError)
    assert str(info.value).startswith("image: "), "the message names the parameter"


def test_corpus_is_big_enough_and_distinct():
    assert len(BAD) >= 30
    assert len({b[0] for b in BAD}) == len(BAD)


def test_message_uses_the_parameter_name():
    with pytest.raises(InputError, match=r"^images: expected shape"):
        check_images(np.zeros((32, 32)), name="images")
    with pytest.raises(InputTypeError, match=r"^pixels: "):
        check_images(None, name="pixels")


def test_single_only_rejects_batch_pointing_to_predict_batch():
    with pytest.raises(InputError, match=r"got a batch of shape \(2, 32, 32, 3\); use predict_batch\(\)"):
        check_images(np.zeros((2, 32, 32, 3)), allow_batch=False)


def test_batch_only_rejects_single_pointing_to_predict():
    with pytest.raises(InputError, match=r"got a single image .*use predict\(\) for one image, or add a batch axis"):
        check_images(GOOD, name="images", allow_single=False)


def test_expected_shape_in_message_follows_allowed_forms():
    with pytest.raises(InputError, match=r"expected shape \(32, 32, 3\) RGB"):
        check_images(np.zeros((4, 4)), allow_batch=False)
    with pytest.raises(InputError, match=r"expected shape \(N, 32, 32, 3\) RGB"):
        check_images(np.zeros((4, 4)), allow_single=False)


# ---- what is accepted ---------------------------------------------------------------------------------------------

DTYPES = [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64,
          np.float16, np.float32, np.float64, np.longdouble]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_accepts_numeric_dtypes(dtype):
    rng = np.random.default_rng(0)
    hi = 127 if np.dtype(dtype) == np.int8 else 255
    x = rng.integers(0, hi + 1, size=(2, 32, 32, 3)).astype(dtype)
    out, single = check_images(x)
    assert single is False
    assert out.dtype == np.float32 and out.flags.c_contiguous and out.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(out, x.astype(np.float32))


def test_single_image_becomes_batch_of_one():
    out, single = check_images(GOOD)
    assert single is True and out.shape == (1, 32, 32, 3)


def test_empty_batch_is_fine():
    out, single = check_images(np.zeros((0, 32, 32, 3), np.float64))
    assert out.shape == (0, 32, 32, 3) and out.dtype == np.float32 and not single


def test_boundary_values_0_and_255_are_valid():
    for dtype in (np.uint8, np.int64, np.float16, np.float64):
        x = np.zeros((32, 32, 3), dtype)
        x[0, 0, 0] = 255
        out, _ = check_images(x)
        assert out.max() == 255 and out.min() == 0


def test_nested_lists_convert():
    out, single = check_images(GOOD.tolist())
    assert single and out.shape == (1, 32, 32, 3) and out[0, 0, 0, 0] == 7


def test_non_contiguous_and_read_only_arrays_work_and_are_not_modified():
    big = np.random.default_rng(1).integers(0, 256, size=(4, 64, 64, 3)).astype(np.float64)
    view = big[:, ::2, ::2, :]  # non-contiguous
    reversed_ = big[::-1, :32, :32, ::-1]  # negative strides
    before = big.copy()
    big.flags.writeable = False
    for x in (view, reversed_):
        out, _ = check_images(x)
        assert out.flags.c_contiguous
        np.testing.assert_array_equal(out, x.astype(np.float32))
    np.testing.assert_array_equal(big, before)


def test_float32_contiguous_input_is_not_written():
    x = np.full((2, 32, 32, 3), 3.0, np.float32)
    x.flags.writeable = False
    out, _ = check_images(x)
    assert not out.flags.writeable or not np.shares_memory(out, x)
    np.testing.assert_array_equal(x, 3.0)


def test_fortran_order_batch():
    x = np.asfortranarray(np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3)).astype(np.uint8))
    out, _ = check_images(x)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, x)


def test_list_of_non_numbers_is_type_error():
    with pytest.raises(InputTypeError, match=r"^image: the list holds non-numeric elements"):
        check_images([datetime.datetime(2026, 1, 1)])
    with pytest.raises(InputTypeError, match=r"non-numeric elements"):
        check_images([[None] * 3] * 32)


# ---- properties ---------------------------------------------------------------------------------------------------

_SHAPES = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4),
    st.sampled_from([(32, 32, 3), (0, 32, 32, 3), (2, 32, 32, 3), (32, 32), (3, 32, 32), (32, 32, 4), (1, 32, 32, 3)]),
)
_DTYPES = st.one_of(
    hnp.scalar_dtypes(),
    hnp.byte_string_dtypes(),
    hnp.unicode_string_dtypes(),
    st.just(np.dtype(object)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), shape=_SHAPES, dtype=_DTYPES)
def test_arbitrary_arrays_either_pass_or_raise_value_or_type_error(data, shape, dtype):
    if dtype.kind == "O":
        x = np.empty(shape, dtype)
        x[...] = data.draw(st.sampled_from([None, 1, "a", 2.5]))
    else:
        x = data.draw(hnp.arrays(dtype, shape))
    try:
        out, single = check_images(x, allow_single=data.draw(st.booleans()), allow_batch=True)
    except (InputError, InputTypeError) as exc:
        assert re.match(r"^image: ", str(exc))
        return
    assert out.dtype == np.float32 and out.ndim == 4 and out.shape[1:] == (32, 32, 3)
    assert np.isfinite(out).all() and (out >= 0).all() and (out <= 255).all()
    assert single == (x.ndim == 3)


@settings(max_examples=60, deadline=None)
@given(st.recursive(st.one_of(st.none(), st.integers(-300, 300), st.floats(), st.text(max_size=2)),
                    lambda kids: st.lists(kids, max_size=4) | st.tuples(kids, kids), max_leaves=20))
def test_arbitrary_python_objects_raise_only_value_or_type_error(obj):
    with pytest.raises((ValueError, TypeError)):
        check_images(obj)
