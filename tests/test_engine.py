"""The training engine's seams: a method is one file + one registry line; training runs under tf.distribute."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
import _data_factory as factory  # noqa: E402

from labelmend import registry  # noqa: E402

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def test_a_new_method_is_one_file_and_one_registry_line(tmp_path, monkeypatch):
    """Register tests/_toy_method.py; train, report (its own section), export and predict with it, with nothing else
    changed."""
    from labelmend.export.bundle import export_bundle
    from labelmend.runtime import load
    from labelmend.train.pipeline import train

    monkeypatch.setenv("LABELMEND_CACHE", str(tmp_path / "cache"))
    toy = registry.Method("toy", "_toy_method", summary="noisy labels, hard targets", uses_clean_labels=False)
    monkeypatch.setattr(registry, "METHODS", {**registry.METHODS, "toy": toy})
    monkeypatch.setattr(registry, "MODEL_NAMES", (*registry.MODEL_NAMES, "toy"))
    w = factory.make_training_dir(tmp_path / "data", n=60, n_clean=30)
    record = train(w.root, tmp_path / "run", models=["baseline", "toy"], epochs=1, width=4, progress=False)
    assert record.models["toy"].training["method_hyperparameters"] == {"smoothing": 0.0}
    assert (tmp_path / "run" / "toy.keras").is_file()
    disagreement = record.models["toy"].training["disagreement"]
    report = (tmp_path / "run" / "reports" / "report.md").read_text(encoding="utf-8")
    assert f"## Toy method (toy)\n\nIt disagrees with {100 * disagreement:.1f} % of its 10-class" in report
    assert (tmp_path / "run" / "reports" / "toy_toy.txt").read_text() == f"{disagreement:.4f}\n"
    manifest = export_bundle(tmp_path / "run", tmp_path / "bundle", progress=False)
    assert manifest["models"]["toy"]["description"] == "noisy labels, hard targets"
    proba = load(tmp_path / "bundle", "toy").predict_proba(w.images[:4])
    assert proba.shape == (4, 10) and np.allclose(proba.sum(1), 1, atol=1e-4)


def test_no_code_outside_the_registry_dispatches_on_a_model_name():
    hits = subprocess.run(["git", "-C", str(REPO), "grep", "-n", "-e", '"model1"', "-e", "'model1'", "--", "*.py",
                           ":!tests", ":!labelmend/registry.py"], capture_output=True, text=True).stdout
    assert hits == "", hits


def _train_cli(tmp_path, out, *, logical_cpus):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it
    env.update({"LABELMEND_CACHE": str(tmp_path / "cache"), "LABELMEND_PROGRESS": "0",
                "LABELMEND_LOGICAL_CPUS": str(logical_cpus)})
    r = subprocess.run([sys.executable, "-m", "labelmend", "--quiet", "train", "--data", str(tmp_path / "data"),
                        "--out", str(out), "--models", "model1,model2", "--epochs", "3", "--width", "4"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "retracing" not in r.stderr, r.stderr[-3000:]
    others = [line for line in r.stderr.splitlines() if not line.startswith("[labelmend] ")]
    assert not others, others[:5]  # a quiet run's log holds labelmend's lines only, not TensorFlow's start-up
    return json.loads((out / "run.json").read_text()), r.stderr


def test_mirrored_strategy_over_two_logical_cpus_trains_and_exports(tmp_path):
    """LABELMEND_LOGICAL_CPUS=2: MirroredStrategy over two CPU devices, the same step plan as one device (the global
    batch covers the tiny training set either way), a working bundle."""
    from labelmend.runtime import load

    w = factory.make_training_dir(tmp_path / "data", n=70, n_clean=30)
    one, _ = _train_cli(tmp_path, tmp_path / "run1", logical_cpus=0)
    two, _ = _train_cli(tmp_path, tmp_path / "run2", logical_cpus=2)
    assert one["distribution"] == {"strategy": "_DefaultDistributionStrategy", "replicas": 1, "workers": 1}
    assert two["distribution"] == {"strategy": "MirroredStrategy", "replicas": 2, "workers": 1}
    assert two["cnn_steps"] == one["cnn_steps"] == 3  # 64 training images, one global batch per epoch
    n_train = two["split"]["n_train_clean"] + two["n_images"] - two["split"]["n_train_clean"] - two["split"]["n_val"]
    batch = n_train - n_train % 2  # the global batch: every training image, less one to split it over 2 replicas
    for name in ("model1", "model2"):
        assert two["models"][name]["training"]["steps"] == 3
    # epochs: images shown / training images (Model II's stage B shows its clean images more often, in larger
    # batches on a set this small, so its epochs run ahead of its steps)
    hist1, hist2 = two["models"]["model1"]["training"]["history"]["all"], two["models"]["model2"]["training"]["history"]
    assert hist1["epoch"] == pytest.approx([s * batch / n_train for s in (1, 2, 3)], abs=1e-4)
    assert np.all(np.diff(hist2["A"]["epoch"] + hist2["B"]["epoch"]) > 0)  # one axis through both stages
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    r = subprocess.run([sys.executable, "-m", "labelmend", "--quiet", "export", "--run", str(tmp_path / "run2"),
                        "--bundle", str(tmp_path / "bundle")], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stderr == "", r.stderr[-3000:]
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    for name in ("model1", "model2"):
        assert manifest["models"][name]["export"]["parity_max_abs_diff"] < 1e-4
        proba = load(tmp_path / "bundle", name).predict_proba(w.images[:5])
        assert proba.shape == (5, 10) and np.allclose(proba.sum(1), 1, atol=1e-4)


_REPLICA_CHECK = """
import numpy as np
from labelmend.train.distribute import configure_tensorflow
configure_tensorflow(0)
from labelmend.train import cnn, distribute, loop
from labelmend.train.inputs import TrainingTargets
strategy = distribute.make_strategy()
assert strategy.num_replicas_in_sync == 2, strategy
trainer = loop.Trainer(hyp=cnn.hyperparameters(net={"width": 4}, opt={"batch_size": 16}), progress=False,
                       strategy=strategy)
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
model = trainer.model(10, images)
before = [v.numpy().copy() for v in model.trainable_variables]
trainer.fit(model, TrainingTargets(images, cnn.one_hot(rng.integers(0, 10, 64), 10), np.zeros(64, bool)), steps=4,
            name="t", desc="t")
moved = 0.0
for v, b in zip(model.trainable_variables, before):
    a, c = (x.numpy() for x in v.value.values)  # the two replicas' copies
    assert np.array_equal(a, c), v.name
    moved = max(moved, float(np.abs(a - b).max()))
assert moved > 0, "training did not change the weights"
print("replicas identical after training")
"""


def test_mirrored_replicas_stay_identical_so_gradients_are_all_reduced():
    """Each replica sees a different slice of the global batch: only an all-reduce keeps their weights equal."""
    env = {**os.environ, "LABELMEND_LOGICAL_CPUS": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
    r = subprocess.run([sys.executable, "-c", _REPLICA_CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "replicas identical" in r.stdout, r.stderr[-3000:]


def test_only_tensorflows_start_up_lines_are_held_back():
    from labelmend.cli import _TF_STARTUP_LINES

    startup = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
               "I0000 00:00:1796538365.533851    2342 port.cc:153] oneDNN custom operations are on. You may see "
               "slightly different numerical results due to floating-point round-off errors.\n"]
    others = ["W0000 00:00:1796538365.533851    2342 cpu_feature_guard.cc:210] This TensorFlow binary is optimized\n",
              "UserWarning: oneDNN custom operations are on\n", "[labelmend] model1: validation accuracy 0.25\n"]
    assert all(_TF_STARTUP_LINES.match(line) for line in startup)
    assert not any(_TF_STARTUP_LINES.match(line) for line in others)
