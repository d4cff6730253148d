"""Transition-matrix estimation, posterior / forward correction and the benchmarks' noise generators, on synthetic
labels with known noise."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from labelmend.train import noise

from labelmend import benchmarking

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
    t_hat = noise.estimate_transition_matrix(y, noisy, n_classes=K, prior_strength=0)
    np.testing.assert_allclose(t_hat.sum(axis=1), 1.0)
    assert np.abs(t_hat - t_true).max() < 0.02


def test_prior_removes_zeros_and_rows_sum_to_one():
    t_hat = noise.estimate_transition_matrix(np.array([0, 0, 1]), np.array([0, 1, 1]), n_classes=K, prior_strength=1.0)
    assert (t_hat > 0).all()
    np.testing.assert_allclose(t_hat.sum(axis=1), 1.0)


def test_class_never_seen_without_prior_is_an_error():
    with pytest.raises(ValueError, match=r"classes \[2"):
        noise.estimate_transition_matrix(np.array([0, 1]), np.array([0, 1]), n_classes=3, prior_strength=0)


@pytest.mark.parametrize("bad, match", [
    (np.array([0, 10]), "must lie in 0..9"),
    (np.array([-1, 0]), "must lie in 0..9"),
    (np.array([0.5, 1.0]), "1-d integer array"),
])
def test_bad_labels_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        noise.estimate_transition_matrix(bad, np.array([0, 1]), n_classes=K)


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


def test_prior_shrinks_small_trusted_sets_towards_symmetric_noise_not_uniform():
    rng = np.random.default_rng(1)
    t_true = _symmetric(0.6)
    y = rng.integers(0, K, 200)  # 20 pairs per row
    noisy = _corrupt(y, t_true, rng)
    t_hat = noise.estimate_transition_matrix(y, noisy, n_classes=K, prior_strength=5.0)
    # a uniform prior would pull the diagonal towards 0.1; this one keeps it near the pooled agreement (~0.4)
    assert 0.3 < np.mean(np.diag(t_hat)) < 0.5
    # a class with no trusted pair gets the symmetric row at the pooled rate
    t_missing = noise.estimate_transition_matrix(y[y != 3], noisy[y != 3], n_classes=K, prior_strength=5.0)
    row = t_missing[3]
    assert row[3] == pytest.approx(np.mean(noisy[y != 3] == y[y != 3]), abs=0.02)
    np.testing.assert_allclose(np.delete(row, 3), (1 - row[3]) / (K - 1))


@pytest.mark.parametrize("t_true", [benchmarking.symmetric(K, 0.6), benchmarking.pair_flip(K, 0.4),
                                    benchmarking.pair_flip(4, 0.45, {0: 1, 1: 0, 2: 3, 3: 2})])
def test_simulate_noise_follows_the_transition_matrix(t_true):
    k = t_true.shape[0]
    y = np.random.default_rng(0).integers(0, k, 100_000)
    noisy = benchmarking.simulate_noise(y, t_true, seed=1)
    counted = noise.estimate_transition_matrix(y, noisy, n_classes=k, prior_strength=0)
    assert np.abs(counted - t_true).max() < 0.015
    assert np.array_equal(noisy, benchmarking.simulate_noise(y, t_true, seed=1))  # seeded


def test_simulate_noise_refuses_a_matrix_that_is_not_row_stochastic():
    with pytest.raises(ValueError, match="row-stochastic"):
        benchmarking.simulate_noise(np.array([0, 1]), np.array([[0.5, 0.6], [0.0, 1.0]]))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), k=st.integers(2, 12), n=st.integers(1, 300), rate=st.floats(0, 1))
def test_confusion_noise_flips_the_most_confusable_images_to_their_likeliest_wrong_class(seed, k, n, rate):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    probs = rng.dirichlet(np.ones(k), n)
    noisy = benchmarking.confusion_noise(y, probs, rate)
    flipped = noisy != y
    assert flipped.sum() == round(rate * n)  # exactly the asked share, every flip to another class
    wrong = probs.copy()
    wrong[np.arange(n), y] = -1
    assert np.array_equal(noisy[flipped], wrong[flipped].argmax(axis=1))
    if flipped.any() and (~flipped).any():  # every flipped image is at least as confusable as every kept one
        assert wrong[flipped].max(axis=1).min() >= wrong[~flipped].max(axis=1).max()


def test_confusion_noise_is_asymmetric_where_the_classifier_confuses_two_classes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 4000)
    probs = np.full((4000, 4), 0.05)
    probs[np.arange(4000), y] = 0.6
    confusable = np.isin(y, [0, 1]) & (rng.random(4000) < 0.5)  # half of classes 0 and 1 look like the other
    probs[confusable, 1 - y[confusable]] = 0.3
    t = noise.estimate_transition_matrix(y, benchmarking.confusion_noise(y, probs, 0.2), n_classes=4, prior_strength=0)
    assert t[0, 1] > 0.35 and t[1, 0] > 0.35  # the confused pair swaps labels ...
    np.testing.assert_allclose(np.diag(t)[2:], 1.0)  # ... and the classes nobody confuses keep theirs


@pytest.mark.parametrize("labels, probs, rate, match", [
    (np.array([0, 1]), np.full((2, 2), np.nan), 0.5, "finite"),
    (np.array([0, 1]), np.full((3, 2), 0.5), 0.5, "2 labels but 3 rows"),
    (np.array([0, 2]), np.full((2, 2), 0.5), 0.5, "0..1"),
    (np.array([0, 1]), np.full((2, 2), 0.5), 1.5, "rate"),
])
def test_confusion_noise_errors(labels, probs, rate, match):
    with pytest.raises(ValueError, match=match):
        benchmarking.confusion_noise(labels, probs, rate)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), k=st.integers(2, 12), rate=st.floats(0.0, 0.6))
def test_confident_labels_are_classes_above_their_threshold(seed, k, rate):
    """Every confident label is the most probable class among those at or above their class threshold."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(k), size=200)
    noisy = benchmarking.simulate_noise(rng.integers(0, k, 200), benchmarking.symmetric(k, rate * (k - 1) / k),
                                        seed=seed)
    confident, thresholds = noise.confident_labels(probs, noisy)
    assert confident.shape == (200,) and thresholds.shape == (k,)
    for n in range(200):
        above = np.flatnonzero(probs[n] >= thresholds)
        assert confident[n] == (above[np.argmax(probs[n, above])] if len(above) else -1)
    labelled = np.bincount(noisy, minlength=k) > 0
    np.testing.assert_allclose(thresholds[labelled], [probs[noisy == j, j].mean() for j in np.flatnonzero(labelled)])
    assert np.all(thresholds[~labelled] == 1.0)


@pytest.mark.parametrize("t_true", [benchmarking.symmetric(K, 0.6), benchmarking.pair_flip(K, 0.4)])
def test_confident_labels_find_the_wrong_labels_of_an_underconfident_classifier(t_true):
    """A classifier of the noisy label, P(ỹ | x) = P(y | x) @ T, blurred and under-confident, still points at the
    true class above its threshold: the labels confident learning flags are mostly the wrong ones."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, K, 20000)
    noisy = benchmarking.simulate_noise(y, t_true, seed=1)
    clean_probs = 0.6 * np.eye(K)[y] + 0.4 * rng.dirichlet(np.ones(K), size=len(y))
    confident, _ = noise.confident_labels(clean_probs @ t_true, noisy)
    flagged = (confident >= 0) & (confident != noisy)
    assert np.mean(noisy[~flagged] == y[~flagged]) > 0.95  # what stage B keeps is clean
    assert np.mean(noisy[flagged] != y[flagged]) > 0.95     # what it drops was wrong
    assert np.mean(np.where(flagged, confident, noisy) == y) > 0.95


def test_confident_labels_errors():
    with pytest.raises(ValueError, match="noisy_probs must have shape"):
        noise.confident_labels(np.ones(3), np.zeros(3, int))
    with pytest.raises(ValueError, match="3 rows but noisy_labels 2"):
        noise.confident_labels(np.ones((3, 2)) / 2, np.zeros(2, int))
    with pytest.raises(ValueError, match="noisy_labels must lie in 0..1"):
        noise.confident_labels(np.ones((3, 2)) / 2, np.array([0, 1, 2]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), k=st.integers(2, 12), rate=st.floats(0.05, 0.6))
def test_sampled_confusion_noise_hits_its_rate_and_only_flips_to_confusable_classes(seed, k, rate):
    rng = np.random.default_rng(seed)
    n = 4000
    y = rng.integers(0, k, n)
    probs = rng.dirichlet(np.ones(k), n)
    probs[rng.random((n, k)) < 0.3] = 0.0  # some classes are never confused with an image's
    probs[np.arange(n), y] += 0.1  # every row has mass; some have none on any wrong class
    noisy = benchmarking.sampled_confusion_noise(y, probs, rate, seed=seed)
    flipped = noisy != y
    mass = probs.sum(1) - probs[np.arange(n), y]
    attainable = np.mean(mass > 0)  # an image no class is confused with is never flipped
    assert abs(flipped.mean() - min(rate, attainable)) < 0.04
    assert np.all(probs[flipped, noisy[flipped]] > 0)  # only to a class the classifier confuses it with
    assert not flipped[mass == 0].any()
    np.testing.assert_array_equal(noisy, benchmarking.sampled_confusion_noise(y, probs, rate, seed=seed))  # seeded


def test_sampled_confusion_noise_errs_more_on_ambiguous_images_and_towards_the_confused_class():
    rng = np.random.default_rng(0)
    n = 20000
    y = rng.integers(0, 4, n)
    ambiguous = rng.random(n) < 0.5
    probs = np.full((n, 4), 0.02)
    probs[np.arange(n), y] = np.where(ambiguous, 0.5, 0.94)
    probs[ambiguous, (y[ambiguous] + 1) % 4] = 0.46  # ambiguous images look like the next class
    noisy = benchmarking.sampled_confusion_noise(y, probs, 0.3, seed=1)
    assert (noisy != y)[ambiguous].mean() > 5 * (noisy != y)[~ambiguous].mean()
    wrong_amb = noisy[ambiguous & (noisy != y)]
    assert np.mean(wrong_amb == (y[ambiguous & (noisy != y)] + 1) % 4) > 0.85
    assert 0 < (noisy != y)[~ambiguous].mean()  # clear images are sometimes wrong too: a slip, not a rule


@pytest.mark.parametrize("labels, probs, rate, match", [
    (np.array([0, 1]), np.full((2, 2), np.nan), 0.5, "finite"),
    (np.array([0, 1]), np.array([[1.0, 0.0], [0.0, 1.0]]), 0.5, "no mass on any wrong class"),
    (np.array([0, 1]), np.full((2, 2), -0.5), 0.5, "non-negative"),
])
def test_sampled_confusion_noise_errors(labels, probs, rate, match):
    with pytest.raises(ValueError, match=match):
        benchmarking.sampled_confusion_noise(labels, probs, rate)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 10), st.floats(0.05, 0.6))
def test_sampled_confusion_distribution_is_what_the_noise_draws_from(seed, k, rate):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(k), 5)
    labels = rng.integers(0, k, 5)
    dist = benchmarking.sampled_confusion_distribution(labels, probs, rate)
    assert np.allclose(dist.sum(1), 1.0) and np.all(dist >= 0)
    assert np.mean(1 - dist[np.arange(5), labels]) == pytest.approx(rate, abs=1e-6)
    # 4,000 copies of the 5 images: each image's label frequencies follow its row
    many = np.repeat(np.arange(5), 4000)
    noisy = benchmarking.sampled_confusion_noise(labels[many], probs[many], rate, seed=seed)
    freq = np.stack([np.bincount(noisy[many == i], minlength=k) / 4000 for i in range(5)])
    assert np.abs(freq - dist).max() < 0.04
