"""Estimate the label-noise process and correct noisy labels with it.

Notation (fixed for the whole module): N images, K classes (2 <= K <= 100), y the true label, ỹ the noisy label,
``T[i, j] = P(ỹ = j | y = i)`` the (K, K) noise transition matrix, rows summing to 1, and ``probs`` (N, K) a
classifier's estimate of P(y | x).

* :func:`estimate_transition_matrix` counts T from images that carry both labels (the client's first 10k), with a
  Dirichlet prior centred on symmetric noise at the pooled agreement rate, so a small trusted set is shrunk towards
  a sensible T rather than towards "every label equally likely".
* :func:`confident_labels` guesses each image's true label without any clean label, from a classifier of the noisy
  label: confident learning (Northcutt et al. 2021, §3.1), per-class thresholds instead of a single anchor image.
* :func:`symmetric` is T of symmetric noise (the prior of the estimate above). Drawing noisy labels for tests and
  benchmarks is :mod:`labelmend.benchmarking`'s job, which training never imports.
* :func:`posterior_correction` combines a classifier with the noisy label as evidence, by Bayes' rule under the
  usual class-conditional noise assumption (ỹ independent of x given y)::

      P(y = i | x, ỹ = j)  ∝  P(y = i | x) · T[i, j]

* :func:`forward_corrected` is the forward loss correction of Patrini et al., "Making deep neural networks robust
  to label noise: a loss correction approach", CVPR 2017, eq. (6): train on noisy labels through ``probs @ T``.
"""

from __future__ import annotations

import numpy as np


def check_labels(labels: np.ndarray, n_classes: int, name: str) -> np.ndarray:
    """``labels`` as an array, checked to be 1-d integers in 0..n_classes-1 (ValueError naming ``name`` if not)."""
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


def estimate_transition_matrix(true_labels: np.ndarray, noisy_labels: np.ndarray, *, n_classes: int,
                               prior_strength: float = 5.0) -> np.ndarray:
    """Posterior-mean T from (true, noisy) label pairs; returns (K, K), rows summing to 1.

    ``true_labels``, ``noisy_labels``: (M,) ints, the two labels of the same M images. Row i is
    (counts[i] + a·T0[i]) / (M_i + a), with T0 symmetric noise at the pooled rate of agreement (a Dirichlet prior of
    ``prior_strength`` = a pseudo-pairs per row). 8,000 pairs (800 per row) barely feel it; 200 pairs (20 per row)
    are pulled a fifth of the way towards T0; a class with no trusted pair gets T0's row, not a uniform guess.
    """
    y = check_labels(true_labels, n_classes, "true_labels")
    noisy = check_labels(noisy_labels, n_classes, "noisy_labels")
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
    noisy = check_labels(noisy_labels, k, "noisy_labels")
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
    noisy = check_labels(noisy_labels, k, "noisy_labels")
    if probs.ndim != 2 or probs.shape != (len(noisy), k):
        raise ValueError(f"probs must have shape ({len(noisy)}, {k}), got {probs.shape}")
    joint = probs * transition[:, noisy].T
    total = joint.sum(axis=1, keepdims=True)
    # A classifier certain of a class the noise can never turn into ỹ leaves no mass; fall back to the classifier.
    return np.where(total > 0, joint / np.where(total > 0, total, 1.0), probs)


def forward_corrected(probs: np.ndarray, transition: np.ndarray) -> np.ndarray:
    """P(ỹ | x) = probs @ T, (N, K): what a classifier of the true label predicts about the noisy one."""
    return np.asarray(probs) @ transition
