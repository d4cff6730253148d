"""The client's baseline: 15 RGB-histogram counts per image + LogisticRegression(random_state=0) on noisy labels.

Reproduced exactly, not improved: the features are ``np.histogram(img[:, :, c], bins=np.linspace(0, 255, 6))[0]``
for c = R, G, B (computed by :func:`labelmend.ext.rgb_histogram`, bit-exact), unscaled, and the estimator keeps
scikit-learn's defaults (which stop at max_iter=100 before converging on these counts, as the client's did).
"""

from __future__ import annotations

import pickle
import time
import warnings
from pathlib import Path

import numpy as np
from labelmend.ext import rgb_histogram

from labelmend import registry
from labelmend.run_format import ModelRecord


def histogram_features(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) RGB images → (N, 15) float64 features, the client's histogram counts."""
    return rgb_histogram(images).astype(np.float64)


def fit_baseline(images: np.ndarray, noisy_labels: np.ndarray, *, random_state: int = 0):
    """Fit the client's LogisticRegression on the histogram features of all images and their noisy labels."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the client's recipe stops at max_iter=100 too
        clf.fit(histogram_features(images), noisy_labels)
    return clf


def train_baseline(data, split, folder: Path) -> ModelRecord:
    """Fit the baseline on all of ``data``'s noisy labels (the client's recipe), pickle it into ``folder`` and score
    it on the validation images (whose noisy labels it did fit)."""
    t0 = time.monotonic()
    clf = fit_baseline(data.images, data.noisy_labels)
    with open(folder / registry.model_file(registry.BASELINE), "wb") as f:
        pickle.dump(clf, f, protocol=pickle.HIGHEST_PROTOCOL)
    val_acc = None
    if len(split.val):
        predicted = clf.predict(histogram_features(data.images[split.val]))
        val_acc = float(np.mean(predicted == data.clean_labels[split.val]))
    return ModelRecord(
        file=registry.model_file(registry.BASELINE), seconds=time.monotonic() - t0,
        training={"estimator": "LogisticRegression(random_state=0)", "features": "rgb_histogram_5bins",
                  "labels": "noisy, all images",
                  "note": "validation images' noisy labels are in its training set (the client's recipe)"},
        validation={"accuracy": val_acc, "n": int(len(split.val))})
