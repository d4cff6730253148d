"""Model II: forward correction, then posterior relabelling — clean labels + noisy labels through the noise model.

Notation as in :mod:`labelmend.train.noise`: T[i, j] = P(ỹ = j | y = i). Two stages share the model's steps and time
(``HYP``), after T is estimated: counted from the trusted (clean, noisy) pairs when there are at least
``min_trusted_per_class`` per class on average. Otherwise (no or very few clean labels) stage A fits the noisy labels
as they are, T is read off that network's predictions at anchor points (Patrini et al. 2017, §3.1), and stage B
relabels with it: no forward correction through a guessed T.

A. **Forward correction.** Clean-train images fit their clean label; every other image fits its noisy label through
   T (Patrini et al. 2017, eq. 6), so the network learns P(y | x) although 6 in 10 of those labels are wrong.
B. **Posterior relabelling + self-training.** Each noisy image gets the soft label P(y | x, ỹ) ∝ P(y | x) · T[y, ỹ]
   (the noisy label as evidence), and training continues on clean + soft labels, on the rest of stage A's
   learning-rate cycle (the two stages share one warm-up-and-anneal cycle).
"""

from __future__ import annotations

import numpy as np
from labelmend.train import budget, noise
from labelmend.train.cnn import one_hot
from labelmend.train.inputs import TrainingTargets
from labelmend.train.loop import Trainer, cross_entropy, forward_corrected_cross_entropy
from labelmend.train.task import Task, accuracy, per_class_accuracy, stage_report

HYP = {
    "stage_a_frac": 0.6,     # share of Model II's steps spent on forward-corrected training (stage A)
    "stage_b_lr_scale": 0.5,  # stage B's peak learning rate relative to HYP["opt"]["lr"] (it starts from stage A)
    "stage_b_continues": True,  # stage B continues stage A's learning-rate cycle (one cycle in all) instead of a
                                # fresh cycle at stage_b_lr_scale: +1.9 pt at 700 steps (BENCHMARKS.md §11)
    "prior_strength": 5.0,   # pseudo-pairs per row of T's Dirichlet prior (centred on symmetric noise at the
                             # pooled agreement rate): 800 pairs per row barely feel it, 20 per row are shrunk 20 %
    "min_trusted_per_class": 10,  # fewer trusted training pairs than this × K: T is estimated from the data instead
    "undo_noise_without_pairs": False,  # without trusted pairs, P(y|x) = P(ỹ|x)·T⁻¹ before relabelling? Off:
                                        # with the anchor T it cost 11 pt (BENCHMARKS.md §7, ablation)
    "anchor_quantile": 0.97,  # anchor of class i: the image at this quantile of P(noisy = i | x) (Patrini et al.)
    "clean_repeat": 3,       # times each clean-labelled training image appears per epoch (a clean label carries
                             # ~3.3 bits, a 40 %-correct noisy one ~0.45 bits: 8k clean outweigh 40k noisy)
}


def counts_transition(n_trusted: int, n_classes: int, hyp_noise: dict = HYP) -> bool:
    """Whether T is counted from the trusted pairs (enough of them) or estimated from the data alone."""
    return n_trusted >= hyp_noise["min_trusted_per_class"] * n_classes


def train(task: Task, trainer: Trainer, *, steps: int, hyp_noise: dict = HYP):
    """Model II (module docstring). Returns (model, report with T and each stage's validation numbers)."""
    images, noisy, split, k = task.images, task.noisy_labels, task.split, task.n_classes
    n = len(images)
    smoothing = trainer.hyp["opt"]["label_smoothing"]
    n_trusted = len(split.train_clean)
    trusted_pairs = counts_transition(n_trusted, k, hyp_noise)
    clean_train = task.clean_labels[split.train_clean]
    is_clean = np.zeros(n, bool)
    is_clean[split.train_clean] = True
    # every training image once, the clean-labelled ones clean_repeat times; an epoch is still one pass over the
    # training images (epoch_images), so Model I's and Model II's curves share their x-axis
    rows = np.concatenate([task.train] + [split.train_clean] * (hyp_noise["clean_repeat"] - 1))
    epoch_images = len(task.train)
    val = task.val
    noisy_val = noisy[split.val]
    report = {"n_trusted_pairs": int(n_trusted), "stages": {}}
    model = trainer.model(k, images[task.train])
    targets = one_hot(noisy, k)
    targets[is_clean] = one_hot(clean_train, k, smoothing=smoothing)
    transition = None

    if trusted_pairs:
        transition = noise.estimate_transition_matrix(clean_train, noisy[split.train_clean], n_classes=k,
                                                      prior_strength=hyp_noise["prior_strength"])
        report["transition_source"] = (f"counted from {n_trusted} trusted (clean, noisy) label pairs, Dirichlet prior "
                                       f"of {hyp_noise['prior_strength']:g} pseudo-pairs per row")

    # Stage A: clean labels direct; noisy labels through T when T is known (forward correction), else taken as they
    # are (T is then read off this network afterwards). Stage A gets stage_a_frac of the steps and of the time.
    steps_a = max(1, int(round(steps * hyp_noise["stage_a_frac"])))
    forward = ~is_clean[rows] if trusted_pairs else np.zeros(len(rows), bool)
    shared_cycle = hyp_noise["stage_b_continues"]
    hist_a = trainer.fit(model, TrainingTargets(images[rows], targets[rows], forward), steps=steps_a, name="A",
                         cycle=(0.0, hyp_noise["stage_a_frac"]) if shared_cycle else (0.0, 1.0),
                         loss=forward_corrected_cross_entropy(transition) if trusted_pairs else cross_entropy,
                         deadline=budget.slot(trainer.deadline, hyp_noise["stage_a_frac"]),
                         epoch_images=epoch_images, val=val,
                         desc="model2 A: forward correction" if trusted_pairs else "model2 A: noisy labels, for T")
    histories = {"A": hist_a.as_dict()}
    probs = trainer.predict_proba(model, images)
    if not trusted_pairs:
        # Too few trusted pairs to count T: this network predicts the *noisy* label, P(ỹ | x) = P(y | x) · T, so
        # its rows at anchor points (images surely of one class) are rows of T (Patrini et al. 2017, §3.1).
        transition = noise.estimate_transition_from_probs(probs[task.train], quantile=hyp_noise["anchor_quantile"])
        report["transition_source"] = (f"estimated without trusted pairs ({n_trusted} < "
                                       f"{hyp_noise['min_trusted_per_class']} per class): anchor points of a network "
                                       f"trained on the noisy labels (Patrini et al. 2017)")
    report["transition_matrix"] = transition.tolist()
    if len(split.val) and len(np.unique(val[1])) == k:  # T vs the noise of the held-out pairs (never used)
        counted = noise.estimate_transition_matrix(val[1], noisy_val, n_classes=k, prior_strength=0.0)
        report["transition_error_vs_validation_pairs"] = float(np.mean(np.abs(counted - transition).sum(axis=1)))
    if not trusted_pairs and hyp_noise["undo_noise_without_pairs"]:
        # this network predicts ỹ: undo T to get P(y | x) before the noisy label adds evidence
        probs = noise.clean_from_noisy_probs(probs, transition).astype(np.float32)
    posterior = noise.posterior_correction(probs, noisy, transition)
    report["stages"]["A_forward_correction" if trusted_pairs else "A_noisy_labels"] = {
        "val_accuracy": accuracy(probs[split.val], val[1])}
    correction = report["label_correction"] = {
        "noisy_label_accuracy": float(np.mean(noisy_val == val[1])) if len(noisy_val) else None,
        "classifier_accuracy": accuracy(probs[split.val], val[1]),
        "posterior_accuracy": accuracy(posterior[split.val], val[1]),
        "n": int(len(split.val)),
    }

    # Stage B: clean labels + posterior soft labels, from stage A's weights, on the rest of its learning-rate cycle
    # (or, with stage_b_continues off, a fresh cycle at stage_b_lr_scale).
    # Stage B gets the planned steps stage A did not use and the time left until the model's deadline.
    steps_b = steps - hist_a.steps
    final_probs, final_posterior = probs[split.val], posterior[split.val]
    if steps_b > 0:
        soft = (1 - smoothing) * posterior + smoothing / k
        soft[is_clean] = targets[is_clean]
        hist_b = trainer.fit(model, TrainingTargets(images[rows], soft[rows].astype(np.float32),
                                                    np.zeros(len(rows), bool)),
                             steps=steps_b, name="B", seed_offset=1,
                             cycle=(hyp_noise["stage_a_frac"], 1.0) if shared_cycle else (0.0, 1.0),
                             lr_scale=1.0 if shared_cycle else hyp_noise["stage_b_lr_scale"],
                             epoch_images=epoch_images, epoch_offset=hist_a.epoch[-1] if hist_a.epoch else 0.0,
                             val=val, desc="model2 B: relabelled")
        histories["B"] = hist_b.as_dict()
        final_probs = trainer.predict_proba(model, val[0])
        report["stages"]["B_posterior_relabel"] = {"val_accuracy": accuracy(final_probs, val[1])}
        final_posterior = noise.posterior_correction(final_probs, noisy_val, transition)
        correction["posterior_accuracy_after_B"] = accuracy(final_posterior, val[1])
    if len(split.val):
        correction["per_class_posterior_accuracy"] = per_class_accuracy(final_posterior, val[1], k)
        correction["per_class_noisy_label_accuracy"] = per_class_accuracy(one_hot(noisy_val, k), val[1], k)
    report.update(stage_report(histories, planned_steps=steps))
    report["validation"] = {"accuracy": accuracy(final_probs, val[1]), "n": int(len(split.val))}
    return model, report
