"""Label issues: the verdict on every label, its measured quality, the files a run writes, verified_labels.csv, and
`labelmend issues`."""

from __future__ import annotations

import csv
import json
import os

import _data_factory as factory  # noqa: E402  (tests/ is put on sys.path by conftest.py)
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from labelmend.train import label_issues as li

from labelmend.cli import main
from labelmend.errors import DataError
from labelmend.folders import read_labels, read_verified_labels

NAMES = tuple("abcd")


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("LABELMEND_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LABELMEND_PROGRESS", "0")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


def _judgment(n=40, k=4, seed=0):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(k), size=n)
    given = rng.integers(0, k, n)
    trusted = np.where(np.arange(n) < 10, rng.integers(0, k, n), -1)
    source = np.where(trusted >= 0, "clean_labels.csv", "")
    oos = np.arange(n) < 5
    return probs, given, trusted, li.judge(probs, given, trusted=trusted, trusted_source=source, out_of_sample=oos)


def test_trusted_labels_decide_and_the_network_judges_the_rest():
    probs, given, trusted, j = _judgment()
    known = trusted >= 0
    np.testing.assert_array_equal(j.suggested[known], trusted[known])
    np.testing.assert_array_equal(j.is_label_issue[known], given[known] != trusted[known])
    np.testing.assert_array_equal(j.label_quality[known], (given[known] == trusted[known]).astype(float))
    np.testing.assert_array_equal(j.suggested[~known], probs[~known].argmax(1))
    np.testing.assert_array_equal(j.is_label_issue[~known], probs[~known].argmax(1) != given[~known])
    np.testing.assert_allclose(j.label_quality[~known], probs[~known][np.arange((~known).sum()), given[~known]])
    assert np.all(j.review_score[known] == -np.inf) and np.all(np.isfinite(j.review_score[~known]))
    assert np.all((j.label_quality >= 0) & (j.label_quality <= 1))


def test_review_queue_puts_clear_mistakes_first():
    """A label the network is sure is wrong comes before one on an ambiguous image, before a label it believes."""
    probs = np.array([[0.45, 0.55, 0.0], [0.02, 0.96, 0.02], [0.9, 0.05, 0.05], [0.34, 0.33, 0.33]])
    given = np.array([0, 0, 0, 0])
    j = li.judge(probs, given, trusted=np.array([-1, -1, -1, 2]), trusted_source=np.array(["", "", "", "clean"]),
                 out_of_sample=np.zeros(4, bool))
    np.testing.assert_array_equal(li.review_order(j), [1, 0, 2])  # the trusted image needs no checking
    p = np.clip(probs[1], 1e-12, 1)
    assert j.review_score[1] == pytest.approx(-np.log(0.02) + np.sum(p * np.log(p)))


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 6), st.integers(0, 2**32 - 1), st.booleans())
def test_review_queue_puts_the_unlikeliest_given_label_first(k, seed, underflow):
    rng = np.random.default_rng(seed)
    row = rng.dirichlet(np.full(k, 0.3))
    row[rng.integers(k)] = 0.0  # a class the network rules out still gets a finite score
    if underflow:  # two given labels below the score's 1e-12 floor: the queue still orders them by probability
        row[rng.integers(k)] = 10.0 ** rng.uniform(-16, -12)
    probs = np.tile(row / row.sum(), (k, 1))  # one image, each class as its given label
    j = li.judge(probs, np.arange(k), trusted=np.full(k, -1), trusted_source=np.full(k, ""),
                 out_of_sample=np.zeros(k, bool))
    assert np.all(np.isfinite(j.review_score))
    order = li.review_order(j)
    assert sorted(order) == list(range(k))
    assert np.all(np.diff(probs[order, order]) >= 0)  # the unlikeliest given label first, ties below the floor too


def test_judge_refuses_bad_probabilities():
    with pytest.raises(ValueError, match="shape"):
        li.judge(np.ones((3, 2)), np.zeros(4, int), trusted=np.full(4, -1), trusted_source=np.full(4, ""),
                 out_of_sample=np.zeros(4, bool))
    with pytest.raises(ValueError, match="NaN"):
        li.judge(np.full((2, 2), np.nan), np.zeros(2, int), trusted=np.full(2, -1), trusted_source=np.full(2, ""),
                 out_of_sample=np.zeros(2, bool))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=60))
def test_flag_quality_counts_like_a_confusion_table(rows):
    given, predicted, true = (np.array(c) for c in zip(*rows))
    q = li.flag_quality(given, predicted, true)
    tp = sum(g != p and g != t for g, p, t in rows)
    flagged, wrong = sum(g != p for g, p, _ in rows), sum(g != t for g, _, t in rows)
    assert q["n"] == len(rows) and q["n_flagged"] == flagged and q["n_wrong_labels"] == wrong
    assert q["precision"] == (tp / flagged if flagged else None)
    assert q["recall"] == (tp / wrong if wrong else None)
    if q["f1"] is not None:
        assert 0 <= q["f1"] <= 1
    corrected = np.where(predicted != given, predicted, given)
    assert q["corrected_label_accuracy"] == pytest.approx(np.mean(corrected == true))


def test_files_have_the_documented_format(tmp_path):
    probs, given, trusted, j = _judgment()
    names = [f"{i + 1:05d}.png" for i in range(len(given))]
    files = li.write_outputs(j, probs, tmp_path, image_names=names, class_names=NAMES, judged_by="model2")
    rows = li.read_label_issues(tmp_path / files["label_issues"])
    assert tuple(rows[0]) == li.LABEL_ISSUE_COLUMNS and len(rows) == len(given)
    assert [r["image"] for r in rows] == names
    assert [r["given_label"] for r in rows] == [NAMES[g] for g in given]
    assert {r["judged_by"] for r in rows[:10]} == {"trusted label (clean_labels.csv)"}
    assert {r["judged_by"] for r in rows[10:]} == {"model2"}
    assert [r["out_of_sample"] for r in rows[:6]] == ["True"] * 5 + ["False"]
    assert all(0 <= float(r["label_quality"]) <= 1 for r in rows)
    # corrected_labels.csv is a noisy_labels.csv: one integer per line, image i on line i
    corrected = read_labels(tmp_path / files["corrected_labels"], n_classes=4)
    np.testing.assert_array_equal(corrected, j.suggested)
    with open(tmp_path / files["review_queue"], newline="", encoding="utf-8") as f:
        queue = list(csv.DictReader(f))
    assert tuple(queue[0]) == li.REVIEW_QUEUE_COLUMNS
    assert len(queue) == int((trusted < 0).sum())  # images with a trusted label need no checking
    assert not {q["image"] for q in queue} & set(names[:10])
    scores = [float(q["review_score"]) for q in queue]
    assert scores == sorted(scores, reverse=True)
    saved = np.load(tmp_path / files["pred_probs"])
    assert saved.shape == probs.shape and saved.dtype == np.float32


def test_identical_images_with_different_labels_are_listed():
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    images[3] = images[1]  # same image, other label: a conflict
    images[5] = images[4]  # same image, same label: fine
    given = np.array([0, 1, 2, 2, 3, 3])
    assert li.duplicate_conflicts(images, given) == [[1, 3]]


def test_confused_pairs_count_flagged_network_verdicts_only():
    probs = np.eye(3)[[1, 1, 1, 2, 0]]
    j = li.judge(probs, np.array([0, 0, 0, 0, 0]), trusted=np.array([-1, -1, -1, -1, 2]),
                 trusted_source=np.array(["", "", "", "", "clean"]), out_of_sample=np.zeros(5, bool))
    assert li.confused_pairs(j) == [{"given": 0, "suggested": 1, "count": 3}, {"given": 0, "suggested": 2, "count": 1}]


# ---- verified_labels.csv --------------------------------------------------------------------------------------------


IMAGES = [f"{i:05d}.png" for i in range(1, 9)]


def _verified(tmp_path, text):
    path = tmp_path / "verified_labels.csv"
    path.write_text(text, encoding="utf-8")
    trusted = np.full(len(IMAGES), -1)
    trusted[:2] = [0, 1]
    return read_verified_labels(path, image_names=IMAGES, class_names=NAMES, trusted=trusted,
                                trusted_line=np.arange(1, len(IMAGES) + 1))


def test_verified_labels_by_name_or_number_with_optional_header(tmp_path):
    index, labels = _verified(tmp_path, "image,label\r\n00005.png,c\n00007.png, 1 \nimages/00004.png,d\n\n")
    np.testing.assert_array_equal(index, [4, 6, 3])
    np.testing.assert_array_equal(labels, [2, 1, 3])


def test_verified_label_agreeing_with_a_clean_label_is_dropped(tmp_path):
    index, labels = _verified(tmp_path, "00002.png,b\n00003.png,a\n")
    np.testing.assert_array_equal(index, [2])


@pytest.mark.parametrize("text, line, match", [
    ("00005.png,c\n00099.png,a\n", 2, "unknown image '00099.png'"),
    ("00005.png,e\n", 1, "label 'e' is not one of the 4 classes"),
    ("00005.png,4\n", 1, "label '4' is not one of the 4 classes"),
    ("00005.png,c\n00006.png,a\n00005.png,c\n", 3, "already verified on line 1"),
    ("00005.png\n", 1, "expected `image,label`"),
    ("00005.png,a,b\n", 1, "expected `image,label`"),
    ("00001.png,c\n", 1, "clean_labels.csv line 1 says 'a'"),
])
def test_bad_verified_labels_name_file_and_line(tmp_path, text, line, match):
    with pytest.raises(DataError, match=rf"verified_labels.csv, line {line}: .*{match}"):
        _verified(tmp_path, text)


def test_train_with_bad_verified_labels_is_one_line_and_writes_nothing(tmp_path, capsys):
    w = factory.make_training_dir(tmp_path / "data", n=12, n_clean=5)
    (w.root / "verified_labels.csv").write_text("00006.png,3\n00006.png,4\n", encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", "--data", str(w.root), "--out", str(out), "--models", "baseline"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "verified_labels.csv, line 2" in err[0] and "already verified" in err[0]
    assert not out.exists() and not any(p.name.startswith(".run") for p in tmp_path.iterdir())


def test_issues_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["issues", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a finished `labelmend train` run" in err[0]


# ---- a real run ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_run_writes_label_issues_measured_on_images_no_network_trained_on(tmp_path, capsys):
    pytest.importorskip("tensorflow")
    w = factory.make_training_dir(tmp_path / "data", n=80, n_clean=40)
    verified = {60: 3, 70: 5}
    (w.root / "verified_labels.csv").write_text(
        "image,label\n" + "".join(f"{i + 1:05d}.png,{c}\n" for i, c in verified.items()), encoding="utf-8")
    run = tmp_path / "run"
    assert main(["--quiet", "train", "--data", str(w.root), "--out", str(run), "--models", "model2",
                 "--epochs", "1", "--width", "4", "--val-fraction", "0.25"]) == 0
    record = json.loads((run / "run.json").read_text(encoding="utf-8"))
    rec, val = record["label_issues"], np.array(record["split"]["val_indices_1based"]) - 1
    assert len(val) == 10 and record["n_verified"] == 2
    # the quality shown rests on the validation images only: held out of every network's training
    rows = li.read_label_issues(run / li.LABEL_ISSUES_CSV)
    assert len(rows) == 80
    oos = [i for i, r in enumerate(rows) if r["out_of_sample"] == "True"]
    assert oos == sorted(val.tolist())
    given, predicted, true = (np.array([int(rows[i][col]) for i in oos])
                              for col in ("given_label", "predicted_label", "trusted_label"))
    assert rec["quality_on_validation"] == li.flag_quality(given, predicted, true)
    assert rec["quality_on_validation"]["n"] == 10
    # verified labels are trusted verdicts, but never count T
    for i, c in verified.items():
        assert rows[i]["judged_by"] == "trusted label (verified_labels.csv)" and rows[i]["suggested_label"] == str(c)
    t = record["models"]["model2"]["training"]
    assert t["n_verified_labels"] == 2 and t["n_trusted_pairs"] == 30
    probs = np.load(run / li.PRED_PROBS_NPY)
    assert probs.shape == (80, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
    corrected = read_labels(run / li.CORRECTED_LABELS_CSV, n_classes=10)
    assert corrected[60] == 3 and corrected[70] == 5 and np.array_equal(corrected[:40], w.clean)
    assert (run / "reports" / li.GALLERY_PNG).stat().st_size > 0
    assert "## Which labels look wrong" in (run / "reports" / "report.md").read_text(encoding="utf-8")
    capsys.readouterr()
    before = (run / "reports" / li.GALLERY_PNG).stat().st_mtime_ns
    os.utime(run / "reports" / li.GALLERY_PNG, ns=(before - 10**9, before - 10**9))
    assert main(["issues", str(run), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert f"{rec['n_label_issues']:,} look wrong" in out and "precision" in out and "gallery" in out
    assert (run / "reports" / li.GALLERY_PNG).stat().st_mtime_ns >= before
    assert not list((run / "reports").glob(".*tmp*"))
