"""Model I and Model II: the same CNN and the same step budget, trained without and with weak supervision.

Notation as in :mod:`labelmend.train.noise`: N images, K classes, T[i, j] = P(ỹ = j | y = i). The clean-labelled
images are split into *train* (their clean labels are used) and *val*. Val images are kept out of training entirely
(not even their noisy labels are fitted), so they stand for the client's unseen test images: their clean labels score
every stage, and their noisy labels measure label correction on images the network never saw.

Model II, in two stages sharing the budget (``HYP_NOISE``):

A. **Forward correction.** Clean-train images fit their clean label; every other image fits its noisy label through
   T (Patrini et al. 2017, eq. 6), so the network learns P(y | x) although 6 in 10 of those labels are wrong.
B. **Posterior relabelling + self-training.** Each noisy image gets the soft label P(y | x, ỹ) ∝ P(y | x) · T[y, ỹ]
   (the noisy label as evidence), and training continues on clean + soft labels with a fresh learning-rate cycle.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from labelmend.train import cnn, noise

HYP_NOISE = {
    "stage_a_frac": 0.6,     # share of Model II's steps spent on forward-corrected training (stage A)
    "stage_b_lr_scale": 0.5,  # stage B's peak learning rate relative to HYP["opt"]["lr"] (it starts from stage A)
    "pseudo_count": 1.0,     # Dirichlet prior per cell when counting T from the clean/noisy pairs
    "clean_repeat": 3,       # times each clean-labelled training image appears per epoch (a clean label carries
                             # ~3.3 bits, a 40 %-correct noisy one ~0.45 bits: 8k clean outweigh 40k noisy)
}


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


def _prefix(checkpoints: Path | None, name: str) -> Path | None:
    return None if checkpoints is None else Path(checkpoints) / name


def _accuracy(probs: np.ndarray, labels: np.ndarray) -> float | None:
    return float(np.mean(probs.argmax(1) == labels)) if len(labels) else None


def train_model1(images, noisy_labels, clean_labels, split: Split, *, steps: int, seed: int = 0,
                 deadline: float | None = None, hyp: dict = cnn.HYP, progress: bool = True,
                 checkpoints: Path | None = None):
    """Model I: every image fits its noisy label as if it were clean. Returns (model, report dict)."""
    model = cnn.make_model(width=hyp["net"]["width"], seed=seed)
    train = split.training_images(len(images))
    targets = cnn.one_hot(noisy_labels[train], smoothing=hyp["opt"]["label_smoothing"])
    data = cnn.TrainingTargets(images[train], targets, np.zeros(len(train), bool))
    val = (images[split.val], clean_labels[split.val])
    hist = cnn.fit(model, data, steps=steps, val=val, seed=seed, deadline=deadline, hyp=hyp, progress=progress,
                   desc="model1: noisy labels", checkpoint=_prefix(checkpoints, "model1"))
    val_probs = cnn.predict_proba(model, val[0], flip_tta=hyp["eval"]["flip_tta"])
    report = {"history": {"all": hist.as_dict()}, "steps": hist.steps, "planned_steps": int(steps),
              "seconds": hist.seconds, "stopped_early": hist.stopped_early, "final_lr": hist.final_lr,
              "validation": {"accuracy": _accuracy(val_probs, val[1]), "n": len(val[1])}}
    return model, report


def train_model2(images, noisy_labels, clean_labels, split: Split, *, steps: int, seed: int = 0,
                 deadline: float | None = None, hyp: dict = cnn.HYP, hyp_noise: dict = HYP_NOISE,
                 progress: bool = True, checkpoints: Path | None = None):
    """Model II (module docstring). Returns (model, report dict with T and each stage's validation numbers)."""
    n = len(images)
    smoothing = hyp["opt"]["label_smoothing"]
    transition = noise.estimate_transition_matrix(clean_labels[split.train_clean], noisy_labels[split.train_clean],
                                                  pseudo_count=hyp_noise["pseudo_count"])
    is_clean = np.zeros(n, bool)
    is_clean[split.train_clean] = True
    # every training image once, the clean-labelled ones clean_repeat times
    train = np.concatenate([split.training_images(n)] + [split.train_clean] * (hyp_noise["clean_repeat"] - 1))
    train_images, is_clean_train = images[train], is_clean[train]
    val = (images[split.val], clean_labels[split.val])
    noisy_val = noisy_labels[split.val]
    report = {"transition_matrix": transition.tolist(), "history": {}, "stages": {}}

    # Stage A: clean labels direct, noisy labels through T. It gets stage_a_frac of the steps and of the time left.
    steps_a = max(1, int(round(steps * hyp_noise["stage_a_frac"])))
    now = time.monotonic()
    deadline_a = None if deadline is None else now + hyp_noise["stage_a_frac"] * (deadline - now)
    targets = cnn.one_hot(noisy_labels)
    targets[is_clean] = cnn.one_hot(clean_labels[split.train_clean], smoothing=smoothing)
    model = cnn.make_model(width=hyp["net"]["width"], seed=seed)
    hist_a = cnn.fit(model, cnn.TrainingTargets(train_images, targets[train], ~is_clean_train), steps=steps_a,
                     transition=transition,
                     val=val, seed=seed, deadline=deadline_a, hyp=hyp, progress=progress,
                     desc="model2 A: forward correction", checkpoint=_prefix(checkpoints, "model2_A"))
    report["history"]["A"] = hist_a.as_dict()
    probs = cnn.predict_proba(model, images, flip_tta=hyp["eval"]["flip_tta"])
    posterior = noise.posterior_correction(probs, noisy_labels, transition)
    report["stages"]["A_forward_correction"] = {"val_accuracy": _accuracy(probs[split.val], val[1])}
    report["label_correction"] = {
        "noisy_label_accuracy": float(np.mean(noisy_val == val[1])) if len(noisy_val) else None,
        "classifier_accuracy": _accuracy(probs[split.val], val[1]),
        "posterior_accuracy": _accuracy(posterior[split.val], val[1]),
        "n": int(len(split.val)),
    }

    # Stage B: clean labels + posterior soft labels, a fresh (lower) learning-rate cycle from stage A's weights.
    # Stage B gets the planned steps stage A did not use and the time left until the model's deadline.
    steps_b = steps - hist_a.steps
    if steps_b > 0:
        soft = (1 - smoothing) * posterior + smoothing / posterior.shape[1]
        soft[is_clean] = targets[is_clean]
        hyp_b = cnn.hyperparameters(**{g: dict(v) for g, v in hyp.items()})
        hyp_b["opt"]["lr"] = hyp["opt"]["lr"] * hyp_noise["stage_b_lr_scale"]
        hist_b = cnn.fit(model, cnn.TrainingTargets(train_images, soft[train].astype(np.float32),
                                                    np.zeros(len(train), bool)),
                         steps=steps_b, val=val, seed=seed + 1, deadline=deadline, hyp=hyp_b, progress=progress,
                         desc="model2 B: relabelled", checkpoint=_prefix(checkpoints, "model2_B"))
        report["history"]["B"] = hist_b.as_dict()
        val_probs = cnn.predict_proba(model, val[0], flip_tta=hyp["eval"]["flip_tta"])
        report["stages"]["B_posterior_relabel"] = {"val_accuracy": _accuracy(val_probs, val[1])}
        posterior_b = noise.posterior_correction(val_probs, noisy_val, transition)
        report["label_correction"]["posterior_accuracy_after_B"] = _accuracy(posterior_b, val[1])
        final_probs = val_probs
    else:
        final_probs = probs[split.val]
    report["steps"] = int(sum(h["steps"] for h in report["history"].values()))
    report["seconds"] = float(sum(h["seconds"] for h in report["history"].values()))
    report["planned_steps"] = int(steps)
    report["stopped_early"] = any(h["stopped_early"] for h in report["history"].values()) or report["steps"] < steps
    report["final_lr"] = list(report["history"].values())[-1]["final_lr"]
    report["validation"] = {"accuracy": _accuracy(final_probs, val[1]), "n": int(len(split.val))}
    return model, report


def steps_for_epochs(n_images: int, epochs: float, batch_size: int) -> int:
    """SGD steps that make ``epochs`` passes over ``n_images``."""
    return max(1, math.ceil(epochs * n_images / batch_size))
