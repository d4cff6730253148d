"""Label noise for tests and benchmarks: noisy labels drawn from clean ones, by class or by image.

Training never imports this module (cleanlab keeps its noise generation in ``cleanlab.benchmarking`` for the same
reason). Notation as in :mod:`labelmend.train.noise`: ``T[i, j] = P(ỹ = j | y = i)``.

* :func:`simulate_noise` draws noisy labels through a given T; :func:`labelmend.train.noise.symmetric` and
  :func:`pair_flip` build the usual Ts.
* :func:`confusion_noise` and :func:`sampled_confusion_noise` make noise that depends on the image, as human
  annotators' does: the images a classifier finds confusable get (always, or with a probability that grows with it)
  a class it confuses them with.
"""

from __future__ import annotations

import numpy as np

from labelmend.train.noise import check_labels, symmetric

__all__ = ["confusion_noise", "pair_flip", "sampled_confusion_distribution", "sampled_confusion_noise",
           "simulate_noise", "symmetric"]


def pair_flip(n_classes: int, rate: float, pairs: dict[int, int] | None = None) -> np.ndarray:
    """T of pair-flip noise: class i becomes ``pairs[i]`` with probability ``rate`` (default: i → i+1 mod K)."""
    t = np.eye(n_classes)
    for i, j in (pairs or {i: (i + 1) % n_classes for i in range(n_classes)}).items():
        t[i, i], t[i, j] = 1.0 - rate, rate
    return t


def _draw(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling: per row of cumulative weights ``cdf`` (N, K), the first class whose cumulative weight
    exceeds ``u`` (N,) (uniform in [0, row total)), so a class of weight 0 is never drawn."""
    return np.minimum((u[:, None] >= cdf).sum(axis=1), cdf.shape[1] - 1).astype(np.int64)


def simulate_noise(labels: np.ndarray, transition: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Noisy labels (N,) drawn from clean ``labels`` (N,) through ``transition`` (K, K): ỹ ~ T[y, :]."""
    k = transition.shape[0]
    y = check_labels(labels, k, "labels")
    if transition.shape != (k, k) or np.any(transition < 0) or not np.allclose(transition.sum(1), 1.0):
        raise ValueError(f"transition must be a ({k}, {k}) row-stochastic matrix")
    u = np.random.default_rng(seed).random(len(y))
    return _draw(np.cumsum(transition, axis=1)[y], u)


def _wrong_class_probs(labels: np.ndarray, probs: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Checked (labels (N,), probs (N, K) float64 with each image's true class set to 0) for the confusion noises."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2 or not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError(f"probs must be a finite, non-negative (N, K >= 2) array, got shape {probs.shape}")
    y = check_labels(labels, probs.shape[1], "labels")
    if len(y) != len(probs):
        raise ValueError(f"{len(y)} labels but {len(probs)} rows of probs")
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    wrong = probs.copy()
    wrong[np.arange(len(y)), y] = 0.0
    return y, wrong


def confusion_noise(labels: np.ndarray, probs: np.ndarray, rate: float) -> np.ndarray:
    """Instance-dependent noisy labels (N,) from clean ``labels`` (N,) and a classifier's ``probs`` (N, K) of them:
    the ``rate`` · N images whose most probable *wrong* class is most probable get that class as their label, the
    others keep theirs (Chen et al., "Beyond class-conditional assumption", AAAI 2021, §5). The worst case of
    annotators' mistakes: the noise is a function of the image, so without trusted labels nothing in the data says
    which labels are wrong. ``probs`` should be out of sample (a network scoring images it trained on is sure of
    their clean label)."""
    y, wrong = _wrong_class_probs(labels, probs, rate)
    wrong[np.arange(len(y)), y] = -1.0  # never "flip" to the true class, even where every wrong class has 0
    candidate = wrong.argmax(axis=1)
    score = wrong[np.arange(len(y)), candidate]
    flip = np.argsort(-score, kind="stable")[:int(round(rate * len(y)))]
    noisy = y.astype(np.int64).copy()
    noisy[flip] = candidate[flip]
    return noisy


def sampled_confusion_noise(labels: np.ndarray, probs: np.ndarray, rate: float, *, seed: int = 0) -> np.ndarray:
    """Instance-dependent noisy labels (N,) drawn at random, as human annotators err: image n is mislabelled with
    probability min(1, c · P(wrong | x_n)), where P(wrong | x_n) is the classifier's mass on the other classes and c
    makes the mean ``rate``; a mislabelled image gets a wrong class drawn in proportion to the classifier's
    probabilities (cat → dog more often than cat → ship). Ambiguous images are often wrong, clear ones rarely,
    but no image is wrong for sure, unlike :func:`confusion_noise`. Each image's label distribution:
    :func:`sampled_confusion_distribution`."""
    y, wrong, flip_p = _sampled_confusion(labels, probs, rate)
    rng = np.random.default_rng(seed)
    flip = rng.random(len(y)) < flip_p
    cdf = np.cumsum(wrong[flip], axis=1)
    noisy = y.astype(np.int64).copy()
    noisy[flip] = _draw(cdf, rng.random(int(flip.sum())) * cdf[:, -1])
    return noisy


def sampled_confusion_distribution(labels: np.ndarray, probs: np.ndarray, rate: float) -> np.ndarray:
    """(N, K) P(noisy label = j | image n) of :func:`sampled_confusion_noise`: where a row's largest entry is not the
    true class, a learner of the noisy labels converges to the wrong class on that image."""
    y, wrong, flip_p = _sampled_confusion(labels, probs, rate)
    mass = wrong.sum(axis=1, keepdims=True)
    dist = flip_p[:, None] * np.divide(wrong, mass, out=np.zeros_like(wrong), where=mass > 0)
    dist[np.arange(len(y)), y] = 1.0 - flip_p
    return dist


def _sampled_confusion(labels: np.ndarray, probs: np.ndarray, rate: float):
    """(labels, wrong-class probabilities, each image's flip probability min(1, c · mass)) with c set by bisection
    so the flip probabilities average ``rate``."""
    y, wrong = _wrong_class_probs(labels, probs, rate)
    mass = wrong.sum(axis=1)
    if rate > 0 and not np.any(mass > 0):
        raise ValueError("probs put no mass on any wrong class: nothing to confuse")
    lo, hi = 0.0, 1.0
    while np.mean(np.minimum(1.0, hi * mass)) < rate and hi < 1e12:
        hi *= 2
    for _ in range(100):  # bisection for c: the mean flip probability rises with c
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.mean(np.minimum(1.0, mid * mass)) < rate else (lo, mid)
    return y, wrong, np.minimum(1.0, hi * mass)
