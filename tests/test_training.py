"""Tiny-scale TensorFlow training: the step budget, deadlines, seeding, Model I/II reports and export parity."""

import json
import time

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from labelmend.train import cnn, loop, noise  # noqa: E402
from labelmend.train.inputs import TrainingTargets  # noqa: E402
from labelmend.train.methods import forward_confident, noisy_ce  # noqa: E402
from labelmend.train.task import DEFAULT_VAL_FRACTION, Split, Task  # noqa: E402

from labelmend import benchmarking  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny():
    """96 images of 10 classes separable by colour, noisy labels 50 % symmetric, 40 clean."""
    rng = np.random.default_rng(0)
    y = np.arange(96) % 10
    images = rng.integers(0, 40, (96, 32, 32, 3)).astype(np.uint8)
    images[..., 0] += (y * 20)[:, None, None].astype(np.uint8)
    noisy = np.where(rng.random(96) < 0.5, rng.integers(0, 10, 96), y)
    return images, noisy, y


def _trainer(**kw):
    return loop.Trainer(hyp=cnn.hyperparameters(net={"width": 4}, opt={"batch_size": 32}), progress=False, **kw)


def _fit(images, labels, *, steps, trainer=None, val=None, forward=False):
    trainer = trainer or _trainer()
    model = trainer.model(10, images)
    data = TrainingTargets(images, cnn.one_hot(labels, 10), np.full(len(images), forward))
    return model, trainer.fit(model, data, steps=steps, name="test", desc="test", val=val)


def test_fit_runs_exact_steps_and_records_curves(tiny):
    images, noisy, y = tiny
    _, hist = _fit(images, noisy, steps=7, val=(images[:20], y[:20]))
    assert hist.steps == 7
    assert hist.epoch == pytest.approx([1, 2, 2 + 1 / 3], abs=1e-3)  # 96 images, batches of 32: 3 steps per epoch
    assert len(hist.val_acc) == 3 and all(0 <= a <= 1 for a in hist.val_acc)
    assert all(np.isfinite(hist.train_loss))


def test_deadline_stops_training_early(tiny):
    images, noisy, _ = tiny
    trainer = _trainer()
    model = trainer.model(10, images)  # built before the clock starts, as the pipeline does
    trainer.deadline = time.monotonic() + 8.0  # first-step tracing and tf.data set-up take 1-3 s of it
    data = TrainingTargets(images, cnn.one_hot(noisy, 10), np.zeros(len(images), bool))
    hist = trainer.fit(model, data, steps=1000, name="test", desc="test")
    assert hist.stopped_early
    assert 0 < hist.steps < 1000
    assert hist.progress == 1.0 and hist.final_lr < 0.1 * cnn.HYP["opt"]["lr"]  # annealed, not cut mid-schedule


def test_batches_are_seeded_resumable_and_cover_every_row(tiny):
    """Step s always gets the same rows; an epoch's worth of steps visits every row once."""
    from labelmend.train.inputs import Batches

    images, noisy, _ = tiny
    data = TrainingTargets(images, cnn.one_hot(noisy, 10), np.zeros(len(images), bool))
    batches = Batches(data, 32, seed=5)
    order = batches.order(6)
    np.testing.assert_array_equal(order, Batches(data, 32, seed=5).order(6))
    assert not np.array_equal(order, Batches(data, 32, seed=6).order(6))
    np.testing.assert_array_equal(np.sort(order[:3].ravel()), np.arange(96))
    np.testing.assert_array_equal(order[:4], batches.order(4))  # a shorter plan is a prefix: resume = skip


def test_augmentation_is_a_seeded_mirror_or_shift_of_each_image():
    import tensorflow as tf
    from labelmend.train.inputs import augment

    x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    seed = tf.constant([1, 2], tf.int64)
    a = augment(x, seed, flip=True, translate_px=2).numpy()
    np.testing.assert_array_equal(a, augment(x, seed, flip=True, translate_px=2).numpy())
    assert a.dtype == np.float32 and a.shape == x.shape
    for img, out in zip(x.astype(np.float32), a):  # the 32x28 centre of some shift (and maybe mirror) of the image
        candidates = [np.roll(np.roll(m, dy, 0), dx, 1)[2:-2, 2:-2] for m in (img, img[:, ::-1])
                      for dy in range(-2, 3) for dx in range(-2, 3)]
        assert any(np.array_equal(out[2:-2, 2:-2], c) for c in candidates)
    np.testing.assert_array_equal(augment(x, seed, flip=False, translate_px=0).numpy(), x.astype(np.float32))


def test_same_seed_same_weights(tiny):
    images, noisy, _ = tiny
    from labelmend.train.distribute import configure_tensorflow

    configure_tensorflow(0)
    weights = [_fit(images, noisy, steps=4, trainer=_trainer(seed=3))[0].get_weights() for _ in range(2)]
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_model1_and_model2_share_the_step_budget(tiny):
    images, noisy, y = tiny
    task = Task(images, noisy, y[:40], Split.make(40, val_fraction=0.25, seed=0))
    _, r1 = noisy_ce.train(task, _trainer(), steps=9)
    cross_fit = {**forward_confident.HYP, "cross_fit_epochs": 0}  # two stage A networks at any budget
    _, r2 = forward_confident.train(task, _trainer(), steps=9, hyp_noise=cross_fit)
    assert r1["steps"] == r2["steps"] == 9
    assert set(r2["history"]) == {"A", "A2", "B"}
    per_fold = round(9 * cross_fit["stage_a_frac"] / 2)  # stage A's share, split between the two networks
    assert [r2["history"][s]["steps"] for s in ("A", "A2", "B")] == [per_fold, per_fold, 9 - 2 * per_fold]
    assert per_fold > 0 and 9 - 2 * per_fold > 0
    # one meaning of epoch (passes over the 86 training images) although Model II repeats its clean images
    # the same x-axis (each stage rounds its epochs to 4 decimals, so the sum may differ in the last one)
    assert r1["history"]["all"]["epoch"][-1] == pytest.approx(r2["history"]["B"]["epoch"][-1], abs=2e-4)
    assert r2["history"]["B"]["epoch"][0] > r2["history"]["A2"]["epoch"][-1] > r2["history"]["A"]["epoch"][-1]
    assert r2["label_issues"]["folds"] == 2
    _, short = forward_confident.train(task, _trainer(), steps=9)  # a few epochs: one network judges its labels
    assert set(short["history"]) == {"A", "B"} and short["label_issues"]["folds"] == 1
    with_pairs = {**cross_fit, "min_trusted_per_class": 1}  # T counted from the 30 pairs: T-based flags
    _, paired = forward_confident.train(task, _trainer(), steps=9, hyp_noise=with_pairs)
    assert paired["label_issues"]["folds"] == 2
    lc = r2["label_correction"]
    assert lc["n"] == 10 and 0 <= lc["corrected_label_accuracy"] <= 1
    assert np.allclose(np.sum(r2["transition_matrix"], axis=1), 1.0)


def test_pipeline_respects_time_budget_and_exports_with_parity(tmp_path, monkeypatch, capfd):
    """Whole train command on a tiny generated folder under a 60 s budget, then export + runtime parity."""
    import cv2
    from labelmend.train import budget as planning

    monkeypatch.setenv("LABELMEND_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(planning, "REPLAN_STEPS", 5)  # model1 plans the steps again early, from its own pace
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    n = 80
    labels = rng.integers(0, 10, n)
    for i in range(n):
        cv2.imwrite(str(root / "images" / f"{i + 1:05d}.png"), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    (root / "noisy_labels.csv").write_text("\n".join(map(str, labels)) + "\n")
    (root / "clean_labels.csv").write_text("\n".join(map(str, labels[:30])) + "\n")

    from labelmend.export.bundle import export_bundle
    from labelmend.runtime import load
    from labelmend.train.pipeline import train

    budget = 60.0
    t0 = time.monotonic()
    record = train(root, tmp_path / "run", time_budget_s=budget, width=4, progress=False)
    elapsed = time.monotonic() - t0
    assert elapsed <= budget * 1.1, f"train took {elapsed:.1f} s for a {budget:.0f} s budget"
    m1, m2 = record.models["model1"], record.models["model2"]
    assert "steps each instead of" in capfd.readouterr().err  # the re-plan happened and said so
    for m in (m1, m2):  # each gets the (re-planned) steps unless its time slot ran out first (then it says so)
        assert m.training["steps"] == record.cnn_steps or m.training["stopped_early"]
        assert m.training["planned_steps"] == record.cnn_steps
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert saved["split"]["n_val"] == round(30 * DEFAULT_VAL_FRACTION) == 3
    for png in ("curves_model1.png", "curves_model2.png", "transition_matrix_model2.png"):
        assert (tmp_path / "run" / "reports" / png).stat().st_size > 1000
    (comparison,) = saved["comparisons"]  # model2 vs model1, image by image on the 3 validation images
    assert (comparison["model"], comparison["versus"], comparison["n"]) == ("model2", "model1", 3)
    assert comparison["difference"] == pytest.approx(m2.validation["accuracy"] - m1.validation["accuracy"])
    assert "What weak supervision added: model2 vs model1" in (tmp_path / "run" / "reports" / "report.md").read_text()

    manifest = export_bundle(tmp_path / "run", tmp_path / "bundle", progress=False)
    assert manifest["default_model"] == "model2"
    assert all("predicted" not in m["validation"] for m in manifest["models"].values())  # run.json keeps them
    import keras

    images = np.load(tmp_path / "run" / "parity_images.npy")
    for name in ("model1", "model2"):
        keras_model = keras.models.load_model(tmp_path / "run" / f"{name}.keras", compile=False)
        expected = cnn.predict_proba(keras_model, images)
        got = load(tmp_path / "bundle", name).predict_proba(images)
        assert np.abs(expected - got).max() < 1e-4
        assert manifest["models"][name]["export"]["parity_max_abs_diff"] < 1e-4


def test_export_without_tta_matches_single_pass_model(tmp_path, monkeypatch):
    """`labelmend export --no-tta`: one network pass per image, parity with the Keras model's plain softmax."""
    import keras
    from labelmend.export.bundle import export_bundle
    from labelmend.runtime import load
    from labelmend.train.pipeline import train

    monkeypatch.setenv("LABELMEND_CACHE", str(tmp_path / "cache"))
    import cv2

    rng = np.random.default_rng(1)
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    for i in range(40):
        cv2.imwrite(str(root / "images" / f"{i + 1:05d}.png"), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    labels = rng.integers(0, 10, 40)
    (root / "noisy_labels.csv").write_text("\n".join(map(str, labels)) + "\n")
    (root / "clean_labels.csv").write_text("\n".join(map(str, labels[:20])) + "\n")
    train(root, tmp_path / "run", models=["model2"], epochs=2, width=4, progress=False)
    manifest = export_bundle(tmp_path / "run", tmp_path / "bundle", flip_tta=False, progress=False)
    spec = manifest["models"]["model2"]
    assert spec["export"]["flip_tta"] is False
    assert "flip_tta=True" in spec["validation"]["note"]  # the run's figure was measured with TTA: say so
    images = np.load(tmp_path / "run" / "parity_images.npy")
    keras_model = keras.models.load_model(tmp_path / "run" / "model2.keras", compile=False)
    expected = cnn.predict_proba(keras_model, images, flip_tta=False)
    assert np.abs(load(tmp_path / "bundle").predict_proba(images) - expected).max() < 1e-4


class _SteppingClock:
    """A fake clock that advances ``cost`` seconds per reading: fit reads it about once per step."""

    def __init__(self, cost):
        self.t, self.cost = 0.0, cost

    def __call__(self):
        self.t += self.cost
        return self.t


@pytest.mark.parametrize("asked, trained", [(17, 17), (6, 6), (2, 6), (100, 20)])
def test_a_replan_stretches_or_shrinks_the_schedule_once(tiny, monkeypatch, asked, trained):
    """The first whole-cycle fit asks the replan once, after REPLAN_STEPS timed steps, with their pace; it then
    trains what the replan says (at least one step more than done, at most REPLAN_MAX_GROWTH × planned) and still
    ends annealed. Later fits, and stages of a longer cycle, are not asked."""
    from labelmend.train import budget

    monkeypatch.setattr(budget, "REPLAN_STEPS", 2)
    calls = []

    def replan(done, seconds_per_step):
        calls.append((done, seconds_per_step))
        return asked

    images, noisy, _ = tiny
    trainer = _trainer(replan=replan)
    model = trainer.model(10, images)
    data = TrainingTargets(images, cnn.one_hot(noisy, 10), np.zeros(len(images), bool))
    trainer.fit(model, data, steps=4, name="stage", desc="test", cycle=(0.0, 0.5))  # a stage: not asked
    assert calls == [] and trainer.replan is replan
    hist = trainer.fit(model, data, steps=10, name="whole", desc="test")
    assert [done for done, _ in calls] == [loop.WARM_UP_STEPS + 2] and calls[0][1] > 0
    assert hist.steps == hist.planned_steps == trained and not hist.stopped_early
    peak, warmup = cnn.HYP["opt"]["lr"], cnn.HYP["opt"]["warmup_frac"]
    assert hist.progress == 1.0  # the last step ran at progress (trained - 1) / trained of the stretched schedule
    assert hist.final_lr == pytest.approx(peak * (1 / trained) / (1 - warmup))
    assert trainer.replan is None
    assert trainer.fit(model, data, steps=4, name="later", desc="test").steps == 4 and len(calls) == 1


@pytest.mark.parametrize("slowdown", [1.0, 1.5, 3.0])
def test_a_slowed_machine_still_ends_annealed_within_its_deadline(tiny, slowdown):
    """Planned steps fit the deadline at speed 1; slower machines stop earlier, but with the learning rate at ~0."""
    images, noisy, _ = tiny
    clock = _SteppingClock(slowdown)
    _, hist = _fit(images, noisy, steps=20, trainer=_trainer(deadline=25.0, clock=clock))
    peak = cnn.HYP["opt"]["lr"]
    assert hist.progress == 1.0
    assert hist.final_lr <= 0.15 * peak, hist.lr
    assert clock.t <= 25.0 + 3 * slowdown  # ended at its deadline, give or take the last step and its epoch end
    if slowdown == 1.0:
        assert hist.steps == 20 and not hist.stopped_early
    else:
        assert hist.steps < 20 and hist.stopped_early


def test_tensorflow_forward_corrected_loss_equals_the_numpy_forward_correction():
    """The loss training uses: -log((softmax @ T)[ỹ]) for noisy targets, -log(softmax[y]) for direct ones. A
    transposed T (or no T) gives other numbers, so this fails if the TF loss ever drifts from noise.py."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    k = 5
    t = benchmarking.pair_flip(k, 0.4) * 0.8 + 0.2 / k  # far from symmetric, so T and T.T differ
    logits = rng.normal(size=(16, k)).astype(np.float32)
    labels = rng.integers(0, k, 16)
    forward = np.arange(16) % 2 == 0
    got = forward_confident.forward_corrected_cross_entropy(t)(tf.constant(logits), tf.constant(cnn.one_hot(labels, k)),
                                                  tf.constant(forward)).numpy()
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    q = np.where(forward[:, None], noise.forward_corrected(p, t), p)
    expected = -np.log(q[np.arange(16), labels] + 1e-7)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    wrong = -np.log(np.where(forward[:, None], p @ t.T, p)[np.arange(16), labels] + 1e-7)
    assert np.abs(got - wrong).max() > 1e-2


def test_int8_export_records_its_accuracy_change_and_refuses_a_drop_beyond_the_limit(tmp_path, monkeypatch):
    """`labelmend export --int8`: quantized CNN graphs, scored against float32 on the run's validation images."""
    import _data_factory as factory
    from labelmend.export.bundle import export_bundle
    from labelmend.export.onnx_models import ExportError
    from labelmend.runtime import load
    from labelmend.train.pipeline import train

    monkeypatch.setenv("LABELMEND_CACHE", str(tmp_path / "cache"))
    w = factory.make_training_dir(tmp_path / "data", n=60, n_clean=30)
    train(w.root, tmp_path / "run", models=["model2"], epochs=1, width=4, val_fraction=0.2, progress=False)
    manifest = export_bundle(tmp_path / "run", tmp_path / "bundle", int8=True, int8_max_drop=1.0, progress=False)
    q = manifest["models"]["model2"]["export"]["quantization"]
    assert q["validation_images"] == 6 and q["calibration_images"] == 54
    assert q["size_bytes_int8"] < q["size_bytes_fp32"]
    assert q["accuracy_drop"] == pytest.approx(q["val_accuracy_fp32"] - q["val_accuracy_int8"])
    assert manifest["models"]["model2"]["validation"]["accuracy"] == q["val_accuracy_int8"]
    predictor = load(tmp_path / "bundle")
    proba = predictor.predict_proba(w.images[:8])
    assert proba.shape == (8, 10) and np.allclose(proba.sum(1), 1, atol=1e-3)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ExportError, match=r"model2: int8 validation accuracy .* below float32"):
        export_bundle(tmp_path / "run", tmp_path / "refused", int8=True, int8_max_drop=-1.0, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-written


def test_whitening_filters_decorrelate_patches_and_stay_frozen(tiny):
    """The first layer's 2x2 filters give unit-variance, uncorrelated responses on the images they came from, come
    in ± pairs, and training never changes them."""
    images, noisy, _ = tiny
    w = cnn.whitening_filters(images, 16, max_images=96, eps=1e-12)
    assert w.shape == (2, 2, 3, 16)
    np.testing.assert_array_equal(w[..., 8:], -w[..., :8])
    x = images.astype(np.float32) / 127.5 - 1.0
    patches = np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
    responses = patches.reshape(-1, 12) @ w.reshape(12, 16)[:, :8]
    cov = np.cov(responses, rowvar=False)
    np.testing.assert_allclose(np.diag(cov), 1.0, rtol=1e-3)
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 1e-3
    with pytest.raises(ValueError, match="even"):
        cnn.whitening_filters(images, 15)
    trainer = _trainer()
    model = trainer.model(10, images)
    before = model.get_layer("prep_conv").kernel.numpy().copy()
    np.testing.assert_allclose(before, cnn.whitening_filters(images, 4), rtol=1e-6)
    trainer.fit(model, TrainingTargets(images, cnn.one_hot(noisy, 10), np.zeros(len(images), bool)), steps=3,
                name="t", desc="t")
    np.testing.assert_array_equal(model.get_layer("prep_conv").kernel.numpy(), before)


def test_dirac_init_makes_each_conv_an_identity_on_its_first_channels(tiny):
    model = cnn.make_model(tiny[0], n_classes=10, width=4)
    for name in ("layer1_conv", "res1a_conv", "res3b_conv"):
        k = model.get_layer(name).kernel.numpy()
        c_in = k.shape[2]
        np.testing.assert_array_equal(k[1, 1, :, :c_in], np.eye(c_in))
        assert not k[:, :, :, :c_in].sum() - c_in  # zero elsewhere in those filters
        if k.shape[3] > c_in:
            assert np.abs(k[:, :, :, c_in:]).sum() > 0  # the other filters stay random


def test_a_stage_can_run_part_of_a_learning_rate_cycle(tiny):
    """cycle=(0, 0.5) stops at the schedule's midpoint (LR still high); (0.5, 1) starts there and anneals to 0."""
    images, noisy, _ = tiny
    peak = cnn.HYP["opt"]["lr"]
    trainer = _trainer()
    model = trainer.model(10, images)
    data = TrainingTargets(images, cnn.one_hot(noisy, 10), np.zeros(len(images), bool))
    first = trainer.fit(model, data, steps=10, name="a", desc="a", cycle=(0.0, 0.5))
    second = trainer.fit(model, data, steps=10, name="b", desc="b", cycle=(0.5, 1.0))
    assert first.lr[0] > 0 and first.final_lr > 0.5 * peak
    assert second.lr[0] <= peak * 0.62 and second.final_lr < 0.1 * peak


@pytest.mark.parametrize("width, n_whiten", [(64, 24), (5, 4), (1, 2)])
def test_whitening_layer_fits_any_width(tiny, width, n_whiten):
    """GPU width 64 gets airbench's 24 filters (all 12 patch dimensions, ±); odd or tiny widths an even number."""
    images, _, _ = tiny
    model = cnn.make_model(images, n_classes=10, width=width)
    assert model.get_layer("prep_conv").kernel.shape == (2, 2, 3, n_whiten)
    assert model(images[:2].astype(np.float32)).shape == (2, 10)


def test_confident_learning_never_flags_a_trusted_label_and_keeps_mostly_right_noisy_ones():
    rng = np.random.default_rng(0)
    k, n = 4, 400
    y = rng.integers(0, k, n)
    noisy = np.where(rng.random(n) < 0.3, (y + 1) % k, y)
    probs = 0.7 * np.eye(k)[y] + 0.3 * rng.dirichlet(np.ones(k), n)  # a classifier of y, mostly right
    is_trusted = np.arange(n) < 50
    flagged, corrected, confident = forward_confident.flag_noisy_labels(
        probs, noisy, benchmarking.pair_flip(k, 0.3), is_trusted=is_trusted)
    assert not flagged[is_trusted].any()
    assert 0.05 < flagged.mean() < 0.5  # the flipped labels go, most of the rest stay
    assert np.mean(noisy[~flagged] == y[~flagged]) > 0.95
    np.testing.assert_array_equal(corrected[~flagged], noisy[~flagged])
    np.testing.assert_array_equal(corrected[flagged], confident[flagged])
    assert np.all((confident >= -1) & (confident < k))
    assert np.mean(corrected == y) > np.mean(noisy == y) + 0.2


def test_each_noisy_label_is_judged_by_the_networks_that_did_not_train_on_it():
    rng = np.random.default_rng(0)
    n, k, folds = 30, 3, 3
    fold = rng.integers(-1, folds, n)  # -1: clean or validation image, in no fold
    fold_probs = [rng.dirichlet(np.ones(k), n) for _ in range(folds)]
    probs = forward_confident.out_of_fold(fold_probs, fold)
    for i in range(n):
        others = [p[i] for f, p in enumerate(fold_probs) if f != fold[i]]  # all of them where fold[i] = -1
        np.testing.assert_allclose(probs[i], np.mean(others, axis=0))
    assert forward_confident.out_of_fold(fold_probs[:1], fold) is fold_probs[0]
