"""Which labels look wrong, and what they should be: one network's probabilities turned into cleanlab-style outputs.

Notation: N images, K classes. ``pred_probs`` (N, K) is the judging network's P(y | x) for every image (the
method's final network; see :func:`judge`), ``given`` (N,) the noisy labels, ``trusted`` (N,) a label known to be
right (from clean_labels.csv or verified_labels.csv) or -1, T (K, K) the noise model, T[i, j] = P(ỹ = j | y = i).

The verdict on image n:

- a trusted label decides: ``is_label_issue`` = given ≠ trusted, ``suggested_label`` = trusted, ``label_quality``
  1 or 0;
- otherwise the network does: ``suggested_label`` = argmax P(y | x), ``is_label_issue`` = suggested ≠ given (the
  rule that found the client's wrong labels best, ahead of cleanlab's ``find_label_issues`` on the same
  probabilities), ``label_quality`` = P(y = given | x), cleanlab's "self-confidence": in [0, 1], **low = suspect**.

How good the network's verdicts are is measured on the validation images only: their clean labels were held out
of every network's training (and so were their noisy labels), and they are a random sample of the trusted set,
unlike verified labels, which a review queue chose (:func:`flag_quality`).

The review queue ranks the images without a trusted label by ``review_score`` = −log P(y = given | x) − H(P(y | x))
(nats; the given label's cross-entropy minus the prediction's entropy, as in "active label cleaning", Bernhardt et
al. 2022): **clear mistakes first**, labels the network finds unlikely on images it is sure of. Nearly every one is a
wrong label, the network's suggestion is mostly right (so a person checks it fast), and they spread over the classes
like the data. On the annotator-noise grid, retraining with this order's top images did better than with the top of
the order it replaced (the chance that the label labelmend would use is still wrong, which picks ambiguous images)
and as well as with random images (BENCHMARKS.md, "What checking labels buys").
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labelmend.folders import NUMBERED

LABEL_ISSUES_CSV = "label_issues.csv"
CORRECTED_LABELS_CSV = "corrected_labels.csv"
PRED_PROBS_NPY = "pred_probs.npy"
REVIEW_QUEUE_CSV = "review_queue.csv"
GALLERY_PNG = "label_issues_gallery.png"  # under the run's reports/
GALLERY_TOP = 8        # images per class in the gallery a run writes (`labelmend issues --top N` redraws it)
CONFUSED_PAIRS = 10    # (given → suggested) pairs listed in the report
LABEL_ISSUE_COLUMNS = ("image", "given_label", "suggested_label", "label_quality", "is_label_issue",
                       "predicted_label", "trusted_label", "out_of_sample", "judged_by")
REVIEW_QUEUE_COLUMNS = ("image", "given_label", "suggested_label", "review_score", "label_quality",
                        "is_label_issue")


@dataclass
class LabelJudgment:
    """The verdict on every label (module docstring). All arrays have N rows; labels are class indices."""

    given: np.ndarray           # (N,) the noisy labels
    predicted: np.ndarray       # (N,) the judging network's class
    suggested: np.ndarray       # (N,) trusted label where known, else the network's class
    label_quality: np.ndarray   # (N,) in [0, 1], low = suspect
    is_label_issue: np.ndarray  # (N,) bool
    trusted: np.ndarray         # (N,) trusted label or -1
    trusted_source: np.ndarray  # (N,) str: "clean_labels.csv", "verified_labels.csv" or ""
    out_of_sample: np.ndarray   # (N,) bool: no network trained on the image
    review_score: np.ndarray    # (N,) review priority, high = check first; -inf where the label is trusted

    @property
    def judged_by_network(self) -> np.ndarray:
        return self.trusted < 0


def judge(pred_probs: np.ndarray, given: np.ndarray, *, trusted: np.ndarray, trusted_source: np.ndarray,
          out_of_sample: np.ndarray) -> LabelJudgment:
    """The verdict on every label from ``pred_probs`` (N, K) (module docstring)."""
    probs = np.asarray(pred_probs, dtype=np.float64)
    given = np.asarray(given, dtype=np.int64)
    if probs.ndim != 2 or probs.shape[0] != len(given):
        raise ValueError(f"pred_probs must have shape ({len(given)}, K), got {probs.shape}")
    if not np.all(np.isfinite(probs)):
        raise ValueError("pred_probs holds NaN or infinite values")
    rows = np.arange(len(given))
    predicted = probs.argmax(axis=1)
    known = trusted >= 0
    suggested = np.where(known, trusted, predicted)
    quality = np.where(known, (given == trusted).astype(np.float64), probs[rows, given])
    issue = np.where(known, given != trusted, predicted != given)
    p = np.clip(probs, 1e-12, 1.0)  # a probability the network rounded to 0 gives a finite score
    score = np.where(known, -np.inf, -np.log(p[rows, given]) + np.sum(p * np.log(p), axis=1))
    return LabelJudgment(given=given, predicted=predicted, suggested=suggested,
                         label_quality=np.clip(quality, 0.0, 1.0), is_label_issue=issue.astype(bool),
                         trusted=np.asarray(trusted, dtype=np.int64), trusted_source=np.asarray(trusted_source),
                         out_of_sample=np.asarray(out_of_sample, dtype=bool),
                         review_score=score)


def flag_quality(given: np.ndarray, predicted: np.ndarray, true: np.ndarray) -> dict:
    """How well "predicted ≠ given" finds the wrong labels among images whose ``true`` label is known and whose
    labels no network trained on: precision, recall and F1 of the flags, and how often the suggested (predicted)
    label is right where the given one is wrong. ``n`` is the count they rest on; None where undefined."""
    given, predicted, true = (np.asarray(a, dtype=np.int64) for a in (given, predicted, true))
    wrong, flagged = given != true, predicted != given
    hits = int(np.sum(flagged & wrong))

    def ratio(a, b):
        return float(a / b) if b else None

    precision, recall = ratio(hits, flagged.sum()), ratio(hits, wrong.sum())
    f1 = (2 * precision * recall / (precision + recall) if precision and recall else
          0.0 if precision is not None and recall is not None else None)
    corrected = np.where(flagged, predicted, given)
    return {"n": int(len(true)), "n_wrong_labels": int(wrong.sum()), "n_flagged": int(flagged.sum()),
            "precision": precision, "recall": recall, "f1": f1,
            "given_label_accuracy": ratio(int(np.sum(~wrong)), len(true)),
            "corrected_label_accuracy": ratio(int(np.sum(corrected == true)), len(true)),
            "suggested_right_where_given_wrong": ratio(int(np.sum(predicted[wrong] == true[wrong])), wrong.sum())}


def class_health(j: LabelJudgment, *, n_classes: int, transition: np.ndarray | None, pred_probs: np.ndarray) -> list:
    """Per class c (as a given label): images labelled c, the share of them the network flags, the share wrong
    according to T, P(y ≠ c | ỹ = c) with the class prior P(y) from the mean of ``pred_probs``, and the share
    wrong among those with a trusted label (with its count)."""
    by_net = j.judged_by_network
    prior = np.asarray(pred_probs, dtype=np.float64).mean(axis=0)
    rows = []
    for c in range(n_classes):
        labelled = j.given == c
        judged, trusted = labelled & by_net, labelled & ~by_net
        wrong_per_t = None
        if transition is not None:
            mass = float(transition[:, c] @ prior)
            wrong_per_t = 1.0 - transition[c, c] * prior[c] / mass if mass > 0 else None
        rows.append({"class": c, "n_labelled": int(labelled.sum()),
                     "flagged_share": float(j.is_label_issue[judged].mean()) if judged.any() else None,
                     "wrong_share_from_T": wrong_per_t,
                     "wrong_share_trusted": float(j.is_label_issue[trusted].mean()) if trusted.any() else None,
                     "n_trusted": int(trusted.sum())})
    return rows


def confused_pairs(j: LabelJudgment, *, top: int = CONFUSED_PAIRS) -> list[dict]:
    """The most frequent (given → suggested) pairs among the labels the network flags."""
    flagged = j.is_label_issue & j.judged_by_network
    pairs, counts = np.unique(np.stack([j.given[flagged], j.suggested[flagged]], axis=1), axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    return [{"given": int(pairs[i, 0]), "suggested": int(pairs[i, 1]), "count": int(counts[i])} for i in order]


def duplicate_conflicts(images: np.ndarray, given: np.ndarray) -> list[list[int]]:
    """Groups of byte-identical images whose given labels differ (image indices, ascending)."""
    groups: dict[bytes, list[int]] = {}
    for i, image in enumerate(np.ascontiguousarray(images)):
        groups.setdefault(hashlib.blake2b(image.tobytes(), digest_size=16).digest(), []).append(i)
    return sorted(g for g in groups.values() if len(g) > 1 and len(set(given[g].tolist())) > 1)


# ---------------------------------------------------------------- files


def _csv_text(columns, rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue()


def review_order(j: LabelJudgment) -> np.ndarray:
    """review_queue.csv's rows: the images without a trusted label, highest ``review_score`` first (ties: the lower
    ``label_quality`` first)."""
    candidates = np.flatnonzero(j.judged_by_network)
    return candidates[np.lexsort((j.label_quality[candidates], -j.review_score[candidates]))]


def write_outputs(j: LabelJudgment, pred_probs: np.ndarray, folder: Path, *, image_names, class_names,
                  judged_by: str, numbered: bool = True) -> dict[str, str]:
    """label_issues.csv, corrected_labels.csv, review_queue.csv and pred_probs.npy in ``folder`` (a run being
    written, so the files appear with the run or not at all); returns {kind: file name}."""
    names = np.asarray(class_names, dtype=object)
    who = [judged_by if src == "" else f"trusted label ({src})" for src in j.trusted_source.tolist()]
    trusted_name = np.where(j.trusted >= 0, names[np.maximum(j.trusted, 0)], "")
    rows = zip(image_names, names[j.given], names[j.suggested], np.round(j.label_quality, 6), j.is_label_issue,
               names[j.predicted], trusted_name, j.out_of_sample, who)
    (folder / LABEL_ISSUES_CSV).write_text(_csv_text(LABEL_ISSUE_COLUMNS, rows), encoding="utf-8")
    if numbered:  # the client's layout (one integer per line, image i on line i): a new run's noisy_labels.csv
        corrected = "".join(f"{c}\n" for c in j.suggested.tolist())
    else:  # `image,label` rows (class names), the images in path order: a new run's labels.csv
        order = sorted(range(len(image_names)), key=lambda i: image_names[i])
        corrected = _csv_text(("image", "label"), ((image_names[i], names[j.suggested[i]]) for i in order))
    (folder / CORRECTED_LABELS_CSV).write_text(corrected, encoding="utf-8")
    order = review_order(j)
    image_names = np.asarray(image_names, dtype=object)
    queue = zip(image_names[order], names[j.given[order]], names[j.suggested[order]],
                np.round(j.review_score[order], 6), np.round(j.label_quality[order], 6), j.is_label_issue[order])
    (folder / REVIEW_QUEUE_CSV).write_text(_csv_text(REVIEW_QUEUE_COLUMNS, queue), encoding="utf-8")
    np.save(folder / PRED_PROBS_NPY, np.asarray(pred_probs, dtype=np.float32))
    return {"label_issues": LABEL_ISSUES_CSV, "corrected_labels": CORRECTED_LABELS_CSV,
            "review_queue": REVIEW_QUEUE_CSV, "pred_probs": PRED_PROBS_NPY}


def read_label_issues(path: str | os.PathLike) -> list[dict]:
    """The rows of a label_issues.csv (strings as written)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def most_suspect(rows: list[dict], class_names, *, top: int) -> dict[str, list[dict]]:
    """Per given class, the ``top`` network-judged label issues with the lowest label_quality (label_issues.csv
    rows)."""
    per_class: dict[str, list[dict]] = {name: [] for name in class_names}
    for row in rows:
        if row["is_label_issue"] == "True" and not row["trusted_label"]:
            per_class.setdefault(row["given_label"], []).append(row)
    return {c: sorted(r, key=lambda row: float(row["label_quality"]))[:top] for c, r in per_class.items()}


def plot_gallery(suspects: dict[str, list[dict]], images: dict[str, np.ndarray], path: Path, *, top: int) -> Path:
    """One row per class of its most suspect images, upscaled, each captioned "given → suggested (quality)";
    written to a temporary file and renamed, so ``path`` is never half-written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = list(suspects)
    cols = max(1, top)
    fig, axes = plt.subplots(len(classes), cols + 1, figsize=(1.45 * (cols + 1), 1.6 * len(classes)), squeeze=False)
    for r, cls in enumerate(classes):
        label_ax = axes[r, 0]
        label_ax.axis("off")
        label_ax.text(0.95, 0.5, f"labelled\n{cls}", ha="right", va="center", fontsize=9, fontweight="bold")
        for c in range(cols):
            ax = axes[r, c + 1]
            ax.axis("off")
            if c < len(suspects[cls]):
                row = suspects[cls][c]
                ax.imshow(images[row["image"]], interpolation="nearest")
                ax.set_title(f"{row['given_label']} → {row['suggested_label']}\n({float(row['label_quality']):.2f})"
                             f" {row['image']}", fontsize=6.5)
    fig.suptitle("Most suspect labels per class: given → suggested (label quality; low = suspect)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------- a run's judgment


def judge_run(pred_probs: np.ndarray, data, split, *, transition: np.ndarray | None, judged_by: str,
              folder: Path, reports: Path) -> dict:
    """Judge every label of ``data`` (:class:`~labelmend.train.data.TrainingData`) from the network ``judged_by``'s
    ``pred_probs``, write the files and gallery into the run being written, and return the run record's entry."""
    n, k = len(data.noisy_labels), len(data.class_names)
    trusted = np.full(n, -1, np.int64)
    source = np.full(n, "", dtype=object)
    trusted[:data.n_clean], source[:data.n_clean] = data.clean_labels, "clean_labels.csv"
    trusted[data.verified_index], source[data.verified_index] = data.verified_labels, "verified_labels.csv"
    out_of_sample = np.zeros(n, bool)
    out_of_sample[split.val] = True
    j = judge(pred_probs, data.noisy_labels, trusted=trusted, trusted_source=source, out_of_sample=out_of_sample)
    names = data.image_names or tuple(f"{i + 1:05d}.png" for i in range(n))
    files = write_outputs(j, pred_probs, folder, image_names=names, class_names=data.class_names,
                          judged_by=judged_by, numbered=data.layout == NUMBERED)
    top = GALLERY_TOP
    suspects = most_suspect(read_label_issues(folder / LABEL_ISSUES_CSV), data.class_names, top=top)
    index = {name: i for i, name in enumerate(names)}
    plot_gallery(suspects, {r["image"]: data.images[index[r["image"]]] for rs in suspects.values() for r in rs},
                 reports / GALLERY_PNG, top=top)
    by_net = j.judged_by_network
    conflicts = duplicate_conflicts(data.images, data.noisy_labels)
    val = split.val
    return {
        "judged_by": judged_by,
        "pred_probs": (f"P(y | x) of {judged_by}'s final network, every image in file order; out of sample only "
                       f"for the {len(val)} validation images (every other image was in its training set)"),
        "label_quality": "P(y = given | x) (self-confidence): low = suspect; 1 or 0 where a trusted label decides",
        "n_images": n, "n_label_issues": int(j.is_label_issue.sum()),
        "n_judged_by_network": int(by_net.sum()), "n_flagged_by_network": int((j.is_label_issue & by_net).sum()),
        "n_trusted": int((~by_net).sum()), "n_verified": int(len(data.verified_index)),
        "quality_on_validation": flag_quality(data.noisy_labels[val], j.predicted[val], data.clean_labels[val]),
        "per_class": class_health(j, n_classes=k, transition=transition, pred_probs=pred_probs),
        "confused_pairs": confused_pairs(j),
        "duplicate_conflicts": {"n_groups": len(conflicts),
                                "groups": [[names[i] for i in g] for g in conflicts[:100]]},
        "files": {**files, "gallery": f"reports/{GALLERY_PNG}"},
    }


def log_line(rec: dict, *, n_labels: int) -> str:
    """The one line `labelmend train` logs about a run's label judgment ``rec`` (:func:`judge_run`)."""
    q = rec["quality_on_validation"]

    def fmt(x):
        return "—" if x is None else f"{x:.3f}"

    return (f"label issues: {rec['n_label_issues']} of {n_labels} labels look wrong to {rec['judged_by']}"
            + (f" (its flags on the {q['n']} validation images: precision {fmt(q['precision'])}, recall "
               f"{fmt(q['recall'])})" if q["n"] else "") + "; `labelmend issues RUN` summarises them")


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def summary_lines(rec: dict, class_names, *, markdown: bool) -> list[str]:
    """The judgment ``rec`` (from :func:`judge_run`) in words: for report.md (``markdown``) and `labelmend
    issues`."""
    q = rec["quality_on_validation"]
    share = rec["n_flagged_by_network"] / max(1, rec["n_judged_by_network"])
    lines = [f"{rec['judged_by']} judged all {rec['n_images']:,} labels: **{rec['n_label_issues']:,} look wrong**. "
             f"Of the {rec['n_judged_by_network']:,} without a trusted label it flags "
             f"{rec['n_flagged_by_network']:,} ({_pct(share)})"
             f"; the {rec['n_trusted']:,} with a trusted label are judged by that label"
             + (f" ({rec['n_verified']:,} of them verified by a person)." if rec["n_verified"] else ".")]
    if q["n"]:
        f1 = "—" if q["f1"] is None else f"{q['f1']:.3f}"
        lines += ["", f"How reliable the flags are, measured on the {q['n']:,} validation images (clean labels held "
                      f"out; no network trained on them), {q['n_wrong_labels']:,} of whose given labels are wrong: "
                      f"precision {_pct(q['precision'])}, recall {_pct(q['recall'])}, F1 {f1}; the suggested label "
                      f"is right "
                      f"for {_pct(q['suggested_right_where_given_wrong'])} of the wrong ones; corrected labels "
                      f"{_pct(q['corrected_label_accuracy'])} right against {_pct(q['given_label_accuracy'])} for "
                      "the given ones. The images the network trained on are judged less out of sample, so there "
                      "it misses more of the wrong labels it has learnt."]
    else:
        lines += ["", "No validation images: how reliable the flags are cannot be measured (hold out clean labels "
                      "with `--val-fraction`)."]
    names = list(class_names)
    lines += ["", "| given label | images | flagged | wrong per T | wrong among trusted (n) |", "|---|---|---|---|---|"]
    for row in rec["per_class"]:
        lines.append(f"| {names[row['class']]} | {row['n_labelled']:,} | {_pct(row['flagged_share'])} | "
                     f"{_pct(row['wrong_share_from_T'])} | {_pct(row['wrong_share_trusted'])} ({row['n_trusted']:,}) |")
    if rec["confused_pairs"]:
        lines += ["", "Most frequent flagged pairs (given → suggested): " + ", ".join(
            f"{names[p['given']]} → {names[p['suggested']]} {p['count']:,}" for p in rec["confused_pairs"])]
    dup = rec["duplicate_conflicts"]
    if dup["n_groups"]:
        shown = "; ".join(" = ".join(g) for g in dup["groups"][:10])
        lines += ["", f"{dup['n_groups']:,} groups of identical images carry different labels: {shown}"
                      + (" …" if dup["n_groups"] > 10 else "") + " (all in run.json)."]
    else:
        lines += ["", "No identical images carry different labels."]
    f = rec["files"]
    lines += ["", f"Files: `{f['label_issues']}` (one row per image: given_label, suggested_label, label_quality — "
                  f"low = suspect —, is_label_issue), `{f['corrected_labels']}` (the given labels, trusted "
                  f"labels where known and suggested ones where flagged), `{f['review_queue']}` (images to check "
                  f"first; put the checked labels in DATA/verified_labels.csv and train again), `{f['pred_probs']}` "
                  f"(N × K probabilities for cleanlab), `{f['gallery']}`."]
    if not markdown:
        lines = [line.replace("**", "").replace("`", "") for line in lines]
    return lines


def describe_run(run_dir: str | os.PathLike, *, top: int | None = None) -> list[str]:
    """`labelmend issues RUN`: the summary of a run's label judgment, with the gallery redrawn at ``top`` images per
    class when asked (read from the run's data folder)."""
    from labelmend.errors import DataError
    from labelmend.run_format import REPORTS, read_run

    run_dir = Path(run_dir)
    record = read_run(run_dir)
    rec = record.label_issues
    if not rec:
        raise DataError(f"{run_dir}: no label judgment in this run (it trained no CNN, or an older labelmend wrote "
                        "it); train with model2 or model1")
    lines = summary_lines(rec, record.class_names, markdown=False)
    for kind, name in rec["files"].items():
        if not (run_dir / name).is_file():
            raise DataError(f"{run_dir / name}: missing ({kind}); the run is incomplete, train it again")
    lines.append(f"(files in {run_dir})")
    if top is not None:
        from labelmend.folders import TRAIN_IMAGES
        from labelmend.runtime.images import to_input

        suspects = most_suspect(read_label_issues(run_dir / LABEL_ISSUES_CSV), record.class_names, top=top)
        folder = Path(record.data_dir) / (TRAIN_IMAGES if record.data_layout == NUMBERED else "")
        if not folder.is_dir():
            raise DataError(f"{folder}: the run's images are not there any more; the gallery needs them")
        images = {r["image"]: to_input(folder / r["image"]) for rs in suspects.values() for r in rs}
        path = plot_gallery(suspects, images, run_dir / REPORTS / GALLERY_PNG, top=top)
        lines.append(f"gallery of the {top} most suspect labels per class: {path}")
    return lines
