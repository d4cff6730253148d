"""report.md and the training curves of a run: what every run shares; each method renders its own section
(:meth:`labelmend.registry.Method.report_section`), so this module knows no method's keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labelmend import registry
from labelmend.plots import pyplot
from labelmend.run_format import RunRecord
from labelmend.runtime.images import CONVERSIONS


def plot_training_curves(histories: dict, path: Path, *, title: str) -> Path:
    """Accuracy and loss per epoch (passes over the training images), train vs validation; a model's stages (e.g. A,
    B) carry on one epoch axis."""
    plt = pyplot()
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


def fmt(x) -> str:
    """A figure for a report: 4 decimals, — for None."""
    return "—" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)


def write_summary(run: RunRecord, path: Path) -> Path:
    """report.md: validation accuracy and wall time per model, what weak supervision added, which labels look wrong,
    then each method's own section (PNGs it draws land beside ``path``)."""
    lines = [f"# labelmend training run (seed {run.seed})", "",
             f"Data: `{run.data_dir}` ({run.data_layout.replace('_', ' ')} layout) — {run.n_images} images, "
             f"{run.n_clean} with clean labels"
             + "".join(f", {v['count']} {CONVERSIONS[k]}" for k, v in run.image_conversions.items()) + "; "
             f"validation: {run.split['n_val']} clean-labelled images held out of CNN training entirely "
             f"(the baseline, the client's recipe, fits all noisy labels).", "",
             "| model | validation accuracy | 95 % interval (images) | wall time (s) | steps done / planned | "
             "final learning rate |",
             "|---|---|---|---|---|---|"]
    cut = []
    for name, rec in run.models.items():
        t = rec.training
        planned = t.get("planned_steps")
        lines.append(f"| {name} | {fmt(rec.validation.get('accuracy'))} | {_interval(rec.validation)} | "
                     f"{rec.seconds:.1f} | "
                     f"{t.get('steps', '—')} / {planned if planned is not None else '—'} | "
                     f"{fmt(t.get('final_lr'))} |")
        if t.get("stopped_early"):
            cut.append(name)
    if run.validation_chose_defaults:
        lines += ["", "**These validation images are the ones labelmend's defaults were chosen on** (this data with "
                      "seed 0's split): after many choices made on the same images their accuracy reads high, and "
                      "the model's accuracy on new images is expected below it. Another `--seed` validates on "
                      "images no choice was made on."]
    if cut:
        lines += ["", f"**The time budget cut {', '.join(cut)}** before the planned steps (this machine ran slower "
                      "than its calibration). The learning-rate schedule follows the budget actually left, so each "
                      "still annealed to zero at its deadline."]
    lines += _comparison_section(run.comparisons)
    if run.label_issues:
        from labelmend.train.label_issues import summary_lines

        lines += ["", "## Which labels look wrong", "", *summary_lines(run.label_issues, run.class_names,
                                                                     markdown=True)]
    for name, rec in run.models.items():
        if name in registry.METHODS:
            lines += registry.METHODS[name].report_section(name, rec.training, run, path.parent)
    lines += ["", f"Total wall time: {run.total_seconds:.1f} s (budget {run.time_budget_s} s); "
                  f"peak memory (RSS) {run.peak_rss_mb:.0f} MB.", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _interval(validation: dict) -> str:
    """A validation accuracy's 95 % interval and the images it rests on ("—" without validation images)."""
    from labelmend.train.task import accuracy_interval

    acc, n = validation.get("accuracy"), validation.get("n")
    if acc is None or not n:
        return "—"
    lo, hi = accuracy_interval(acc, n)
    return f"{lo:.3f}–{hi:.3f} ({n:,})"


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
