"""PNG plots and a Markdown summary written next to a training run's models."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(histories: dict, path: Path, *, title: str) -> Path:
    """Accuracy and loss per epoch (passes over the training images), train vs validation; a model's stages (e.g. A,
    B) carry on one epoch axis."""
    plt = _pyplot()
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
    for stage, h in histories.items():
        epochs = np.asarray(h["epoch"])
        label = "" if stage == "all" else f" ({stage})"
        ax_acc.plot(epochs, h["train_acc"], "o-", label=f"train, vs its targets{label}")
        ax_loss.plot(epochs, h["train_loss"], "o-", label=f"train{label}")
        if h["val_acc"]:
            ax_acc.plot(epochs, h["val_acc"], "s--", label=f"validation, clean labels{label}")
            ax_loss.plot(epochs, h["val_loss"], "s--", label=f"validation{label}")
    for ax, name in ((ax_acc, "accuracy"), (ax_loss, "cross-entropy loss")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_transition_matrix(transition: np.ndarray, path: Path, *, class_names, source: str) -> Path:
    """Heatmap of T[i, j] = P(noisy = j | true = i), values written in while they stay legible (K <= 20)."""
    plt = _pyplot()
    k = transition.shape[0]
    size = max(6.5, 0.35 * k)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(transition, cmap="viridis", vmin=0, vmax=max(0.5, float(transition.max())))
    ax.set_xticks(range(k), class_names, rotation=90 if k > 10 else 45, fontsize=7 if k > 10 else 9)
    ax.set_yticks(range(k), class_names, fontsize=7 if k > 10 else 9)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{transition[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if transition[i, j] > 0.3 else "white")
    ax.set_xlabel("noisy label")
    ax.set_ylabel("true (clean) label")
    ax.set_title("Noise transition P(noisy | true)\n" + source, fontsize=8)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)


def write_summary(run: dict, path: Path) -> Path:
    """report.md: validation accuracy, label correction and wall time per model."""
    lines = [f"# labelmend training run (seed {run['seed']})", "",
             f"Data: `{run['data_dir']}` — {run['n_images']} images, {run['n_clean']} with clean labels; "
             f"validation: {run['split']['n_val']} clean-labelled images held out of CNN training entirely "
             f"(the baseline, the client's recipe, fits all noisy labels).", "",
             "| model | validation accuracy | wall time (s) | steps done / planned | final learning rate |",
             "|---|---|---|---|---|"]
    cut = []
    for name, rec in run["models"].items():
        t = rec["training"]
        planned = t.get("planned_steps")
        lines.append(f"| {name} | {_fmt(rec['validation'].get('accuracy'))} | {rec['seconds']:.1f} | "
                     f"{t.get('steps', '—')} / {planned if planned is not None else '—'} | "
                     f"{_fmt(t.get('final_lr'))} |")
        if t.get("stopped_early"):
            cut.append(name)
    if cut:
        lines += ["", f"**The time budget cut {', '.join(cut)}** before the planned steps (this machine ran slower "
                      "than its calibration). The learning-rate schedule follows the budget actually left, so each "
                      "still annealed to zero at its deadline."]
    lines += _comparison_section(run.get("comparisons", []))
    if run.get("label_issues"):
        from labelmend.train.label_issues import summary_lines

        lines += ["", "## Which labels look wrong", "", *summary_lines(run["label_issues"], run["class_names"],
                                                                     markdown=True)]
    for name, rec in run["models"].items():
        lines += _noise_model_section(name, rec.get("training", {}), run)
    lines += ["", f"Total wall time: {run['total_seconds']:.1f} s (budget {run['time_budget_s']} s); "
                  f"peak memory (RSS) {run['peak_rss_mb']:.0f} MB.", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _comparison_section(comparisons: list[dict]) -> list[str]:
    """What weak supervision added on the validation images, with its paired standard error."""
    lines = []
    for c in comparisons:
        diff, se = 100 * c["difference"], 100 * c["standard_error"]
        lines += ["", f"## What weak supervision added: {c['model']} vs {c['versus']}", "",
                  f"On the {c['n']:,} validation images {c['model']} is {diff:+.1f} points ({c['versus']} wrong where "
                  f"{c['model']} is right: {c['b_only']:,} images; the reverse: {c['a_only']:,}; paired standard "
                  f"error {se:.1f} points)."]
        if diff < -2 * se:
            lines.append(f"**{c['versus']} is better here** (by more than two standard errors).")
        elif diff <= 2 * se:
            lines.append(f"**Not a clear gain** (within two standard errors). labelmend has measured this "
                         f"when the annotators' mistakes depend on the image (ambiguous images mislabelled, as "
                         f"human annotators err) rather than on the class alone: weak supervision then gains "
                         f"about a point or nothing at this budget, and {c['versus']} is "
                         f"as good a choice. More clean labels are what helped there: with a quarter of the "
                         f"training images clean-labelled, +1 to +3 points.")
        if c["n"] < 500:
            lines.append(f"Only {c['n']:,} validation images: a larger held-out share of the clean labels "
                         f"(`--val-fraction`) tells smaller differences from chance.")
    return lines


def _noise_model_section(name: str, t: dict, run: dict) -> list[str]:
    """The report lines on a model's noise transition matrix and label correction (none if it has neither)."""
    lines = []
    names = run.get("class_names") or [str(i) for i in range(len(t.get("transition_matrix", [])))]
    if "transition_source" in t:
        lines += ["", f"## Noise model ({name})", "", f"Transition matrix T: {t['transition_source']} "
                  f"(`transition_matrix_{name}.png`)."]
        if t.get("transition_error_vs_validation_pairs") is not None:
            lines.append(f"Mean L1 distance per row from T counted on the held-out images' own label pairs: "
                         f"{t['transition_error_vs_validation_pairs']:.3f}.")
        floor = run.get("trusted_warning_per_class", 50) * len(names)
        if t.get("n_trusted_pairs", 0) < floor:
            lines.append(f"**Warning:** {t.get('n_trusted_pairs', 0)} trusted training labels, fewer than "
                         f"{floor} ({floor // max(1, len(names))} per class): T is rough"
                         + (", and was estimated without any clean label" if t.get("n_trusted_pairs", 0) == 0
                            else "") + "; more clean labels give a more reliable noise model.")
    if "label_issues" in t:
        issues = t["label_issues"]
        lines.append(f"Confident learning flagged {issues['flagged_training_images']:,} of {issues['of']:,} training "
                     f"noisy labels as wrong; stage B left those images out."
                     + (f" Each label was judged by networks that had not trained on it ({issues['folds']} folds)."
                        if issues.get("folds", 1) > 1 else ""))
    if "label_correction" in t:
        lines += ["", f"## {name} label correction on the validation images (their noisy labels vs clean labels)", ""]
        per_class = {k: v for k, v in t["label_correction"].items() if k.startswith("per_class")}
        lines += [f"- {k}: {_fmt(v)}" for k, v in t["label_correction"].items() if k not in per_class]
        if per_class:
            lines += ["", "| class | noisy labels right | corrected labels right |", "|---|---|---|"]
            lines += [f"| {c} | {_fmt(a)} | {_fmt(b)} |" for c, a, b in zip(
                names, per_class["per_class_noisy_label_accuracy"], per_class["per_class_corrected_label_accuracy"])]
    if t.get("stages"):
        lines += ["", f"## {name} stages (validation accuracy)", ""]
        lines += [f"- {k}: {_fmt(v['val_accuracy'])}" for k, v in t["stages"].items()]
    return lines
