"""Any K classes (names from class_names.txt or "0" … "K-1"), any trusted-set size (none included), end to end:
train → export → evaluate → predict on tiny generated data sets."""

from __future__ import annotations

import csv
import json

import _data_factory as factory  # noqa: E402  (tests/ is put on sys.path by conftest.py)
import numpy as np
import pytest

pytest.importorskip("tensorflow")

from labelmend import benchmarking  # noqa: E402
from labelmend.cli import main  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("LABELMEND_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LABELMEND_PROGRESS", "0")


def _coloured(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Images whose mean colour encodes the class (learnable in a step or two), plus noise."""
    rng = np.random.default_rng(seed)
    hue = labels / k
    base = np.stack([np.abs(np.sin(np.pi * (hue + s))) for s in (0.0, 1 / 3, 2 / 3)], axis=1) * 200
    x = base[:, None, None, :] + rng.normal(0, 20, (len(labels), 32, 32, 3))
    return np.clip(x, 0, 255).astype(np.uint8)


def _dataset(root, *, k: int, n: int, n_clean: int, names, transition, seed=0):
    y = np.arange(n) % k
    np.random.default_rng(seed).shuffle(y)
    noisy = benchmarking.simulate_noise(y, transition, seed=seed + 1)
    noisy[:k] = np.arange(k)  # every class occurs among the noisy labels
    (root / "images").mkdir(parents=True)
    factory._write_numbered(root / "images", "", _coloured(y, k, seed))
    factory.write_labels(root / "noisy_labels.csv", noisy)
    if n_clean is not None:
        factory.write_labels(root / "clean_labels.csv", y[:n_clean])
    if names is not None:
        (root / "class_names.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    return y


def _test_dir(root, *, k: int, n: int):
    y = np.arange(n) % k
    (root / "test_images").mkdir(parents=True)
    factory._write_numbered(root / "test_images", "test", _coloured(y, k, seed=99))
    factory.write_labels(root / "test_labels.csv", y)
    return y


@pytest.mark.parametrize("k, names, n_clean, transition", [
    (4, ("cat", "dog", "car", "truck"), 40, benchmarking.pair_flip(4, 0.4, {0: 1, 1: 0, 2: 3, 3: 2})),
    (25, None, 150, benchmarking.symmetric(25, 0.5)),
    (4, ("cat", "dog", "car", "truck"), None, benchmarking.symmetric(4, 0.5)),   # no clean labels at all
], ids=["4-classes-pair-flip", "25-classes-symmetric", "4-classes-no-clean-labels"])
def test_k_classes_train_export_evaluate_predict(tmp_path, capsys, k, names, n_clean, transition):
    data, test = tmp_path / "data", tmp_path / "test"
    _dataset(data, k=k, n=8 * k if k > 4 else 96, n_clean=n_clean, names=names, transition=transition)
    _test_dir(test, k=k, n=2 * k)
    run, bundle, evaluation = tmp_path / "run", tmp_path / "bundle", tmp_path / "eval"
    assert main(["--quiet", "train", "--data", str(data), "--out", str(run), "--epochs", "1", "--width", "4"]) == 0
    record = json.loads((run / "run.json").read_text())
    expected_names = list(names) if names else [str(i) for i in range(k)]
    assert record["class_names"] == expected_names
    m2 = record["models"]["model2"]["training"]
    assert np.asarray(m2["transition_matrix"]).shape == (k, k)
    if n_clean is None:
        assert "estimated without trusted pairs" in m2["transition_source"]
        report = (run / "reports" / "report.md").read_text()
        assert "estimated without any clean label" in report and "Confident learning flagged" in report
        assert "confident labels" in m2["transition_source"]
    assert main(["--quiet", "export", "--run", str(run), "--bundle", str(bundle)]) == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["class_names"] == expected_names
    assert all(m["output"]["shape"] == [None, k] for m in manifest["models"].values())
    capsys.readouterr()
    assert main(["--quiet", "evaluate", "--bundle", str(bundle), "--test-data", str(test), "--out",
                 str(evaluation)]) == 0
    out = capsys.readouterr().out
    for name in expected_names:  # every class is a row of the classification reports
        assert f"\n{name:>{max(12, len(name))}}" in out or f" {name} " in out
    with open(evaluation / "label_prediction.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * k and all(0 <= int(r["model2"]) < k for r in rows)
    image = test / "test_images" / "test00001.png"
    assert main(["predict", "--bundle", str(bundle), str(image)]) == 0
    path, label, name = capsys.readouterr().out.strip().split("\t")
    assert name == expected_names[int(label)]


def test_a_test_label_beyond_the_bundles_classes_is_a_clear_error(tmp_path, capsys):
    data, test = tmp_path / "data", tmp_path / "test"
    _dataset(data, k=4, n=48, n_clean=16, names=None, transition=benchmarking.symmetric(4, 0.3))
    y = _test_dir(test, k=5, n=10)  # class 4 does not exist in a 4-class bundle
    assert main(["--quiet", "train", "--data", str(data), "--out", str(tmp_path / "run"), "--models", "baseline"]) == 0
    assert main(["--quiet", "export", "--run", str(tmp_path / "run"), "--bundle", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    rc = main(["evaluate", "--bundle", str(tmp_path / "b"), "--test-data", str(test), "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.splitlines()) == 1
    line = int(np.flatnonzero(y == 4)[0]) + 1
    assert f"test_labels.csv, line {line}: label 4 is outside 0-3" in err
    assert not (tmp_path / "e").exists()
