"""Transition-matrix estimation and posterior / forward correction on synthetic labels with known noise."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from labelmend.train import noise

K = 10


def _symmetric(rate: float, k: int = K) -> np.ndarray:
    t = np.full((k, k), rate / (k - 1))
    np.fill_diagonal(t, 1 - rate)
    return t


def _corrupt(y: np.ndarray, t: np.ndarray, rng) -> np.ndarray:
    """Draw ỹ ~ T[y, :] for each y."""
    cum = np.cumsum(t[y], axis=1)
    return np.minimum((rng.random(len(y))[:, None] < cum).argmax(axis=1), t.shape[0] - 1)


@pytest.mark.parametrize("t_true", [
    _symmetric(0.6),
    # asymmetric "pair flip": each class goes to the next with probability 0.35
    0.65 * np.eye(K) + 0.35 * np.roll(np.eye(K), 1, axis=1),
])
def test_estimate_recovers_known_transition_matrix(t_true):
    rng = np.random.default_rng(0)
    y = rng.integers(0, K, 50_000)
    noisy = _corrupt(y, t_true, rng)
    t_hat = noise.estimate_transition_matrix(y, noisy, pseudo_count=0)
    np.testing.assert_allclose(t_hat.sum(axis=1), 1.0)
    assert np.abs(t_hat - t_true).max() < 0.02


def test_pseudo_count_removes_zeros_and_rows_sum_to_one():
    t_hat = noise.estimate_transition_matrix(np.array([0, 0, 1]), np.array([0, 1, 1]), pseudo_count=1.0)
    assert (t_hat > 0).all()
    np.testing.assert_allclose(t_hat.sum(axis=1), 1.0)


def test_class_never_seen_without_prior_is_an_error():
    with pytest.raises(ValueError, match=r"classes \[2"):
        noise.estimate_transition_matrix(np.array([0, 1]), np.array([0, 1]), n_classes=3, pseudo_count=0)


@pytest.mark.parametrize("bad, match", [
    (np.array([0, 10]), "must lie in 0..9"),
    (np.array([-1, 0]), "must lie in 0..9"),
    (np.array([0.5, 1.0]), "1-d integer array"),
])
def test_bad_labels_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        noise.estimate_transition_matrix(bad, np.array([0, 1]))


def test_posterior_correction_is_bayes_rule():
    t = _symmetric(0.6)
    probs = np.array([[0.5, 0.5] + [0.0] * 8])
    post = noise.posterior_correction(probs, np.array([1]), t)
    # prior 50/50 between classes 0 and 1; noisy label 1 is 0.4 / (0.6/9) = 6x more likely under y = 1
    np.testing.assert_allclose(post[0, :2], [1 / 7, 6 / 7])
    np.testing.assert_allclose(post.sum(), 1.0)


def test_posterior_correction_beats_both_sources_on_synthetic_data():
    """A 60 %-accurate classifier + 40 %-accurate noisy labels → corrected labels better than either."""
    rng = np.random.default_rng(1)
    n = 20_000
    y = rng.integers(0, K, n)
    t = _symmetric(0.6)
    noisy = _corrupt(y, t, rng)
    logits = rng.normal(0, 1, (n, K))
    logits[np.arange(n), y] += 1.6
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    post = noise.posterior_correction(probs, noisy, t)
    acc = lambda p: np.mean(p.argmax(1) == y)  # noqa: E731
    assert acc(post) > acc(probs) + 0.03
    assert acc(post) > np.mean(noisy == y) + 0.1


def test_posterior_falls_back_to_classifier_when_noise_makes_label_impossible():
    t = np.eye(K)
    probs = np.eye(K)[[3]]
    post = noise.posterior_correction(probs, np.array([5]), t)
    np.testing.assert_allclose(post, probs)


def test_posterior_shape_mismatch():
    with pytest.raises(ValueError, match="probs must have shape"):
        noise.posterior_correction(np.ones((2, K)) / K, np.array([1]), _symmetric(0.5))


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 0.89))
def test_forward_then_posterior_are_distributions(seed, rate):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(K), size=7)
    t = _symmetric(rate)
    fwd = noise.forward_corrected(probs, t)
    np.testing.assert_allclose(fwd.sum(1), 1.0)
    post = noise.posterior_correction(probs, rng.integers(0, K, 7), t)
    np.testing.assert_allclose(post.sum(1), 1.0)
    assert (post >= 0).all()
