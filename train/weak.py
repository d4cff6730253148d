"""Model I and Model II: the same CNN and the same step budget, trained without and with weak supervision.

Notation as in :mod:`labelmend.train.noise`: N images, K classes, T[i, j] = P(ỹ = j | y = i). The clean-labelled
images are split into *train* (their clean labels are used) and *val*. Val images are kept out of training entirely
(not even their noisy labels are fitted), so they stand for the client's unseen test images: their clean labels score
every stage, and their noisy labels measure label correction on images the network never saw.

Model II, in two stages sharing the budget (``HYP_NOISE``), after T is estimated: counted from the trusted
(clean, noisy) pairs when there are at least ``min_trusted_per_class`` per class on average. Otherwise (no or very
few clean labels) stage A fits the noisy labels as they are, T is read off that network's predictions at anchor
points (Patrini et al. 2017, §3.1), and stage B relabels with it: no forward correction through a guessed T.

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
    "prior_strength": 5.0,   # pseudo-pairs per row of T's Dirichlet prior (centred on symmetric noise at the
                             # pooled agreement rate): 800 pairs per row barely feel it, 20 per row are shrunk 20 %
    "min_trusted_per_class": 10,  # fewer trusted training pairs than this × K: T is estimated from the data instead
    "undo_noise_without_pairs": False,  # without trusted pairs, P(y|x) = P(ỹ|x)·T⁻¹ before relabelling? Off:
                                        # with the anchor T it cost 11 pt (BENCHMARKS.md §7, ablation)
    "anchor_quantile": 0.97,  # anchor of class i: the image at this quantile of P(noisy = i | x) (Patrini et al.)
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


def _n_classes(n_classes, *labels) -> int:
    return n_classes if n_classes is not None else max(int(lab.max()) + 1 for lab in labels if len(lab))


def _slot(deadline: float | None, frac: float) -> float | None:
    """The deadline of a stage given ``frac`` of the time left before ``deadline`` (None: no deadline)."""
    if deadline is None:
        return None
    now = time.monotonic()
    return now + frac * max(0.0, deadline - now)


def train_model1(images, noisy_labels, clean_labels, split: Split, *, steps: int, seed: int = 0,
                 deadline: float | None = None, hyp: dict = cnn.HYP, progress: bool = True,
                 checkpoints: Path | None = None, n_classes: int | None = None):
    """Model I: every image fits its noisy label as if it were clean. Returns (model, report dict)."""
    k = _n_classes(n_classes, noisy_labels, clean_labels)
    model = cnn.make_model(width=hyp["net"]["width"], logit_scale=hyp["net"]["logit_scale"], n_classes=k, seed=seed)
    train = split.training_images(len(images))
    targets = cnn.one_hot(noisy_labels[train], k, smoothing=hyp["opt"]["label_smoothing"])
    data = cnn.TrainingTargets(images[train], targets, np.zeros(len(train), bool))
    val = (images[split.val], clean_labels[split.val])
    hist = cnn.fit(model, data, steps=steps, val=val, seed=seed, deadline=deadline, hyp=hyp, progress=progress,
                   desc="model1: noisy labels", checkpoint=_prefix(checkpoints, "model1"))
    val_probs = cnn.predict_proba(model, val[0], batch_size=hyp["eval"]["batch_size"],
                                  flip_tta=hyp["eval"]["flip_tta"])
    report = {"history": {"all": hist.as_dict()}, "steps": hist.steps, "planned_steps": int(steps),
              "seconds": hist.seconds, "stopped_early": hist.stopped_early, "final_lr": hist.final_lr,
              "validation": {"accuracy": _accuracy(val_probs, val[1]), "n": len(val[1])}}
    return model, report


def per_class_accuracy(probs: np.ndarray, labels: np.ndarray, n_classes: int) -> list[float | None]:
    """Accuracy of argmax(probs) among the images of each true class (None for a class with no image)."""
    pred = probs.argmax(1)
    return [float(np.mean(pred[labels == c] == c)) if np.any(labels == c) else None for c in range(n_classes)]


def counts_transition(n_trusted: int, n_classes: int, hyp_noise: dict = HYP_NOISE) -> bool:
    """Whether Model II counts T from the trusted pairs (enough of them) or estimates it from the data alone."""
    return n_trusted >= hyp_noise["min_trusted_per_class"] * n_classes


def train_model2(images, noisy_labels, clean_labels, split: Split, *, steps: int, seed: int = 0,
                 deadline: float | None = None, hyp: dict = cnn.HYP, hyp_noise: dict = HYP_NOISE,
                 progress: bool = True, checkpoints: Path | None = None, n_classes: int | None = None):
    """Model II (module docstring). Returns (model, report dict with T and each stage's validation numbers)."""
    n = len(images)
    k = _n_classes(n_classes, noisy_labels, clean_labels)
    smoothing = hyp["opt"]["label_smoothing"]
    flip_tta, eval_bs = hyp["eval"]["flip_tta"], hyp["eval"]["batch_size"]
    n_trusted = len(split.train_clean)
    trusted_pairs = counts_transition(n_trusted, k, hyp_noise)
    is_clean = np.zeros(n, bool)
    is_clean[split.train_clean] = True
    # every training image once, the clean-labelled ones clean_repeat times
    train = np.concatenate([split.training_images(n)] + [split.train_clean] * (hyp_noise["clean_repeat"] - 1))
    train_images, is_clean_train = images[train], is_clean[train]
    val = (images[split.val], clean_labels[split.val])
    noisy_val = noisy_labels[split.val]
    report = {"history": {}, "stages": {}, "n_trusted_pairs": int(n_trusted)}
    model = cnn.make_model(width=hyp["net"]["width"], logit_scale=hyp["net"]["logit_scale"], n_classes=k, seed=seed)
    targets = cnn.one_hot(noisy_labels, k)
    targets[is_clean] = cnn.one_hot(clean_labels[split.train_clean], k, smoothing=smoothing)
    transition = None

    if trusted_pairs:
        transition = noise.estimate_transition_matrix(clean_labels[split.train_clean],
                                                      noisy_labels[split.train_clean], n_classes=k,
                                                      prior_strength=hyp_noise["prior_strength"])
        report["transition_source"] = (f"counted from {n_trusted} trusted (clean, noisy) label pairs, Dirichlet prior "
                                       f"of {hyp_noise['prior_strength']:g} pseudo-pairs per row")

    # Stage A: clean labels direct; noisy labels through T when T is known (forward correction), else taken as they
    # are (T is then read off this network afterwards). Stage A gets stage_a_frac of the steps and of the time.
    steps_a = max(1, int(round(steps * hyp_noise["stage_a_frac"])))
    forward = ~is_clean_train if trusted_pairs else np.zeros(len(train), bool)
    hist_a = cnn.fit(model, cnn.TrainingTargets(train_images, targets[train], forward), steps=steps_a,
                     transition=transition if trusted_pairs else None, val=val, seed=seed,
                     deadline=_slot(deadline, hyp_noise["stage_a_frac"]), hyp=hyp, progress=progress,
                     desc="model2 A: forward correction" if trusted_pairs else "model2 A: noisy labels, for T",
                     checkpoint=_prefix(checkpoints, "model2_A"))
    report["history"]["A"] = hist_a.as_dict()
    probs = cnn.predict_proba(model, images, batch_size=eval_bs, flip_tta=flip_tta)
    if not trusted_pairs:
        # Too few trusted pairs to count T: this network predicts the *noisy* label, P(ỹ | x) = P(y | x) · T, so
        # its rows at anchor points (images surely of one class) are rows of T (Patrini et al. 2017, §3.1).
        transition = noise.estimate_transition_from_probs(probs[split.training_images(n)],
                                                          quantile=hyp_noise["anchor_quantile"])
        report["transition_source"] = (f"estimated without trusted pairs ({n_trusted} < "
                                       f"{hyp_noise['min_trusted_per_class']} per class): anchor points of a network "
                                       f"trained on the noisy labels (Patrini et al. 2017)")
    report["transition_matrix"] = transition.tolist()
    if len(split.val) and len(np.unique(val[1])) == k:  # T vs the noise of the held-out pairs (never used)
        counted = noise.estimate_transition_matrix(val[1], noisy_val, n_classes=k, prior_strength=0.0)
        report["transition_error_vs_validation_pairs"] = float(np.mean(np.abs(counted - transition).sum(axis=1)))
    steps_done = hist_a.steps
    if not trusted_pairs and hyp_noise["undo_noise_without_pairs"]:
        # this network predicts ỹ: undo T to get P(y | x) before the noisy label adds evidence
        probs = noise.clean_from_noisy_probs(probs, transition).astype(np.float32)
    posterior = noise.posterior_correction(probs, noisy_labels, transition)
    report["stages"]["A_forward_correction" if trusted_pairs else "A_noisy_labels"] = {
        "val_accuracy": _accuracy(probs[split.val], val[1])}
    report["label_correction"] = {
        "noisy_label_accuracy": float(np.mean(noisy_val == val[1])) if len(noisy_val) else None,
        "classifier_accuracy": _accuracy(probs[split.val], val[1]),
        "posterior_accuracy": _accuracy(posterior[split.val], val[1]),
        "n": int(len(split.val)),
    }

    # Stage B: clean labels + posterior soft labels, a fresh (lower) learning-rate cycle from stage A's weights.
    # Stage B gets the planned steps stage A did not use and the time left until the model's deadline.
    steps_b = steps - steps_done
    final_probs, final_posterior = probs[split.val], posterior[split.val]
    if steps_b > 0:
        soft = (1 - smoothing) * posterior + smoothing / k
        soft[is_clean] = targets[is_clean]
        hyp_b = cnn.hyperparameters(**{g: dict(v) for g, v in hyp.items()})
        hyp_b["opt"]["lr"] = hyp["opt"]["lr"] * hyp_noise["stage_b_lr_scale"]
        hist_b = cnn.fit(model, cnn.TrainingTargets(train_images, soft[train].astype(np.float32),
                                                    np.zeros(len(train), bool)),
                         steps=steps_b, val=val, seed=seed + 1, deadline=deadline, hyp=hyp_b, progress=progress,
                         desc="model2 B: relabelled", checkpoint=_prefix(checkpoints, "model2_B"))
        report["history"]["B"] = hist_b.as_dict()
        final_probs = cnn.predict_proba(model, val[0], batch_size=eval_bs, flip_tta=flip_tta)
        report["stages"]["B_posterior_relabel"] = {"val_accuracy": _accuracy(final_probs, val[1])}
        final_posterior = noise.posterior_correction(final_probs, noisy_val, transition)
        report["label_correction"]["posterior_accuracy_after_B"] = _accuracy(final_posterior, val[1])
    if len(split.val):
        report["label_correction"]["per_class_posterior_accuracy"] = per_class_accuracy(final_posterior, val[1], k)
        report["label_correction"]["per_class_noisy_label_accuracy"] = per_class_accuracy(
            cnn.one_hot(noisy_val, k), val[1], k)
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
