"""Estimate the label-noise process and correct noisy labels with it.

Notation (fixed for the whole module): N images, K classes (2 <= K <= 100), y the true label, ỹ the noisy label,
``T[i, j] = P(ỹ = j | y = i)`` the (K, K) noise transition matrix, rows summing to 1, and ``probs`` (N, K) a
classifier's estimate of P(y | x).

* :func:`estimate_transition_matrix` counts T from images that carry both labels (the client's first 10k), with a
  Dirichlet prior centred on symmetric noise at the pooled agreement rate, so a small trusted set is shrunk towards
  a sensible T rather than towards "every label equally likely".
* :func:`estimate_transition_from_probs` estimates T without any clean label, from a classifier of the *noisy*
  label: anchor points (Patrini et al. 2017, §3.1, eqs. 9–10): the image most typical of class i (its predicted
  P(ỹ = i | x) at the 97th percentile) is taken as surely of class i, so its whole predicted row is T[i, :].
* :func:`confident_labels` guesses each image's true label without any clean label, from a classifier of the noisy
  label: confident learning (Northcutt et al. 2021, §3.1), per-class thresholds instead of a single anchor image.
* :func:`simulate_noise` draws noisy labels from clean ones through a given T (for tests and benchmarks), and
  :func:`symmetric`, :func:`pair_flip` build the usual Ts. :func:`confusion_noise` and
  :func:`sampled_confusion_noise` make noise that depends on the image, as human annotators' does: the images a
  classifier finds confusable get (always, or with a probability that grows with it) a class it confuses them with.
* :func:`posterior_correction` combines a classifier with the noisy label as evidence, by Bayes' rule under the
  usual class-conditional noise assumption (ỹ independent of x given y)::

      P(y = i | x, ỹ = j)  ∝  P(y = i | x) · T[i, j]

* :func:`forward_corrected` is the forward loss correction of Patrini et al., "Making deep neural networks robust
  to label noise: a loss correction approach", CVPR 2017, eq. (6): train on noisy labels through ``probs @ T``.
"""

from __future__ import annotations

import numpy as np


def _check_labels(labels: np.ndarray, n_classes: int, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-d integer array, got shape {labels.shape} dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{name} must lie in 0..{n_classes - 1}, got {labels.min()}..{labels.max()}")
    return labels


def symmetric(n_classes: int, rate: float) -> np.ndarray:
    """T of symmetric noise: a label is wrong with probability ``rate``, then uniformly one of the K-1 others."""
    t = np.full((n_classes, n_classes), rate / (n_classes - 1))
    np.fill_diagonal(t, 1.0 - rate)
    return t


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
    y = _check_labels(labels, k, "labels")
    if transition.shape != (k, k) or np.any(transition < 0) or not np.allclose(transition.sum(1), 1.0):
        raise ValueError(f"transition must be a ({k}, {k}) row-stochastic matrix")
    u = np.random.default_rng(seed).random(len(y))
    return _draw(np.cumsum(transition, axis=1)[y], u)


def _wrong_class_probs(labels: np.ndarray, probs: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Checked (labels (N,), probs (N, K) float64 with each image's true class set to 0) for the confusion noises."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2 or not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError(f"probs must be a finite, non-negative (N, K >= 2) array, got shape {probs.shape}")
    y = _check_labels(labels, probs.shape[1], "labels")
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


def estimate_transition_matrix(true_labels: np.ndarray, noisy_labels: np.ndarray, *, n_classes: int = 10,
                               prior_strength: float = 5.0) -> np.ndarray:
    """Posterior-mean T from (true, noisy) label pairs; returns (K, K), rows summing to 1.

    ``true_labels``, ``noisy_labels``: (M,) ints, the two labels of the same M images. Row i is
    (counts[i] + a·T0[i]) / (M_i + a), with T0 symmetric noise at the pooled rate of agreement (a Dirichlet prior of
    ``prior_strength`` = a pseudo-pairs per row). 8,000 pairs (800 per row) barely feel it; 200 pairs (20 per row)
    are pulled a fifth of the way towards T0; a class with no trusted pair gets T0's row, not a uniform guess.
    """
    y = _check_labels(true_labels, n_classes, "true_labels")
    noisy = _check_labels(noisy_labels, n_classes, "noisy_labels")
    if y.shape != noisy.shape:
        raise ValueError(f"true_labels {y.shape} and noisy_labels {noisy.shape} must have the same length")
    if prior_strength < 0:
        raise ValueError(f"prior_strength must be >= 0, got {prior_strength}")
    counts = np.zeros((n_classes, n_classes))
    np.add.at(counts, (y, noisy), 1.0)
    agreement = (np.trace(counts) + 1.0) / (len(y) + 2.0)  # pooled P(ỹ = y), with a Laplace prior
    prior = symmetric(n_classes, 1.0 - agreement)
    rows = counts.sum(axis=1, keepdims=True) + prior_strength
    if np.any(rows == 0):
        missing = np.flatnonzero(rows[:, 0] == 0).tolist()
        raise ValueError(f"classes {missing} never occur in true_labels; use prior_strength > 0")
    return (counts + prior_strength * prior) / rows


def estimate_transition_from_probs(noisy_probs: np.ndarray, *, quantile: float = 0.97) -> np.ndarray:
    """T (K, K) from a classifier of the noisy label alone: anchor points (Patrini et al. 2017, eqs. 9–10).

    ``noisy_probs`` (N, K): P̂(ỹ | x) of a network trained on the noisy labels. For each class i, the image whose
    P̂(ỹ = i | x) sits at the ``quantile`` of that column (the maximum is too easily an outlier) is taken as an
    anchor of class i, and T[i, :] = P̂(ỹ | anchor). Rows are renormalised.
    """
    probs = np.asarray(noisy_probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] < 1:
        raise ValueError(f"noisy_probs must have shape (N, K) with N >= 1, got {probs.shape}")
    k = probs.shape[1]
    t = np.empty((k, k))
    for i in range(k):
        column = probs[:, i]
        threshold = np.quantile(column, quantile, method="higher")
        anchor = int(np.argmin(np.where(column >= threshold, column, np.inf)))
        t[i] = probs[anchor]
    return t / t.sum(axis=1, keepdims=True)


def confident_labels(noisy_probs: np.ndarray, noisy_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each image's confident label (Northcutt et al., "Confident learning", JAIR 2021, §3.1); returns
    (confident (N,) ints, -1 where no class is confident; thresholds (K,)).

    ``noisy_probs`` (N, K): P̂(ỹ | x) of a network trained on the noisy labels ``noisy_labels`` (N,). Class j's
    threshold t_j is the mean P̂(ỹ = j | x) over the images labelled j: how sure the network is of its own class j
    on average, which adapts to a network made under-confident by the noise (the flaw of a single anchor image).
    Image n's confident label is its most probable class among those with P̂(ỹ = j | x_n) >= t_j. Where it differs
    from ỹ_n, the noisy label is a likely error (cleanlab's "confident joint" off-diagonal).
    """
    probs = np.asarray(noisy_probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"noisy_probs must have shape (N, K), got {probs.shape}")
    k = probs.shape[1]
    noisy = _check_labels(noisy_labels, k, "noisy_labels")
    if len(noisy) != len(probs):
        raise ValueError(f"noisy_probs has {len(probs)} rows but noisy_labels {len(noisy)} entries")
    counts = np.bincount(noisy, minlength=k)
    sums = np.zeros(k)
    np.add.at(sums, noisy, probs[np.arange(len(noisy)), noisy])
    # a class no image is labelled with gets threshold 1: nothing is confidently of it
    thresholds = np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)
    above = probs >= thresholds
    confident = np.where(above.any(axis=1), np.where(above, probs, -1.0).argmax(axis=1), -1)
    return confident.astype(np.int64), thresholds


def posterior_correction(probs: np.ndarray, noisy_labels: np.ndarray, transition: np.ndarray) -> np.ndarray:
    """P(y | x, ỹ) ∝ probs[n, y] · T[y, ỹ_n]; returns (N, K) rows summing to 1.

    ``probs``: (N, K) classifier probabilities P(y | x); ``noisy_labels``: (N,) ints; ``transition``: (K, K).
    """
    probs = np.asarray(probs, dtype=np.float64)
    k = transition.shape[0]
    noisy = _check_labels(noisy_labels, k, "noisy_labels")
    if probs.ndim != 2 or probs.shape != (len(noisy), k):
        raise ValueError(f"probs must have shape ({len(noisy)}, {k}), got {probs.shape}")
    joint = probs * transition[:, noisy].T
    total = joint.sum(axis=1, keepdims=True)
    # A classifier certain of a class the noise can never turn into ỹ leaves no mass; fall back to the classifier.
    return np.where(total > 0, joint / np.where(total > 0, total, 1.0), probs)


def forward_corrected(probs: np.ndarray, transition: np.ndarray) -> np.ndarray:
    """P(ỹ | x) = probs @ T, (N, K): what a classifier of the true label predicts about the noisy one."""
    return np.asarray(probs) @ transition
