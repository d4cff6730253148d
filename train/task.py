"""What every CNN method is given: the images, both label sets, and the split of the clean-labelled images.

Notation as in :mod:`labelmend.train.noise`: N images, K classes. The clean-labelled images (the first ``n_clean``)
are split into *train* (their clean labels may be used) and *val*. Val images are kept out of training entirely (not
even their noisy labels are fitted), so they stand for the client's unseen test images: their clean labels score
every model, and their noisy labels measure label correction on images the network never saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labelmend import registry
from labelmend.run_format import DEFAULT_VAL_FRACTION  # noqa: F401  (re-exported: the split's default)


@dataclass
class Split:
    """Indices into the N training images: ``train_clean`` and ``val`` partition the clean-labelled ones."""

    train_clean: np.ndarray
    val: np.ndarray

    @classmethod
    def make(cls, n_clean: int, *, val_fraction: float, seed: int) -> "Split":
        """A seeded random split of images 0..n_clean-1."""
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        perm = np.random.default_rng(seed).permutation(n_clean)
        n_val = int(round(n_clean * val_fraction))
        return cls(train_clean=np.sort(perm[n_val:]), val=np.sort(perm[:n_val]))

    def training_images(self, n_images: int) -> np.ndarray:
        """Indices of the images the CNNs train on: all but the validation images."""
        return np.setdiff1d(np.arange(n_images), self.val)

    def as_dict(self) -> dict:
        return {"n_train_clean": int(len(self.train_clean)), "n_val": int(len(self.val)),
                "val_indices_1based": (self.val + 1).tolist()}


@dataclass
class Task:
    """A method's input: ``images`` (N, 32, 32, 3) uint8, ``noisy_labels`` (N,), ``clean_labels`` (n_clean,) for
    images 0..n_clean-1, the :class:`Split`, K (None: from the labels), and the labels a person verified
    (``verified_index`` (V,) into the images, never among the first n_clean; ``verified_labels`` (V,)). Verified
    images were chosen (by a review queue), so unlike ``split.train_clean`` they are no random sample: a method may
    train on their labels but must not count the noise process or validate on them."""

    images: np.ndarray
    noisy_labels: np.ndarray
    clean_labels: np.ndarray
    split: Split
    n_classes: int | None = None
    verified_index: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    verified_labels: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    def __post_init__(self):
        if self.n_classes is None:
            self.n_classes = max(int(lab.max()) + 1 for lab in (self.noisy_labels, self.clean_labels) if len(lab))

    @property
    def train(self) -> np.ndarray:
        """Indices of the CNN training images (all but validation)."""
        return self.split.training_images(len(self.images))

    @property
    def val(self) -> tuple[np.ndarray, np.ndarray]:
        """(validation images, their clean labels)."""
        return self.images[self.split.val], self.clean_labels[self.split.val]


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float | None:
    """Accuracy of argmax(probs) (None for no labels)."""
    return float(np.mean(probs.argmax(1) == labels)) if len(labels) else None


def accuracy_interval(acc: float, n: int, *, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of an accuracy measured on ``n`` images (``z`` sets the level): unlike
    acc ± z·s.e. it stays inside [0, 1] and is honest near 0 and 1 and for few images."""
    if n <= 0:
        raise ValueError("an interval needs at least one image")
    centre = (acc + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(acc * (1 - acc) / n + z * z / (4 * n * n))
    return float(min(acc, max(0.0, centre - half))), float(max(acc, min(1.0, centre + half)))  # exact at 0 and 1


# sha256 of the client's noisy and clean labels (int64, in that order): the data labelmend's defaults were chosen on
DEVELOPMENT_LABELS_SHA256 = "d72dea68fc62ce33d432f3f764f0e4f1f4e3c4d4712c37661958ed91e9771e88"
DEVELOPMENT_SPLIT = {"seed": 0, "val_fraction": DEFAULT_VAL_FRACTION}


def chosen_on_these_images(noisy_labels: np.ndarray, clean_labels: np.ndarray, *, seed: int,
                           val_fraction: float) -> bool:
    """Whether this run validates on the very images labelmend's defaults (network, schedule, thresholds) were
    chosen on: the development data with its development split. Many choices made on the same images make their
    accuracy read high, so the report says so."""
    import hashlib

    digest = hashlib.sha256(np.asarray(noisy_labels, np.int64).tobytes()
                            + np.asarray(clean_labels, np.int64).tobytes()).hexdigest()
    return (digest == DEVELOPMENT_LABELS_SHA256 and seed == DEVELOPMENT_SPLIT["seed"]
            and val_fraction == DEVELOPMENT_SPLIT["val_fraction"])


def per_class_accuracy(probs: np.ndarray, labels: np.ndarray, n_classes: int) -> list[float | None]:
    """Accuracy of argmax(probs) among the images of each true class (None for a class with no image)."""
    pred = probs.argmax(1)
    return [float(np.mean(pred[labels == c] == c)) if np.any(labels == c) else None for c in range(n_classes)]


def validation_report(probs: np.ndarray, labels: np.ndarray) -> dict:
    """A model's validation record: accuracy, n, and its predicted class per validation image (so two models can be
    compared image by image, :func:`paired_difference`)."""
    return {"accuracy": accuracy(probs, labels), "n": int(len(labels)), "predicted": probs.argmax(1).tolist()}


def paired_difference(predicted_a, predicted_b, labels: np.ndarray) -> dict:
    """Accuracy of b minus accuracy of a on the same images, with its paired standard error: only the images
    where exactly one of the two is right carry information (``b_only`` / ``a_only`` of them)."""
    right_a, right_b = np.asarray(predicted_a) == labels, np.asarray(predicted_b) == labels
    n = len(labels)
    b_only, a_only = int(np.sum(right_b & ~right_a)), int(np.sum(right_a & ~right_b))
    diff = (b_only - a_only) / n
    se = float(np.sqrt(max(0.0, (b_only + a_only) / n - diff ** 2) / n))
    return {"difference": float(diff), "standard_error": se, "b_only": b_only, "a_only": a_only, "n": int(n)}


def paired_comparisons(models: dict, val_labels: np.ndarray) -> list[dict]:
    """Each CNN that learns from clean labels against each that does not, image by image on the validation images
    (:func:`paired_difference`; ``models``: name → :class:`~labelmend.run_format.ModelRecord`): what weak
    supervision added, and whether it is more than chance."""
    if not len(val_labels):
        return []
    methods = [m for m in registry.METHODS.values()
               if m.name in models and models[m.name].validation_predicted is not None]
    return [{"model": b.name, "versus": a.name, **paired_difference(models[a.name].validation_predicted,
                                                                     models[b.name].validation_predicted, val_labels)}
            for b in methods if b.uses_clean_labels for a in methods if not a.uses_clean_labels]


def stage_report(histories: dict, *, planned_steps: int) -> dict:
    """Steps, seconds, cut and final learning rate of a model trained in the stages ``histories`` (name → dict)."""
    steps = int(sum(h["steps"] for h in histories.values()))
    return {"history": histories, "steps": steps, "planned_steps": int(planned_steps),
            "seconds": float(sum(h["seconds"] for h in histories.values())),
            "stopped_early": any(h["stopped_early"] for h in histories.values()) or steps < planned_steps,
            "final_lr": list(histories.values())[-1]["final_lr"]}
