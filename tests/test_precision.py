"""Training arithmetic: bfloat16 only where the CPU computes it natively (or when asked), float32 otherwise; the
exported graph is float32 either way."""

import json

import _data_factory as factory
import numpy as np
import pytest

pytest.importorskip("tensorflow")
from labelmend.train import cnn  # noqa: E402


@pytest.mark.parametrize("flags, native", [("fpu avx512f avx512_bf16 sse", True), ("fpu amx_bf16", True),
                                           ("fpu avx2 avx512f", False), ("", False)])
def test_native_bf16_reads_the_cpu_flags(tmp_path, flags, native):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert cnn.native_bf16(str(info)) is native
    assert cnn.native_bf16(str(tmp_path / "missing")) is False


@pytest.mark.parametrize("native", [True, False])
def test_auto_uses_bfloat16_only_on_a_cpu_with_native_bf16_and_float32_forces_it_off(monkeypatch, native):
    monkeypatch.delenv(cnn.PRECISION_ENV, raising=False)
    monkeypatch.setattr(cnn, "native_bf16", lambda: native)
    assert cnn.dtype_policy("auto") == ("mixed_bfloat16" if native else "float32")
    assert cnn.dtype_policy("auto", device="gpu") == "float32"
    assert cnn.dtype_policy("float32") == "float32"          # the fallback, forced
    assert cnn.dtype_policy("bfloat16") == "mixed_bfloat16"
    with pytest.raises(ValueError, match="precision must be one of"):
        cnn.dtype_policy("fp8")
    monkeypatch.setenv(cnn.PRECISION_ENV, "float32")  # what auto means, e.g. for a test suite on a bf16 host
    assert cnn.dtype_policy("auto") == "float32" and cnn.dtype_policy("bfloat16") == "mixed_bfloat16"
    monkeypatch.setenv(cnn.PRECISION_ENV, "half")
    with pytest.raises(ValueError, match="LABELMEND_PRECISION"):
        cnn.dtype_policy("auto")


def test_a_bfloat16_network_keeps_float32_weights_and_logits_and_its_float32_copy_agrees():
    images = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3)).astype(np.uint8)
    model = cnn.make_model(images, n_classes=10, width=4, policy="mixed_bfloat16")
    assert model.get_layer("layer1_conv").compute_dtype == "bfloat16"
    assert all(w.dtype == np.float32 for w in model.get_weights())
    logits = model(images[:8].astype(np.float32))
    assert logits.dtype.name == "float32"
    copy = cnn.float32_copy(model)
    assert all(layer.dtype_policy.name == "float32" for layer in copy.layers)
    np.testing.assert_allclose(copy(images[:8].astype(np.float32)), logits, atol=0.05)  # bf16 rounding only
    float32 = cnn.make_model(images, n_classes=10, width=4)  # fused BatchNorm layers: a twin of Keras' own
    twin = cnn.float32_copy(float32)
    assert twin is not float32 and cnn.float32_copy(twin) is twin
    assert not any(isinstance(layer, cnn.fused_batch_norm()) for layer in twin.layers)
    np.testing.assert_allclose(twin(images[:8].astype(np.float32)), float32(images[:8].astype(np.float32)), atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_fused_batch_norm_trains_like_keras_batch_normalization(dtype):
    """Same outputs, gradients and moving statistics as Keras' unfused layer in a training pass, within the
    compute dtype's rounding; the fused one counts the unbiased batch variance (n / (n - 1)) into its moving one."""
    import keras
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(1).normal(3.0, 2.0, (16, 4, 4, 8)), tf.float32)
    layers = [cls(momentum=0.5, epsilon=1e-5, dtype=dtype) for cls in (keras.layers.BatchNormalization,
                                                                       cnn.fused_batch_norm())]
    outputs, grads = [], []
    for layer in layers:
        layer.build(x.shape)
        layer.gamma.assign(np.linspace(0.5, 2.0, 8))
        layer.beta.assign(np.linspace(-1.0, 1.0, 8))
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.range(8, dtype=tf.float32))
        outputs.append(tf.cast(y, tf.float32).numpy())
        grads.append([g.numpy() for g in tape.gradient(loss, [x, layer.gamma, layer.beta])])
    tol = 1e-4 if dtype == "float32" else 0.05
    np.testing.assert_allclose(outputs[1], outputs[0], atol=tol * 10)
    for fused, plain in zip(grads[1], grads[0]):
        np.testing.assert_allclose(fused, plain, atol=tol * 10, rtol=tol)
    n = 16 * 4 * 4
    np.testing.assert_allclose(layers[1].moving_mean.numpy(), layers[0].moving_mean.numpy(), atol=tol)
    np.testing.assert_allclose(layers[1].moving_variance.numpy() - 0.5,
                               (layers[0].moving_variance.numpy() - 0.5) * n / (n - 1), rtol=tol)


@pytest.mark.slow
@pytest.mark.parametrize("precision, policy", [("float32", "float32"), ("bfloat16", "mixed_bfloat16")])
def test_train_and_export_at_each_precision(tmp_path, monkeypatch, precision, policy):
    """The float32 fallback (policy forced off, even on a CPU with native bf16) and bfloat16 both train, record
    their policy, and export a float32 ONNX graph with parity."""
    from labelmend.export.bundle import export_bundle
    from labelmend.runtime import load
    from labelmend.train.pipeline import train

    monkeypatch.setenv("LABELMEND_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(cnn.PRECISION_ENV, raising=False)
    monkeypatch.setattr(cnn, "native_bf16", lambda: True)
    w = factory.make_training_dir(tmp_path / "data", n=60, n_clean=30)
    record = train(w.root, tmp_path / "run", models=["model1"], epochs=1, width=4, precision=precision,
                   progress=False)
    assert record.dtype_policy == policy == record.models["model1"].training["dtype_policy"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["hyperparameters"]["net"]["precision"] == precision
    import keras

    saved = keras.models.load_model(tmp_path / "run" / "model1.keras", compile=False)
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}  # trained in bf16, shipped in float32
    manifest = export_bundle(tmp_path / "run", tmp_path / "bundle", progress=False)
    assert manifest["models"]["model1"]["export"]["parity_max_abs_diff"] < 1e-4
    proba = load(tmp_path / "bundle", "model1").predict_proba(w.images[:4])
    assert proba.dtype == np.float32 and np.allclose(proba.sum(1), 1, atol=1e-4)


def test_a_bad_precision_setting_stops_train_in_one_line(tmp_path, monkeypatch, capsys):
    from labelmend.cli import main

    w = factory.make_training_dir(tmp_path / "data", n=20, n_clean=10)
    monkeypatch.setenv(cnn.PRECISION_ENV, "half")
    assert main(["train", "--data", str(w.root), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "LABELMEND_PRECISION" in err[0] and "'half'" in err[0]
    assert not (tmp_path / "run").exists()
