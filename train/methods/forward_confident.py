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

Stage B's confident learning beat two variants measured on the same grid (bench/LOG.md, "Confident learning in Model
II's second stage"): every noisy image on its posterior soft label P(y | x, ỹ), and a fresh learning-rate cycle for
stage B; they live in git history. At full scale (BENCHMARKS.md, "Model II's judgment at full scale") nothing that
trains on the flagged images beat leaving them out: their suggested label where stage A is ≥ 90 % sure of it tied;
stage A's soft posterior P(y | x, ỹ) for all of them, or the network's own posterior at each step (an EM step per
visit), scored lower. Cross-fitting stage A at that scale (``folds`` networks on half the noisy images and half the
steps each) judged worse and scored lower still, and so it did at 25.6 and 41 epochs, hence ``cross_fit_epochs``. A
judge that never fitted a noisy label (stage A on the trusted images alone) judged a little better and scored no
higher, and seeing the trusted images once per epoch in stage B instead of ``clean_repeat`` times tied: the evidence
points to steps, not labels, as what Model II lacks there. Stage A takes half of the steps, not 60 %: at full scale
the shorter stage A scored higher on every seed, at 1,600 steps and at the 4,800 of a default run on a bfloat16 host,
where it also judged better (its stage A had saturated); on the annotator-noise grid, where an older network had
scored lower with it, today's ties.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from labelmend.train import budget, noise
from labelmend.train.cnn import one_hot
from labelmend.train.inputs import TrainingTargets
from labelmend.train.loop import Trainer, cross_entropy
from labelmend.train.task import Task, accuracy, per_class_accuracy, stage_report, validation_report

HYP = {
    "stage_a_frac": 0.5,     # share of Model II's steps (and learning-rate cycle) spent on stage A
    "prior_strength": 5.0,   # pseudo-pairs per row of T's Dirichlet prior (centred on symmetric noise at the
                             # pooled agreement rate): 800 pairs per row barely feel it, 20 per row are shrunk 20 %
    "min_trusted_per_class": 10,  # fewer trusted training pairs than this × K: T is estimated from the data instead
    "cross_fit_epochs": 60,  # from this many planned epochs on, stage A trains `folds` networks, each on its own
    "folds": 2,              # share of the noisy images, so every noisy label is judged by a network that never saw
                             # it; below, one network judges its own training labels. A network that trains for many
                             # epochs memorises the wrong labels and no longer flags them; in a few epochs it has not,
                             # and in-sample flags win (bench/LOG.md, out-of-sample flagging). Between the measured
                             # ends: on the client's 48,000 images in-sample flags still won at 41 epochs, on
                             # 8,000-image sets cross-fitting won at 90 (BENCHMARKS.md, the epoch switch)
    "clean_repeat": 3,       # times each clean-labelled training image appears per epoch (a clean label carries
                             # ~3.3 bits, a 40 %-correct noisy one ~0.45 bits: 8k clean outweigh 40k noisy)
}


def counts_transition(n_trusted: int, n_classes: int, hyp_noise: dict = HYP) -> bool:
    """Whether T is counted from the trusted pairs (enough of them) or estimated from the data alone."""
    return n_trusted >= hyp_noise["min_trusted_per_class"] * n_classes


def forward_corrected_cross_entropy(transition: np.ndarray):
    """Stage A's loss (Patrini et al. 2017, eq. 6): where ``forward`` is True the target (a noisy label) is matched
    by softmax(logits) @ T, the predicted distribution of the *noisy* label; elsewhere by softmax(logits)."""
    import tensorflow as tf

    T = tf.constant(transition, tf.float32)

    def loss(logits, target, forward):
        p = tf.nn.softmax(logits)
        q = tf.where(forward[:, None], tf.matmul(p, T), p)
        return -tf.reduce_sum(target * tf.math.log(q + 1e-7), axis=1)

    return loss


def flag_noisy_labels(probs: np.ndarray, noisy: np.ndarray, transition: np.ndarray | None, *,
                      is_trusted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confident learning on stage A's probabilities ``probs`` (N, K) — P(y | x) where ``transition`` is given,
    else P(ỹ | x). Returns (flagged (N,) bool: a noisy label confidently of another class, never a trusted one;
    corrected (N,) ints: the confident class where flagged, the noisy label elsewhere; confident (N,) ints: the
    class each image is confidently of, -1 where none)."""
    noisy_probs = noise.forward_corrected(probs, transition) if transition is not None else probs
    confident, _ = noise.confident_labels(noisy_probs, noisy)
    flagged = (confident >= 0) & (confident != noisy) & ~is_trusted
    return flagged, np.where(flagged, confident, noisy), confident


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
    a_frac = hyp_noise["stage_a_frac"]
    epochs = steps * trainer.batch_size / max(1, len(task.train))
    folds = hyp_noise["folds"] if epochs >= hyp_noise["cross_fit_epochs"] else 1
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
                           steps=max(1, int(round(steps * share))), name=name, cycle=(0.0, a_frac),
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

    flagged, corrected, confident = flag_noisy_labels(probs, noisy, transition, is_trusted=is_clean)
    if not trusted_pairs:  # T for the report and the review queue, from the (confident, noisy) label pairs
        sure = task.train[confident[task.train] >= 0]
        transition = noise.estimate_transition_matrix(confident[sure], noisy[sure], n_classes=k,
                                                      prior_strength=hyp_noise["prior_strength"])
        report["transition_source"] = (f"estimated without trusted pairs ({n_trusted} < "
                                       f"{hyp_noise['min_trusted_per_class']} per class): counted from the confident "
                                       "labels of a network trained on the noisy labels (confident learning, "
                                       "Northcutt et al. 2021)")
    report["transition_matrix"] = transition.tolist()
    if len(split.val) and len(np.unique(val[1])) == k:  # T vs the noise of the held-out pairs (never used)
        counted = noise.estimate_transition_matrix(val[1], noisy_val, n_classes=k, prior_strength=0.0)
        report["transition_error_vs_validation_pairs"] = float(np.mean(np.abs(counted - transition).sum(axis=1)))

    # Stage B: the trusted labels + the noisy labels confident learning did not flag, from stage A's weights, on the
    # rest of its learning-rate cycle, the planned steps stage A did not use and the time left until the deadline.
    correction = report["label_correction"] = {
        "noisy_label_accuracy": float(np.mean(noisy_val == val[1])) if len(noisy_val) else None,
        "classifier_accuracy": accuracy(probs[split.val], val[1]),
        "corrected_label_accuracy": accuracy(one_hot(corrected[split.val], k), val[1]), "n": int(len(split.val))}
    final_probs, steps_b = fold_probs[0][split.val], steps - steps_a
    if steps_b > 0:
        keep = ~flagged[rows]
        rows_b = rows[keep] if keep.any() else rows  # all flagged happens on tiny data only
        targets_b = one_hot(noisy, k, smoothing=smoothing)
        targets_b[is_clean] = targets[is_clean]
        hist_b = trainer.fit(model, TrainingTargets(images[rows_b], targets_b[rows_b], np.zeros(len(rows_b), bool)),
                             steps=steps_b, name="B", seed_offset=1, cycle=(a_frac, 1.0), epoch_images=epoch_images,
                             epoch_offset=epochs_done, val=val, desc="model2 B: confident learning")
        histories["B"] = hist_b.as_dict()
        final_probs = trainer.predict_proba(model, val[0])
        report["stages"]["B_confident_learning"] = {"val_accuracy": accuracy(final_probs, val[1])}
    report["label_issues"] = {"flagged_training_images": int(flagged[task.train].sum()), "of": len(noisy_train),
                              "folds": folds}
    if len(split.val):  # how clean the labels stage B keeps are, on held-out images
        kept = ~flagged[split.val]
        correction["kept_fraction"] = float(np.mean(kept))
        correction["kept_label_accuracy"] = float(np.mean(noisy_val[kept] == val[1][kept])) if kept.any() else None
        correction["per_class_corrected_label_accuracy"] = per_class_accuracy(one_hot(corrected[split.val], k),
                                                                              val[1], k)
        correction["per_class_noisy_label_accuracy"] = per_class_accuracy(one_hot(noisy_val, k), val[1], k)
    report.update(stage_report(histories, planned_steps=steps))
    report["validation"] = validation_report(final_probs, val[1])
    return model, report


def report_section(name: str, report: dict, run, reports_dir: Path) -> list[str]:
    """report.md's lines on Model II's noise model, the labels stage B left out, label correction on the validation
    images and the stages; draws T as ``transition_matrix_<name>.png`` in ``reports_dir``."""
    from labelmend.train.reports import fmt

    from labelmend.plots import heatmap

    names, t = list(run.class_names), np.asarray(report["transition_matrix"])
    png = f"transition_matrix_{name}.png"
    heatmap(t, reports_dir / png, class_names=names, xlabel="noisy label", ylabel="true (clean) label",
            title="Noise transition P(noisy | true)\n" + report["transition_source"], cmap="viridis",
            vmax=max(0.5, float(t.max())), title_size=8)
    lines = ["", f"## Noise model ({name})", "", f"Transition matrix T: {report['transition_source']} (`{png}`)."]
    if report.get("transition_error_vs_validation_pairs") is not None:
        lines.append(f"Mean L1 distance per row from T counted on the held-out images' own label pairs: "
                     f"{report['transition_error_vs_validation_pairs']:.3f}.")
    n_pairs, floor = report["n_trusted_pairs"], run.trusted_warning_per_class * len(names)
    if n_pairs < floor:
        lines.append(f"**Warning:** {n_pairs} trusted training labels, fewer than {floor} "
                     f"({run.trusted_warning_per_class} per class): T is rough"
                     + (", and was estimated without any clean label" if n_pairs == 0 else "")
                     + "; more clean labels give a more reliable noise model.")
    issues = report["label_issues"]
    lines.append(f"Confident learning flagged {issues['flagged_training_images']:,} of {issues['of']:,} training "
                 f"noisy labels as wrong; stage B left those images out."
                 + (f" Each label was judged by networks that had not trained on it ({issues['folds']} folds)."
                    if issues["folds"] > 1 else ""))
    correction = report["label_correction"]
    per_class = {k: v for k, v in correction.items() if k.startswith("per_class")}
    lines += ["", f"## {name} label correction on the validation images (their noisy labels vs clean labels)", ""]
    lines += [f"- {k}: {fmt(v)}" for k, v in correction.items() if k not in per_class]
    if per_class:
        lines += ["", "| class | noisy labels right | corrected labels right |", "|---|---|---|"]
        lines += [f"| {c} | {fmt(a)} | {fmt(b)} |" for c, a, b in zip(
            names, per_class["per_class_noisy_label_accuracy"], per_class["per_class_corrected_label_accuracy"])]
    lines += ["", f"## {name} stages (validation accuracy)", ""]
    lines += [f"- {k}: {fmt(v['val_accuracy'])}" for k, v in report["stages"].items()]
    return lines
