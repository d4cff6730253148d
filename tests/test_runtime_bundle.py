"""Loading refuses tampered, incomplete or mismatched bundles; the runtime imports nothing heavy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import _bundle_factory as factory  # noqa: E402  (tests/ is put on sys.path by conftest.py)
import labelmend.runtime as rt
import numpy as np
import pytest

from labelmend.errors import BundleError


@pytest.fixture
def bundle(tmp_path):
    """A fresh, valid bundle per test (tests modify it)."""
    return factory.make_bundle(tmp_path / "bundle").path


def test_fresh_bundle_loads(bundle):
    assert rt.load(bundle).model == "model2"
    assert rt.load(bundle, "baseline").model == "baseline"


# ---- tampering with files -------------------------------------------------------------------------------------------


def test_flipped_byte_in_model_is_refused(bundle):
    path = bundle / "model2.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model2\.onnx: SHA-256 .* does not match the manifest"):
        rt.load(bundle)


def test_tampered_other_model_refuses_whole_bundle(bundle):
    """read_manifest verifies every file: a bundle with any modified file is not trusted at all."""
    path = bundle / "baseline.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"baseline\.onnx: SHA-256"):
        rt.load(bundle, "model2")


def test_truncated_model_is_refused(bundle):
    path = bundle / "model2.onnx"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(BundleError, match=r"model2\.onnx: size \d+ bytes, manifest says \d+; the file is truncated"):
        rt.load(bundle)


def test_missing_model_is_refused(bundle):
    (bundle / "model2.onnx").unlink()
    with pytest.raises(BundleError, match=r"model2\.onnx: model file of 'model2' is missing"):
        rt.load(bundle)


def test_missing_manifest_is_refused(bundle):
    (bundle / "manifest.json").unlink()
    with pytest.raises(BundleError, match=r"manifest\.json: missing; this is not a labelmend bundle"):
        rt.load(bundle)


def test_missing_bundle_dir_is_refused(tmp_path):
    with pytest.raises(BundleError, match=r"bundle directory .*nope.* does not exist"):
        rt.load(tmp_path / "nope")


def test_non_onnx_content_with_matching_hash_is_refused(tmp_path):
    bundle = factory.make_bundle(tmp_path / "b", raw_bytes=b"this is not an onnx model").path
    with pytest.raises(BundleError, match=r"model2\.onnx: onnxruntime cannot load the model"):
        rt.load(bundle)


# ---- tampering with the manifest -----------------------------------------------------------------------------------


def _set(path: tuple, value):
    def edit(manifest):
        node = manifest
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


MANIFEST_EDITS = [
    ("other_sha", _set(("models", "model2", "sha256"), "0" * 64), r"model2\.onnx: SHA-256 .* does not match"),
    ("bad_sha_format", _set(("models", "model2", "sha256"), "xyz"), r"models\.model2\.sha256 must be 64 lowercase hex"),
    ("wrong_size", _set(("models", "model2", "size_bytes"), 5), r"model2\.onnx: size \d+ bytes, manifest says 5"),
    ("format_version", _set(("format_version",), 2), r"format_version 2 is not supported"),
    ("format", _set(("format",), "something-else"), r"'format' is 'something-else'"),
    ("unknown_preprocessing", _set(("models", "model2", "preprocessing"), "grayscale"),
     r"models\.model2\.preprocessing 'grayscale' is not one of \['raw_rgb', 'rgb_histogram'\]"),
    ("dotdot_file", _set(("models", "model2", "file"), "../model2.onnx"),
     r"models\.model2\.file '\.\./model2\.onnx' must be a plain '\.onnx' file name inside the bundle"),
    ("absolute_file", _set(("models", "model2", "file"), "/etc/passwd"), r"must be a plain '\.onnx' file name"),
    ("one_class_name", _set(("class_names",), ["a"]), r"'class_names' must be a list of 2 to 100 strings"),
    ("repeated_class_name", _set(("class_names",), ["a"] * 10), r"'class_names' has repeated names"),
    ("class_names_vs_output", _set(("class_names",), ["a", "b"]),
     r"models\.\w+\.output\.shape is \[None, 10\], expected \[None, 2\]"),
    ("default_model", _set(("default_model",), "model7"), r"'default_model' 'model7' is not one of"),
    ("input_shape", _set(("models", "model2", "input", "shape"), [None, 15]),
     r"models\.model2\.input\.shape is \[None, 15\], expected \[None, 32, 32, 3\]"),
    ("output_dtype", _set(("models", "model2", "output", "dtype"), "float64"), r"output\.dtype is 'float64'"),
]


@pytest.mark.parametrize(("edit", "match"), [e[1:] for e in MANIFEST_EDITS], ids=[e[0] for e in MANIFEST_EDITS])
def test_edited_manifest_is_refused(bundle, edit, match):
    factory.edit_manifest(bundle, edit)
    with pytest.raises(BundleError, match=match):
        rt.load(bundle)


def test_invalid_json_manifest_is_refused(bundle):
    path = bundle / "manifest.json"
    path.write_text(path.read_text()[:-20], encoding="utf-8")
    with pytest.raises(BundleError, match=r"manifest\.json: not valid JSON"):
        rt.load(bundle)


def test_manifest_swapped_preprocessing_is_caught_by_graph_check(bundle):
    """Declaring model2 a histogram model (with a consistent manifest) must fail on the graph, not at predict time."""

    def edit(manifest):
        spec = manifest["models"]["model2"]
        spec["preprocessing"] = "rgb_histogram"
        spec["input"]["shape"] = [None, 15]

    factory.edit_manifest(bundle, edit)
    with pytest.raises(BundleError, match=r"model2\.onnx: graph input 'images' has shape .* "
                                         r"manifest says \[None, 15\]"):
        rt.load(bundle)


# ---- the ONNX graph must match the manifest ----------------------------------------------------------------------


def test_graph_input_name_mismatch(tmp_path):
    bundle = factory.make_bundle(tmp_path / "b", raw_input_name="pixels").path
    with pytest.raises(BundleError, match=r"model2\.onnx: graph has no input named 'pixels' "
                                         r"\(graph inputs: \['images'\]\)"):
        rt.load(bundle)


def _bundle_with_raw_graph(tmp_path, **kwargs):
    _, data = factory.make_raw_model(**kwargs)
    return factory.make_bundle(tmp_path / "b", raw_bytes=data).path


def test_graph_output_name_mismatch(tmp_path):
    bundle = _bundle_with_raw_graph(tmp_path, output_name="probs")
    with pytest.raises(BundleError, match=r"model2\.onnx: graph has no output named 'probabilities'"):
        rt.load(bundle)


def test_graph_input_dtype_mismatch(tmp_path):
    from onnx import TensorProto

    bundle = _bundle_with_raw_graph(tmp_path, input_elem=TensorProto.DOUBLE)
    with pytest.raises(BundleError, match=r"model2\.onnx: graph input 'images' has type "
                                         r"tensor\(double\), manifest says float32"):
        rt.load(bundle)


def test_graph_fixed_batch_is_refused(tmp_path):
    bundle = _bundle_with_raw_graph(tmp_path, input_shape=(1, 32, 32, 3))
    with pytest.raises(BundleError, match=r"model2\.onnx: graph input 'images' has shape \[1, 32, 32, 3\]"):
        rt.load(bundle)


def test_graph_input_shape_mismatch(tmp_path):
    """A dimension the manifest fixes (3 channels) may not be symbolic in the graph."""
    bundle = _bundle_with_raw_graph(tmp_path, input_shape=("N", 32, 32, "C"))
    with pytest.raises(BundleError, match=r"has shape \['N', 32, 32, 'C'\], manifest says \[None, 32, 32, 3\]"):
        rt.load(bundle)


def test_file_swapped_after_verification_is_caught(bundle, monkeypatch):
    """The session is built from the very bytes that were hashed."""
    import labelmend.runtime.predictor as predictor_module

    real = predictor_module.read_manifest

    def read_then_swap(path):
        manifest = real(path)
        target = Path(path) / "model2.onnx"
        data = bytearray(target.read_bytes())
        data[40] ^= 0x10
        target.write_bytes(bytes(data))
        return manifest

    monkeypatch.setattr(predictor_module, "read_manifest", read_then_swap)
    with pytest.raises(BundleError, match=r"model2\.onnx: SHA-256 does not match the manifest"):
        rt.load(bundle)


# ---- the runtime stays light ----------------------------------------------------------------------------------------

FORBIDDEN = ["tensorflow", "sklearn", "cv2", "matplotlib", "labelmend.train", "labelmend.export", "keras", "torch",
             "onnx", "skl2onnx", "tf2onnx"]

CHILD = textwrap.dedent(
    """
    import json, sys, time
    sys.path[:] = {path!r}
    forbidden = {forbidden!r}
    t0 = time.perf_counter()
    import labelmend.runtime as rt
    import_s = time.perf_counter() - t0
    after_import = sorted(m for m in forbidden if m in sys.modules)
    ort_at_import = "onnxruntime" in sys.modules
    import numpy as np
    x = np.zeros((2, 32, 32, 3), np.uint8)
    labels = [rt.load({bundle!r}).predict(x[0]), rt.load({bundle!r}, "baseline").predict_batch(x).tolist()]
    labels.append(rt.predict(x[1], {bundle!r}))
    after_predict = sorted(m for m in forbidden if m in sys.modules)
    print(json.dumps(dict(import_s=import_s, after_import=after_import, after_predict=after_predict,
                          ort_at_import=ort_at_import, labels=labels)))
    """
)


def test_runtime_imports_nothing_heavy(bundle):
    code = CHILD.format(path=sys.path, forbidden=FORBIDDEN, bundle=str(bundle))
    env = {k: v for k, v in os.environ.items() if k != "LABELMEND_BUNDLE"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"import labelmend.runtime: {report['import_s'] * 1000:.0f} ms")
    assert report["after_import"] == [], report
    assert report["after_predict"] == [], report
    assert report["ort_at_import"] is False, "onnxruntime should be imported lazily, at the first Predictor"
    assert report["import_s"] < 2.0
    ref = factory.make_bundle(bundle)  # same content; gives the reference models
    x = np.zeros((2, 32, 32, 3), np.uint8)
    expected = [int(ref.raw.predict(x[:1])[0]), ref.baseline_predict(x).tolist(), int(ref.raw.predict(x[1:])[0])]
    assert report["labels"] == expected
