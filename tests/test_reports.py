"""report.md's comparison of Model II with Model I, image by image on the validation images."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from labelmend.train.reports import write_summary
from labelmend.train.task import paired_comparisons, paired_difference

from labelmend.run_format import ModelRecord, RunRecord


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 300), st.integers(2, 12))
def test_paired_difference_is_the_accuracy_difference_with_a_paired_standard_error(seed, n, k):
    rng = np.random.default_rng(seed)
    labels, a, b = rng.integers(0, k, n), rng.integers(0, k, n), rng.integers(0, k, n)
    d = paired_difference(a, b, labels)
    assert d["difference"] == pytest.approx(np.mean(b == labels) - np.mean(a == labels))
    assert d["b_only"] + d["a_only"] <= n and d["standard_error"] >= 0
    # the standard error of the mean of the per-image differences (right_b - right_a) in {-1, 0, 1}
    per_image = (b == labels).astype(float) - (a == labels)
    assert d["standard_error"] == pytest.approx(per_image.std() / np.sqrt(n), abs=1e-12)
    assert paired_difference(b, a, labels)["difference"] == pytest.approx(-d["difference"])
    assert paired_difference(a, a, labels)["standard_error"] == 0.0


def test_the_report_says_when_weak_supervision_is_not_a_clear_gain(tmp_path, monkeypatch):
    from labelmend import registry

    monkeypatch.setattr(registry.Method, "report_section", lambda *args: [])  # these runs have no method reports
    labels = np.arange(1000) % 10
    model1 = labels.copy()
    model1[:250] = (labels[:250] + 1) % 10                        # 75.0 % right
    clear, tie, worse = model1.copy(), model1.copy(), model1.copy()
    clear[:60], tie[:3] = labels[:60], labels[:3]                  # 81.0 % (+6.0), 75.3 % (+0.3)
    worse[500:560] = (labels[500:560] + 1) % 10                    # 69.0 % (-6.0)
    texts = {}
    for name, model2 in (("clear", clear), ("tie", tie), ("same", model1), ("worse", worse)):
        models = {m: ModelRecord(file=f"{m}.keras", validation={"accuracy": float(np.mean(p == labels))},
                                 validation_predicted=p.tolist(), seconds=1.0,
                                 training={"steps": 1, "planned_steps": 1})
                  for m, p in (("model1", model1), ("model2", model2))}
        run = RunRecord(labelmend_version="t", seed=0, data_dir="d", n_images=2000, n_clean=1000,
                        split={"n_val": 1000}, class_names=[str(i) for i in range(10)], time_budget_s=10,
                        models=models, comparisons=paired_comparisons(models, labels), total_seconds=2.0,
                        peak_rss_mb=1.0)
        texts[name] = write_summary(run, tmp_path / f"{name}.md").read_text()
    assert "model2 is +6.0 points" in texts["clear"] and "Not a clear gain" not in texts["clear"]
    assert "model2 is +0.3 points" in texts["tie"] and "Not a clear gain" in texts["tie"]
    assert "model2 is +0.0 points" in texts["same"] and "Not a clear gain" in texts["same"]
    assert "model2 is -6.0 points" in texts["worse"] and "model1 is better here" in texts["worse"]
    assert not any("Only 1,000 validation images" in t for t in texts.values())


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 100_000), st.floats(0, 1))
def test_the_accuracy_interval_holds_the_accuracy_and_narrows_with_more_images(n, frac):
    from labelmend.train.task import accuracy_interval

    acc = round(frac * n) / n  # an accuracy n images can give
    lo, hi = accuracy_interval(acc, n)
    assert 0.0 <= lo <= acc <= hi <= 1.0
    lo4, hi4 = accuracy_interval(acc, 4 * n)
    assert hi4 - lo4 < hi - lo


def test_the_accuracy_interval_is_wilsons():
    from labelmend.train.task import accuracy_interval

    # 900 of 1,000 right: Wilson's 95 % interval, computed by hand from its formula
    assert accuracy_interval(0.9, 1000) == pytest.approx((0.87985, 0.91709), abs=1e-5)
    assert accuracy_interval(1.0, 10)[1] == 1.0 and accuracy_interval(1.0, 10)[0] == pytest.approx(0.72246, abs=1e-5)
    with pytest.raises(ValueError):
        accuracy_interval(0.5, 0)


def test_the_report_gives_intervals_and_says_when_the_defaults_were_chosen_on_its_validation_images(tmp_path,
                                                                                                   monkeypatch):
    import hashlib

    from labelmend import registry
    from labelmend.train import task

    monkeypatch.setattr(registry.Method, "report_section", lambda *args: [])
    noisy, clean = np.arange(50) % 10, np.arange(20) % 10
    assert not task.chosen_on_these_images(noisy, clean, seed=0, val_fraction=0.1)
    monkeypatch.setattr(task, "DEVELOPMENT_LABELS_SHA256", hashlib.sha256(
        noisy.astype(np.int64).tobytes() + clean.astype(np.int64).tobytes()).hexdigest())
    assert task.chosen_on_these_images(noisy, clean, seed=0, val_fraction=0.1)
    assert not task.chosen_on_these_images(noisy, clean, seed=1, val_fraction=0.1)
    assert not task.chosen_on_these_images(noisy, clean, seed=0, val_fraction=0.2)
    assert not task.chosen_on_these_images(noisy[::-1], clean, seed=0, val_fraction=0.1)
    models = {"model2": ModelRecord(file="m.keras", validation={"accuracy": 0.9, "n": 1000}, seconds=1.0,
                                    training={"steps": 1, "planned_steps": 1})}
    texts = {}
    for chosen in (False, True):
        run = RunRecord(labelmend_version="t", seed=0, data_dir="d", n_images=50, n_clean=20,
                        split={"n_val": 1000}, class_names=[str(i) for i in range(10)], time_budget_s=10,
                        models=models, validation_chose_defaults=chosen, total_seconds=2.0, peak_rss_mb=1.0)
        texts[chosen] = write_summary(run, tmp_path / f"{chosen}.md").read_text()
    assert "| model2 | 0.9000 | 0.880–0.917 (1,000) |" in texts[False]
    assert "defaults were chosen on" in texts[True] and "defaults were chosen on" not in texts[False]
