"""Model II: forward correction, then confident learning — clean labels + the noisy labels that survive a check.

Notation as in :mod:`labelmend.train.noise`: T[i, j] = P(ỹ = j | y = i). The stages share the model's steps and time
(``HYP``) and one learning-rate cycle (warm-up, then anneal to zero):

A. **Forward correction** (``stage_a_frac`` of the cycle). Clean-labelled training images fit their clean label;
   every other image fits its noisy label through T (Patrini et al. 2017, eq. 6), so the network learns P(y | x)
   although most of those labels are wrong. T is counted from the trusted (clean, noisy) pairs when there are at
   least ``min_trusted_per_class`` per class; with fewer (or none) no T can be counted, and stage A fits the noisy
   labels as they are: the network then learns P(ỹ | x). A network flags few of the wrong labels it has
   memorised, so when the budget buys many epochs (``cross_fit_epochs``) stage A trains ``folds`` networks,
   each on its own share of the noisy images (and on every clean one), and in B each noisy label is judged by the
   networks that never trained on it (cross-validated, as cleanlab does). The first network goes on to stage B.
B. **Confident learning, then training on what it keeps** (the rest of the cycle). A classifier
   of the *noisy* label — stage A's P(y | x) · T, or stage A's network itself when there is no T — gives each class a
   threshold, the mean probability of that class over the images labelled with it (Northcutt et al. 2021). A noisy
   label whose image is confidently of another class is flagged as wrong and the image is left out; training goes
   on with the clean labels and the noisy labels that were kept (~9 in 10 of them right on the client's data).
   Without trusted pairs, T is counted from the (confident, noisy) label pairs, for the report.

``with_pairs`` / ``without_pairs`` select stage B's labels for the ablation rows of BENCHMARKS.md: "confident_learning"
(above) or "posterior" (every noisy image trains on the soft label P(y | x, ỹ) ∝ P(y | x) · T[y, ỹ]; without trusted
pairs T then comes from anchor points, Patrini et al. 2017, §3.1). Confident learning won by 1.7 points with the
client's trusted labels and without any (BENCHMARKS.md, confident learning in stage B).
"""

from __future__ import annotations

import numpy as np
from labelmend.train import budget, noise
from labelmend.train.cnn import one_hot
from labelmend.train.inputs import TrainingTargets
from labelmend.train.loop import Trainer, cross_entropy, forward_corrected_cross_entropy
from labelmend.train.task import Task, accuracy, per_class_accuracy, stage_report, validation_report

STAGE_B_LABELS = ("confident_learning", "posterior")

HYP = {
    "stage_a_frac": 0.6,     # share of Model II's steps (and learning-rate cycle) spent on stage A
    "with_pairs": "confident_learning",  # stage B's labels with trusted pairs (module docstring)
    "without_pairs": "confident_learning",  # ... and without
    "stage_b_continues": True,  # stage B continues stage A's learning-rate cycle (one cycle in all) instead of a
                                # fresh cycle at stage_b_lr_scale: one annealing won (BENCHMARKS.md)
    "stage_b_lr_scale": 0.5,  # stage B's peak learning rate relative to HYP["opt"]["lr"] when it does not continue
    "prior_strength": 5.0,   # pseudo-pairs per row of T's Dirichlet prior (centred on symmetric noise at the
                             # pooled agreement rate): 800 pairs per row barely feel it, 20 per row are shrunk 20 %
    "min_trusted_per_class": 10,  # fewer trusted training pairs than this × K: T is estimated from the data instead
    "anchor_quantile": 0.97,  # "posterior" without pairs: anchor of class i = the image at this quantile of P(ỹ=i|x)
    "cross_fit_epochs": 40,  # from this many planned epochs on, stage A trains `folds` networks, each on its own
    "folds": 2,              # share of the noisy images, so every noisy label is judged by a network that never saw
                             # it; below, one network judges its own training labels. A network that trains for many
                             # epochs memorises the wrong labels and no longer flags them; in a few epochs it has not,
                             # and in-sample flags win (BENCHMARKS.md, out-of-sample flagging)
    "cross_fit_with_pairs": True,  # cross-fit with trusted pairs too (out-of-sample flags matter with pairs too)
    "clean_repeat": 3,       # times each clean-labelled training image appears per epoch (a clean label carries
                             # ~3.3 bits, a 40 %-correct noisy one ~0.45 bits: 8k clean outweigh 40k noisy)
}


def counts_transition(n_trusted: int, n_classes: int, hyp_noise: dict = HYP) -> bool:
    """Whether T is counted from the trusted pairs (enough of them) or estimated from the data alone."""
    return n_trusted >= hyp_noise["min_trusted_per_class"] * n_classes


def _check_stage_b_labels(kind: str) -> None:
    if kind not in STAGE_B_LABELS:
        raise ValueError(f"unknown stage B labels {kind!r}: {' or '.join(STAGE_B_LABELS)}")


def relabel(kind: str, probs: np.ndarray, noisy: np.ndarray, transition: np.ndarray | None, *,
            is_clean: np.ndarray, smoothing: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stage B's labels from the network's probabilities ``probs`` (N, K) — P(y | x) where ``transition`` is given,
    else P(ỹ | x). Returns (targets (N, K), keep (N,) bool, corrected (N, K): the label distribution the method
    believes, scored against clean labels in the report)."""
    k = probs.shape[1]
    if kind == "posterior":
        corrected = noise.posterior_correction(probs, noisy, transition)
        return (1 - smoothing) * corrected + smoothing / k, np.ones(len(noisy), bool), corrected
    _check_stage_b_labels(kind)
    noisy_probs = noise.forward_corrected(probs, transition) if transition is not None else probs
    confident, _ = noise.confident_labels(noisy_probs, noisy)
    flagged = (confident >= 0) & (confident != noisy) & ~is_clean
    return one_hot(noisy, k, smoothing=smoothing), ~flagged, one_hot(np.where(flagged, confident, noisy), k)


def out_of_fold(fold_probs: list[np.ndarray], fold: np.ndarray) -> np.ndarray:
    """Each image's probabilities from the networks that did not train on it: for ``fold[i]`` = f ≥ 0 the mean of
    every network but f's, for images in no fold (clean, validation; -1) the mean of all. One network: its own."""
    if len(fold_probs) == 1:
        return fold_probs[0]
    probs = np.mean(fold_probs, axis=0)
    for f in range(len(fold_probs)):
        probs[fold == f] = np.mean([p[fold == f] for g, p in enumerate(fold_probs) if g != f], axis=0)
    return probs


def train(task: Task, trainer: Trainer, *, steps: int, hyp_noise: dict = HYP):
    """Model II (module docstring). Returns (model, report with T and each stage's validation numbers)."""
    images, noisy, split, k = task.images, task.noisy_labels, task.split, task.n_classes
    smoothing = trainer.hyp["opt"]["label_smoothing"]
    n_trusted = len(split.train_clean)
    trusted_pairs = counts_transition(n_trusted, k, hyp_noise)
    kind = hyp_noise["with_pairs" if trusted_pairs else "without_pairs"]
    _check_stage_b_labels(kind)  # before stage A spends its steps, not after
    clean_train = task.clean_labels[split.train_clean]
    # trusted = clean-labelled (a random sample: it also counts T) or verified (chosen by a review queue: it only
    # trains, so the queue's choice cannot bias T or the validation figures)
    is_clean = np.zeros(len(images), bool)
    is_clean[split.train_clean] = True
    is_clean[task.verified_index] = True
    # every training image once, the trusted ones clean_repeat times; an epoch is still one pass over the
    # training images (epoch_images), so Model I's and Model II's curves share their x-axis
    rows = np.concatenate([task.train] + [np.flatnonzero(is_clean)] * (hyp_noise["clean_repeat"] - 1))
    epoch_images = len(task.train)
    val, noisy_val = task.val, noisy[split.val]
    report = {"n_trusted_pairs": int(n_trusted), "n_verified_labels": int(len(task.verified_index)), "stages": {}}
    model = trainer.model(k, images[task.train])
    targets = one_hot(noisy, k)
    targets[split.train_clean] = one_hot(clean_train, k, smoothing=smoothing)
    targets[task.verified_index] = one_hot(task.verified_labels, k, smoothing=smoothing)
    transition = None
    if trusted_pairs:
        transition = noise.estimate_transition_matrix(clean_train, noisy[split.train_clean], n_classes=k,
                                                      prior_strength=hyp_noise["prior_strength"])
        report["transition_source"] = (f"counted from {n_trusted} trusted (clean, noisy) label pairs, Dirichlet prior "
                                       f"of {hyp_noise['prior_strength']:g} pseudo-pairs per row")

    # Stage A: clean labels direct; noisy labels through T when T is known (forward correction), else as they are.
    # It gets stage_a_frac of the steps, of the time and of the learning-rate cycle, split between `folds`
    # networks; each trains on its fold of the noisy images and on every clean one. The first goes on to stage B.
    a_frac, shared_cycle = hyp_noise["stage_a_frac"], hyp_noise["stage_b_continues"]
    epochs = steps * trainer.batch_size / max(1, len(task.train))
    cross_fit = epochs >= hyp_noise["cross_fit_epochs"] and (hyp_noise["cross_fit_with_pairs"] or not trusted_pairs)
    folds = hyp_noise["folds"] if cross_fit else 1
    fold = np.full(len(images), -1)
    noisy_train = task.train[~is_clean[task.train]]
    fold[noisy_train] = np.random.default_rng(trainer.seed).permutation(len(noisy_train)) % folds
    histories, fold_probs, epochs_done = {}, [], 0.0
    for f in range(folds):
        net = model if f == 0 else trainer.model(k, images[task.train])
        rows_f = rows[(fold[rows] == f) | is_clean[rows]]
        forward = ~is_clean[rows_f] if trusted_pairs else np.zeros(len(rows_f), bool)
        share = a_frac / folds  # of the whole budget; slot() takes a share of the time still left
        name = "A" if f == 0 else f"A{f + 1}"
        hist = trainer.fit(net, TrainingTargets(images[rows_f], targets[rows_f], forward),
                           steps=max(1, int(round(steps * share))), name=name,
                           cycle=(0.0, a_frac) if shared_cycle else (0.0, 1.0),
                           loss=forward_corrected_cross_entropy(transition) if trusted_pairs else cross_entropy,
                           deadline=budget.slot(trainer.deadline, share / (1 - f * share)),
                           epoch_images=epoch_images, epoch_offset=epochs_done, val=val, seed_offset=2 * f,
                           desc=(f"model2 A{f + 1}/{folds}: " if folds > 1 else "model2 A: ")
                           + ("forward correction" if trusted_pairs else "noisy labels"))
        histories[name] = hist.as_dict()
        epochs_done = (hist.epoch or [epochs_done])[-1]  # the stages follow one another on the epoch axis
        fold_probs.append(trainer.predict_proba(net, images))
    probs = out_of_fold(fold_probs, fold)
    steps_a = sum(h["steps"] for h in histories.values())
    report["stages"]["A_forward_correction" if trusted_pairs else "A_noisy_labels"] = {
        "val_accuracy": accuracy(fold_probs[0][split.val], val[1])}

    if not trusted_pairs:  # T from the data alone
        source = f"estimated without trusted pairs ({n_trusted} < {hyp_noise['min_trusted_per_class']} per class): "
        if kind == "posterior":  # rows of P(ỹ | x) at images surely of one class are rows of T
            transition = noise.estimate_transition_from_probs(probs[task.train],
                                                              quantile=hyp_noise["anchor_quantile"])
            report["transition_source"] = source + ("anchor points of a network trained on the noisy labels "
                                                    "(Patrini et al. 2017)")
        else:
            confident, _ = noise.confident_labels(probs, noisy)
            sure = task.train[confident[task.train] >= 0]
            transition = noise.estimate_transition_matrix(confident[sure], noisy[sure], n_classes=k,
                                                          prior_strength=hyp_noise["prior_strength"])
            report["transition_source"] = source + ("counted from the confident labels of a network trained on "
                                                    "the noisy labels (confident learning, Northcutt et al. 2021)")
    report["transition_matrix"] = transition.tolist()
    if len(split.val) and len(np.unique(val[1])) == k:  # T vs the noise of the held-out pairs (never used)
        counted = noise.estimate_transition_matrix(val[1], noisy_val, n_classes=k, prior_strength=0.0)
        report["transition_error_vs_validation_pairs"] = float(np.mean(np.abs(counted - transition).sum(axis=1)))

    # Stage B: clean labels + the labels relabel() gives, from stage A's weights, on the rest of its learning-rate
    # cycle (or, with stage_b_continues off, a fresh cycle at stage_b_lr_scale), the planned steps stage A did not
    # use and the time left until the model's deadline. Without T the network predicts ỹ: CL's classifier as it is.
    soft, keep, corrected = relabel(kind, probs, noisy, transition if trusted_pairs or kind == "posterior" else None,
                                    is_clean=is_clean, smoothing=smoothing)
    correction = report["label_correction"] = {
        "noisy_label_accuracy": float(np.mean(noisy_val == val[1])) if len(noisy_val) else None,
        "classifier_accuracy": accuracy(probs[split.val], val[1]),
        "corrected_label_accuracy": accuracy(corrected[split.val], val[1]), "n": int(len(split.val))}
    final_probs, steps_b = fold_probs[0][split.val], steps - steps_a
    if steps_b > 0:
        rows_b = rows[keep[rows]] if keep[rows].any() else rows  # all flagged happens on tiny data only
        soft[is_clean] = targets[is_clean]
        hist_b = trainer.fit(model, TrainingTargets(images[rows_b], soft[rows_b].astype(np.float32),
                                                    np.zeros(len(rows_b), bool)),
                             steps=steps_b, name="B", seed_offset=1,
                             cycle=(a_frac, 1.0) if shared_cycle else (0.0, 1.0),
                             lr_scale=1.0 if shared_cycle else hyp_noise["stage_b_lr_scale"],
                             epoch_images=epoch_images, epoch_offset=epochs_done,
                             val=val, desc=f"model2 B: {kind}")
        histories["B"] = hist_b.as_dict()
        final_probs = trainer.predict_proba(model, val[0])
        report["stages"][f"B_{kind}"] = {"val_accuracy": accuracy(final_probs, val[1])}
    if kind != "posterior":
        report["label_issues"] = {"flagged_training_images": int((~keep[task.train]).sum()),
                                  "of": len(noisy_train), "stage_b": kind, "folds": folds}
        if len(split.val):  # how clean the labels stage B keeps are, on held-out images
            kept = keep[split.val]
            correction["kept_fraction"] = float(np.mean(kept))
            correction["kept_label_accuracy"] = (float(np.mean(noisy_val[kept] == val[1][kept])) if kept.any()
                                                 else None)
    if len(split.val):
        correction["per_class_corrected_label_accuracy"] = per_class_accuracy(corrected[split.val], val[1], k)
        correction["per_class_noisy_label_accuracy"] = per_class_accuracy(one_hot(noisy_val, k), val[1], k)
    report.update(stage_report(histories, planned_steps=steps))
    report["validation"] = validation_report(final_probs, val[1])
    return model, report
