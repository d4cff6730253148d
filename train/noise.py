"""Estimate the label-noise process and correct noisy labels with it.

Notation (fixed for the whole module): N images, K = 10 classes, y the true label, ỹ the noisy label,
``T[i, j] = P(ỹ = j | y = i)`` the (K, K) noise transition matrix, rows summing to 1, and ``probs`` (N, K) a
classifier's estimate of P(y | x).

* :func:`estimate_transition_matrix` counts T from images that carry both labels (the client's first 10k).
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


def estimate_transition_matrix(true_labels: np.ndarray, noisy_labels: np.ndarray, *, n_classes: int = 10,
                               pseudo_count: float = 1.0) -> np.ndarray:
    """Row-normalised counts of (true, noisy) pairs; returns T, shape (K, K).

    ``true_labels``, ``noisy_labels``: (M,) ints, the two labels of the same M images. ``pseudo_count`` is added to
    every cell (a symmetric Dirichlet prior) so that a class with few examples gets no zero (impossible) entries.
    """
    y = _check_labels(true_labels, n_classes, "true_labels")
    noisy = _check_labels(noisy_labels, n_classes, "noisy_labels")
    if y.shape != noisy.shape:
        raise ValueError(f"true_labels {y.shape} and noisy_labels {noisy.shape} must have the same length")
    if pseudo_count < 0:
        raise ValueError(f"pseudo_count must be >= 0, got {pseudo_count}")
    counts = np.full((n_classes, n_classes), float(pseudo_count))
    np.add.at(counts, (y, noisy), 1.0)
    rows = counts.sum(axis=1, keepdims=True)
    if np.any(rows == 0):
        missing = np.flatnonzero(rows[:, 0] == 0).tolist()
        raise ValueError(f"classes {missing} never occur in true_labels; use pseudo_count > 0")
    return counts / rows


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
