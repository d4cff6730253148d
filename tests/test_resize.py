"""The one resize (labelmend.ext.area_resize): compiled kernel and numpy fallback agree bit for bit on fuzzed sizes,
and both equal the obvious dense computation (every output pixel the area-weighted mean of what it covers)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from labelmend.ext import HAVE_EXTENSION, area_resize
from labelmend.ext._reference import area_resize_numpy

from labelmend.errors import InputError, InputTypeError


def _dense(image: np.ndarray, size: int) -> np.ndarray:
    """The rule written out: weight matrices of exact overlaps, then round half up."""
    h, w = image.shape[:2]

    def weights(s):
        i, j = np.arange(size)[:, None], np.arange(s)[None, :]
        return np.clip(np.minimum((i + 1) * s, (j + 1) * size) - np.maximum(i * s, j * size), 0, None)

    acc = np.einsum("ij,jkc,lk->ilc", weights(h), image.astype(np.int64), weights(w))
    return ((2 * acc + h * w) // (2 * h * w)).astype(np.uint8)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 140), st.integers(1, 140), st.integers(1, 40), st.integers(0, 2**32 - 1),
       st.sampled_from(["c", "transposed", "strided", "constant"]))
def test_kernel_fallback_and_dense_rule_agree_bit_for_bit(h, w, size, seed, kind):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "transposed":
        image = image.transpose(1, 0, 2)
    elif kind == "strided":
        image = rng.integers(0, 256, (2 * h, w, 3), dtype=np.uint8)[::-2]
    elif kind == "constant":
        image = np.full((h, w, 3), rng.integers(0, 256, 3), dtype=np.uint8)
    got = area_resize(image, size)
    assert got.shape == (size, size, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, area_resize_numpy(image, size))
    if h * w <= 40 * 40:
        np.testing.assert_array_equal(got, _dense(image, size))
    if kind == "constant":  # a flat colour stays exactly that colour
        assert np.all(got == image[0, 0])


def test_the_extension_is_compiled():
    assert HAVE_EXTENSION, "labelmend.ext._resize did not build: pip install -e . compiles it"


def test_32_by_32_comes_back_unchanged_and_integer_factors_are_block_means():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(area_resize(image), image)
    big = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    blocks = big.reshape(32, 3, 32, 3, 3).astype(np.int64).sum(axis=(1, 3))
    np.testing.assert_array_equal(area_resize(big), (2 * blocks + 9) // 18)


def test_non_square_images_are_squashed_whole_so_a_stretched_image_comes_back():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for rows, cols in ((1, 3), (2, 1), (3, 2), (1, 1)):
        stretched = np.repeat(np.repeat(image, rows, axis=0), cols, axis=1)
        np.testing.assert_array_equal(area_resize(stretched), image)
    wide = rng.integers(0, 256, (40, 51, 3), dtype=np.uint8)  # every column counts: change one at the edge
    edited = wide.copy()
    edited[:, -1] = 255 - edited[:, -1]
    assert np.any(area_resize(edited)[:, -1] != area_resize(wide)[:, -1])


def test_upscaling_a_small_image_repeats_its_pixels():
    image = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3) * 10
    np.testing.assert_array_equal(area_resize(image), np.repeat(np.repeat(image, 16, axis=0), 16, axis=1))


@pytest.mark.parametrize("bad, error, match", [
    (np.zeros((32, 32), np.uint8), InputError, r"\(H, W, 3\)"),
    (np.zeros((32, 32, 4), np.uint8), InputError, r"\(H, W, 3\)"),
    (np.zeros((0, 32, 3), np.uint8), InputError, "H, W >= 1"),
    (np.zeros((32, 32, 3), np.float32), InputTypeError, "uint8"),
    ([[[0, 0, 0]]], InputTypeError, "uint8"),
])
def test_bad_images_are_refused_by_name(bad, error, match):
    with pytest.raises(error, match=match):
        area_resize(bad)
