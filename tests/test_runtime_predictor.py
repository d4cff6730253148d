"""labelmend.runtime.Predictor / load / predict against real (tiny) bundles built by tests/_bundle_factory.py."""

from __future__ import annotations

import sys
import threading

import labelmend.runtime as rt
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from labelmend.runtime import predictor as predictor_module

from labelmend.errors import InputError, InputTypeError, MissingDependencyError

CUDA = "CUDAExecutionProvider"


import _bundle_factory as factory  # noqa: E402  (tests/ is put on sys.path by conftest.py)
import _data_factory  # noqa: E402


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    return factory.make_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def model2(ref):
    return rt.load(ref.path)


@pytest.fixture(scope="module")
def baseline(ref):
    return rt.load(ref.path, "baseline", device="cpu", threads=1)


@pytest.fixture(scope="module")
def images():
    return factory.random_images(200, seed=7)


# ---- loading --------------------------------------------------------------------------------------------------------


def test_default_model_is_manifest_default(model2, ref):
    assert model2.model == "model2"
    assert model2.class_names == tuple(_data_factory.CLASS_NAMES) and model2.n_classes == 10
    assert model2.manifest == ref.manifest["models"]["model2"]
    assert model2.preprocessing == "raw_rgb"
    assert "CPUExecutionProvider" in model2.providers
    assert "model2" in repr(model2)


def test_predictor_class_equals_load(ref):
    p = rt.Predictor(ref.path, "baseline", device="CPU")
    assert p.model == "baseline" and p.preprocessing == "rgb_histogram"
    assert p.providers == ("CPUExecutionProvider",)


def test_unknown_model_lists_available(ref):
    with pytest.raises(ValueError, match=r"model 'model9' is not in the bundle .*available: \['baseline', 'model2'\]"):
        rt.load(ref.path, "model9")


def test_model_name_must_be_str(ref):
    with pytest.raises(TypeError, match="model must be a model name"):
        rt.load(ref.path, 2)


@pytest.mark.parametrize("device", ["bogus", "gpu", "", None, 0])
def test_bad_device_is_value_error(ref, device):
    with pytest.raises(ValueError, match=r"device must be one of \('auto', 'cpu', 'cuda'\)"):
        rt.load(ref.path, device=device)


def test_cuda_without_provider_is_clear_error(ref, monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(RuntimeError, match=r"device='cuda' requested but onnxruntime has no CUDAExecutionProvider.*"
                                           r"install onnxruntime-gpu"):
        rt.load(ref.path, device="cuda")


ORT_MISSING = "onnxruntime is not installed: pip install 'labelmend[cpu]' (or [gpu] on a CUDA machine)"


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda"])
def test_missing_onnxruntime_names_the_extra(ref, monkeypatch, device):
    """The base install ships no onnxruntime (the cpu / gpu extras pick one): loading then says what to install."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ModuleNotFoundError
    with pytest.raises(ImportError) as info:
        rt.load(ref.path, device=device)
    assert str(info.value) == ORT_MISSING
    assert isinstance(info.value, MissingDependencyError) and info.value.name == "onnxruntime"
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_incomplete_onnxruntime_says_reinstall_one(ref, monkeypatch):
    """Installing onnxruntime and onnxruntime-gpu together, then removing one, leaves a half `onnxruntime` folder."""
    import builtins

    def broken():
        raise ModuleNotFoundError("No module named 'onnxruntime.capi'", name="onnxruntime.capi")

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__",
                        lambda name, *a, **k: broken() if name == "onnxruntime" else real_import(name, *a, **k))
    with pytest.raises(MissingDependencyError, match=r"^onnxruntime is installed but incomplete "
                                                     r"\(no onnxruntime\.capi\): pip uninstall -y onnxruntime "
                                                     r"onnxruntime-gpu, then pip install 'labelmend\[cpu\]'"):
        rt.load(ref.path)


def test_auto_without_cuda_uses_cpu(ref, monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    p = rt.load(ref.path, device="auto")
    assert p.providers == ("CPUExecutionProvider",) and p.device == "cpu"


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider' is not in available provider names")
def test_cuda_listed_but_session_falls_back_is_error(ref, monkeypatch):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("a real CUDA provider is installed")
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA, "CPUExecutionProvider"])
    with pytest.raises(RuntimeError, match=r"device='cuda' requested but the onnxruntime session runs on "
                                           r"\['CPUExecutionProvider'\]"):
        rt.load(ref.path, device="cuda")


def _cuda_session_fails(monkeypatch):
    """Simulate onnxruntime-gpu without a usable CUDA: the provider is listed, but a CUDA session cannot start."""
    import onnxruntime

    real = onnxruntime.InferenceSession

    def session(data, sess_options=None, providers=None):
        names = [p[0] if isinstance(p, tuple) else p for p in providers or []]
        if "CUDAExecutionProvider" in names:
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
        return real(data, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA, "CPUExecutionProvider"])
    monkeypatch.setattr(onnxruntime, "InferenceSession", session)


def test_auto_falls_back_to_cpu_when_cuda_session_fails(ref, images, monkeypatch):
    _cuda_session_fails(monkeypatch)
    p = rt.load(ref.path, device="auto")
    assert p.providers == ("CPUExecutionProvider",) and p.device == "cpu"
    np.testing.assert_array_equal(p.predict_batch(images[:5]), ref.raw.predict(images[:5]))


def test_cuda_session_failure_is_runtime_error_not_bundle_error(ref, monkeypatch):
    _cuda_session_fails(monkeypatch)
    with pytest.raises(RuntimeError, match=r"device='cuda' requested but onnxruntime could not start a CUDA session "
                                           r"\(RuntimeError: CUDA failure 100"):
        rt.load(ref.path, device="cuda")


@pytest.mark.skipif(
    "CUDAExecutionProvider" not in __import__("onnxruntime").get_available_providers(), reason="needs onnxruntime-gpu"
)
def test_cuda_matches_cpu(ref, images):  # pragma: no cover - runs only where onnxruntime-gpu is installed
    gpu = rt.load(ref.path, device="cuda")
    assert gpu.providers[0] == "CUDAExecutionProvider"
    cpu = rt.load(ref.path, device="cpu")
    np.testing.assert_allclose(gpu.predict_proba(images), cpu.predict_proba(images), atol=1e-4)


@pytest.mark.parametrize("threads", [0, -1])
def test_threads_must_be_positive(ref, threads):
    with pytest.raises(ValueError, match="threads must be a positive int"):
        rt.load(ref.path, threads=threads)


@pytest.mark.parametrize("threads", ["2", 2.0, True])
def test_threads_must_be_int(ref, threads):
    with pytest.raises(TypeError, match="threads must be a positive int"):
        rt.load(ref.path, threads=threads)


def test_threads_one_works(ref, images):
    p = rt.load(ref.path, threads=1)
    np.testing.assert_array_equal(p.predict_batch(images[:10]), ref.raw.predict(images[:10]))


# ---- parity with the reference implementations -------------------------------------------------------------------


def test_model2_matches_numpy(model2, ref, images):
    np.testing.assert_array_equal(model2.predict_batch(images), ref.raw.predict(images))
    np.testing.assert_allclose(model2.predict_proba(images), ref.raw.proba(images), atol=1e-5)
    assert len(set(model2.predict_batch(images).tolist())) >= 3, "the test model should not be constant"


def test_baseline_matches_sklearn(baseline, ref, images):
    np.testing.assert_array_equal(baseline.predict_batch(images), ref.baseline_predict(images))
    np.testing.assert_allclose(baseline.predict_proba(images), ref.baseline_proba(images), atol=1e-5)


@pytest.mark.parametrize("which", ["model2", "baseline"])
def test_batch_equals_loop_of_singles(ref, images, which):
    p = rt.load(ref.path, which)
    singles = [p.predict(img) for img in images[:60]]
    assert all(type(s) is int for s in singles)
    assert p.predict_batch(images[:60]).tolist() == singles
    assert [p(img) for img in images[:10]] == singles[:10], "__call__ is predict"


@pytest.mark.parametrize("which", ["model2", "baseline"])
def test_predict_proba_shapes_and_sums(ref, images, which):
    p = rt.load(ref.path, which)
    one = p.predict_proba(images[0])
    many = p.predict_proba(images[:20])
    assert one.shape == (10,) and one.dtype == np.float32
    assert many.shape == (20, 10) and many.dtype == np.float32
    np.testing.assert_allclose(many.sum(axis=1), 1.0, atol=1e-5)
    assert ((many >= 0) & (many <= 1)).all()
    np.testing.assert_allclose(one, many[0], atol=1e-6)
    assert p.predict(images[0]) == int(np.argmax(one))


def test_predict_batch_dtype_and_empty(model2, baseline):
    for p in (model2, baseline):
        out = p.predict_batch(np.zeros((0, 32, 32, 3), np.uint8))
        assert out.shape == (0,) and out.dtype == np.int64
        assert p.predict_proba(np.zeros((0, 32, 32, 3))).shape == (0, 10)
        labels = p.predict_batch(np.zeros((3, 32, 32, 3), np.uint8))
        assert labels.dtype == np.int64 and labels.shape == (3,)


def test_predict_names(model2, images):
    names = model2.predict_names(images[:5])
    assert names == [_data_factory.CLASS_NAMES[i] for i in model2.predict_batch(images[:5])]
    assert model2.predict_names(images[0]) == names[0]


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float16, np.float32, np.float64])
def test_dtypes_give_same_predictions(model2, baseline, images, dtype):
    x = images[:20]
    for p in (model2, baseline):
        np.testing.assert_array_equal(p.predict_batch(x.astype(dtype)), p.predict_batch(x))


def test_chunking_gives_same_result(model2, baseline, images, monkeypatch):
    expected = {p.model: p.predict_proba(images) for p in (model2, baseline)}
    monkeypatch.setattr(predictor_module, "CHUNK", 7)
    for p in (model2, baseline):
        np.testing.assert_allclose(p.predict_proba(images), expected[p.model], atol=1e-6)


def test_non_contiguous_read_only_input_not_modified(model2, images):
    x = np.ascontiguousarray(images[:8, ::-1].astype(np.float32))  # a copy we can freeze
    view = x[:, :, ::-1]
    before = x.copy()
    x.flags.writeable = False
    np.testing.assert_array_equal(model2.predict_batch(view), model2.predict_batch(np.ascontiguousarray(view)))
    model2.predict(x[0])
    model2.predict_proba(x)
    np.testing.assert_array_equal(x, before)


# ---- the entry points validate, naming their parameter -------------------------------------------------------------


def test_predict_rejects_batch(model2, images):
    with pytest.raises(InputError, match=r"^image: .*use predict_batch\(\)"):
        model2.predict(images[:2])


def test_predict_batch_rejects_single_image(model2, images):
    with pytest.raises(InputError, match=r"^images: .*single image.*use predict\(\) for one image, or add a batch "):
        model2.predict_batch(images[0])


def test_predict_proba_rejects_bad_range(model2):
    with pytest.raises(InputError, match=r"^images: .*multiply by 255"):
        model2.predict_proba(np.full((32, 32, 3), -0.1))


def test_entry_points_reject_wrong_types(model2):
    for call in (model2.predict, model2.predict_batch, model2.predict_proba, model2):
        with pytest.raises(InputTypeError):
            call(None)
        with pytest.raises(InputTypeError):
            call(np.zeros((32, 32, 3), bool))


# ---- concurrency ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["model2", "baseline"])
def test_threads_share_one_predictor(ref, images, which):
    p = rt.load(ref.path, which)
    serial = [p.predict(img) for img in images]
    serial_batch = p.predict_batch(images)
    results: dict[int, list] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(k: int) -> None:
        try:
            start.wait()
            order = np.random.default_rng(k).permutation(len(images))
            got = {int(i): p.predict(images[i]) for i in order}
            results[k] = [got[i] for i in range(len(images))]
            np.testing.assert_array_equal(p.predict_batch(images), serial_batch)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(results[k] == serial for k in range(4))


# ---- module-level predict ------------------------------------------------------------------------------------------


def test_module_predict_with_path_and_cache(ref, images, model2):
    predictor_module._cache.clear()
    assert rt.predict(images[0], ref.path) == model2.predict(images[0])
    assert rt.predict(images[1], str(ref.path)) == model2.predict(images[1])
    assert len(predictor_module._cache) == 1, "the Predictor is created once and reused"
    assert rt.predict(images[0], ref.path, model="baseline") == rt.load(ref.path, "baseline").predict(images[0])


def test_module_predict_uses_env(ref, images, model2, monkeypatch):
    monkeypatch.setenv(rt.BUNDLE_ENV, str(ref.path))
    assert rt.predict(images[3]) == model2.predict(images[3])


def test_module_predict_without_bundle_is_clear_error(monkeypatch):
    monkeypatch.delenv(rt.BUNDLE_ENV, raising=False)
    with pytest.raises(ValueError, match=r"no bundle given: pass bundle_dir=\.\.\. or set the environment variable "
                                         r"LABELMEND_BUNDLE"):
        rt.predict(np.zeros((32, 32, 3), np.uint8))


# ---- properties -----------------------------------------------------------------------------------------------------


@st.composite
def valid_batches(draw):
    n = draw(st.integers(0, 6))
    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.int64, np.float16, np.float32, np.float64]))
    kind = draw(st.sampled_from(["random", "constant", "extremes", "fractional"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "random":
        x = rng.integers(0, 256, size=(n, 32, 32, 3))
    elif kind == "constant":
        x = np.full((n, 32, 32, 3), draw(st.integers(0, 255)))
    elif kind == "extremes":
        x = rng.choice([0, 255], size=(n, 32, 32, 3))
    else:
        x = rng.uniform(0, 255, size=(n, 32, 32, 3))
        dtype = np.float32 if dtype not in (np.float32, np.float64) else dtype
    return x.astype(dtype)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=valid_batches())
def test_property_batch_equals_singles(model2, baseline, batch):
    for p in (model2, baseline):
        labels = p.predict_batch(batch)
        assert labels.dtype == np.int64 and labels.shape == (len(batch),)
        assert labels.tolist() == [p.predict(img) for img in batch]
        assert ((labels >= 0) & (labels < 10)).all()


_ANY_SHAPE = st.sampled_from([(), (3,), (32, 32), (32, 32, 3), (1, 32, 32, 3), (2, 32, 32, 3), (0, 32, 32, 3),
                              (3, 32, 32), (32, 32, 4), (2, 2, 32, 32, 3), (0,), (31, 32, 3)])
_ANY_DTYPE = st.sampled_from([np.uint8, np.int8, np.int64, np.uint64, np.float16, np.float32, np.float64, bool,
                              complex, object, "datetime64[s]", "U3"])
_ANY_VALUE = st.sampled_from([0, 1, 255, 256, -1, 0.5, np.nan, np.inf, -np.inf, 1e40])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=_ANY_SHAPE, dtype=_ANY_DTYPE, fill=_ANY_VALUE, poke=_ANY_VALUE, method=st.sampled_from(
    ["predict", "predict_batch", "predict_proba", "__call__"]))
def test_property_anything_else_is_value_or_type_error(model2, baseline, shape, dtype, fill, poke, method):
    try:
        with np.errstate(all="ignore"):
            x = np.full(shape, fill).astype(dtype)
            if x.size:
                x.flat[x.size // 2] = poke
    except (ValueError, TypeError, OverflowError):
        return  # numpy itself cannot build this array
    for p in (model2, baseline):
        try:
            out = getattr(p, method)(x)
        except (InputError, InputTypeError):
            continue
        assert np.all(np.isfinite(out))
