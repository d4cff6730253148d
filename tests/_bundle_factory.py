"""Build real, small labelmend bundles for the runtime tests (needs onnx, skl2onnx, scikit-learn; the runtime doesn't).

``make_bundle(dir)`` writes ``baseline.onnx`` (scikit-learn LogisticRegression on the 15 histogram features, converted
by skl2onnx with ``zipmap=False``) and ``model2.onnx`` (a raw-RGB linear softmax classifier written with
``onnx.helper``), plus a manifest written by :func:`labelmend.bundle_format.write_manifest`. The returned
:class:`Reference` recomputes both models without onnxruntime, so tests can compare against it.

Test files load this module by path under the name ``labelmend_tests_bundle_factory`` (pytest runs with
``--import-mode=importlib``, so ``tests/`` is not on sys.path); see ``_load_factory()`` in each test file.
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import _data_factory
import numpy as np

from labelmend.bundle_format import MANIFEST_NAME, sha256_file, write_manifest

OPSET = 17
N_FEATURES = 15
N_PIXELS = 32 * 32 * 3
RAW_INPUT = "images"
HIST_INPUT = "features"
OUTPUT = "probabilities"


def histogram(images: np.ndarray) -> np.ndarray:
    """The runtime's histogram preprocessing, imported the same way the runtime imports it."""
    from labelmend.ext import rgb_histogram

    return np.asarray(rgb_histogram(images)).astype(np.float32)


def random_images(n: int, seed: int = 0, dtype=np.uint8) -> np.ndarray:
    """``n`` random RGB images (n, 32, 32, 3) in [0, 255]; a per-image brightness so histograms differ a lot."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.2, 1.0, size=(n, 1, 1, 1))
    shift = rng.uniform(0, 100, size=(n, 1, 1, 3))
    x = np.clip(rng.uniform(0, 255, size=(n, 32, 32, 3)) * scale + shift, 0, 255)
    return np.floor(x).astype(dtype)


# ---- the two models ----------------------------------------------------------------------------------------------


def make_baseline(seed: int = 0):
    """LogisticRegression fit on histogram-like features (n, 15), random labels 0..9; returns (clf, onnx bytes)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    # Histogram-like: 3 channels × 5 bins, each channel's counts sum to 1024 pixels.
    feats = np.concatenate([rng.multinomial(1024, rng.dirichlet(np.ones(5)), size=400) for _ in range(3)], axis=1)
    feats = feats.astype(np.float32)
    labels = np.arange(400) % 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs may not converge on random labels; irrelevant here
        clf = LogisticRegression(max_iter=200).fit(feats, labels)
    onx = to_onnx(
        clf,
        initial_types=[(HIST_INPUT, FloatTensorType([None, N_FEATURES]))],
        options={id(clf): {"zipmap": False}},
        target_opset={"": OPSET, "ai.onnx.ml": 3},
    )
    return clf, onx.SerializeToString()


@dataclass
class RawLinear:
    """model2's maths in numpy: softmax(flatten(x) / 255 @ W + b)."""

    W: np.ndarray  # (3072, 10) float32
    b: np.ndarray  # (10,) float32

    def proba(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, dtype=np.float64).reshape(len(images), -1) / 255.0
        z = x @ self.W.astype(np.float64) + self.b
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.proba(images).argmax(axis=1)


def make_raw_model(
    seed: int = 0,
    *,
    input_name: str = RAW_INPUT,
    output_name: str = OUTPUT,
    input_shape=("N", 32, 32, 3),
    input_elem=None,
):
    """A raw-RGB model: images float32 (N, 32, 32, 3) → /255 → flatten → MatMul W + b → Softmax → (N, 10).

    The keyword arguments make deliberately *wrong* graphs for the mismatch tests.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed + 1)
    W = rng.standard_normal((N_PIXELS, 10)) * 0.2
    W = (W - W.mean(axis=0)).astype(np.float32)  # zero-mean columns: the image, not the bias, picks the class
    b = (rng.standard_normal(10) * 0.1).astype(np.float32)
    elem = TensorProto.FLOAT if input_elem is None else input_elem
    nodes = [
        helper.make_node("Cast", [input_name], ["x32"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["x32", "inv255"], ["scaled"]),
        helper.make_node("Flatten", ["scaled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["logits0"]),
        helper.make_node("Add", ["logits0", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [output_name], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "labelmend_test_raw_linear",
        [helper.make_tensor_value_info(input_name, elem, list(input_shape))],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", 10])],
        initializer=[
            numpy_helper.from_array(np.array(1 / 255, dtype=np.float32), "inv255"),
            numpy_helper.from_array(W, "W"),
            numpy_helper.from_array(b, "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="labelmend-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return RawLinear(W, b), model.SerializeToString()


# ---- the bundle --------------------------------------------------------------------------------------------------


@dataclass
class Reference:
    """What a test needs to check the runtime: the bundle path and both models' reference implementations."""

    path: Path
    clf: object  # the sklearn LogisticRegression behind baseline.onnx
    raw: RawLinear  # model2.onnx in numpy
    manifest: dict = field(default_factory=dict)

    def baseline_predict(self, images):
        return self.clf.predict(histogram(images))

    def baseline_proba(self, images):
        return self.clf.predict_proba(histogram(images))


def model_entry(file: str, data_path: Path, preprocessing: str, *, input_name: str, output_name: str = OUTPUT) -> dict:
    shape = [None, N_FEATURES] if preprocessing == "rgb_histogram" else [None, 32, 32, 3]
    return {
        "file": file,
        "sha256": sha256_file(data_path),
        "size_bytes": data_path.stat().st_size,
        "preprocessing": preprocessing,
        "input": {"name": input_name, "dtype": "float32", "shape": shape},
        "output": {"name": output_name, "dtype": "float32", "shape": [None, 10]},
        "description": f"test model {file}",
        "training": {},
        "validation": {},
        "export": {"opset": OPSET},
    }


def base_manifest(models: dict, default_model: str) -> dict:
    return {
        "format": "labelmend-bundle",
        "format_version": 1,
        "labelmend_version": "0.1.0",
        "created_utc": "2026-11-27T20:00:00Z",
        "class_names": list(_data_factory.CLASS_NAMES),
        "default_model": default_model,
        "library_versions": {},
        "models": models,
    }


_CACHE: dict = {}


def _models(seed: int):
    """Fit/convert once per seed per process; bundles differ only in where they are written."""
    if seed not in _CACHE:
        clf, baseline_bytes = make_baseline(seed)
        raw, raw_bytes = make_raw_model(seed)
        _CACHE[seed] = (clf, baseline_bytes, raw, raw_bytes)
    return _CACHE[seed]


def make_bundle(
    bundle_dir, *, seed: int = 0, raw_bytes: bytes | None = None, raw_input_name: str = RAW_INPUT
) -> Reference:
    """Write a full bundle (baseline + model2, default model2) into ``bundle_dir``; returns its Reference.

    ``raw_bytes`` replaces model2.onnx's content (the manifest then records *its* hash, so only the graph check can
    object); ``raw_input_name`` is the input name the manifest records for model2.
    """
    bundle = Path(bundle_dir)
    bundle.mkdir(parents=True, exist_ok=True)
    clf, baseline_bytes, raw, default_raw_bytes = _models(seed)
    (bundle / "baseline.onnx").write_bytes(baseline_bytes)
    (bundle / "model2.onnx").write_bytes(default_raw_bytes if raw_bytes is None else raw_bytes)
    models = {
        "baseline": model_entry("baseline.onnx", bundle / "baseline.onnx", "rgb_histogram", input_name=HIST_INPUT),
        "model2": model_entry("model2.onnx", bundle / "model2.onnx", "raw_rgb", input_name=raw_input_name),
    }
    manifest = base_manifest(models, "model2")
    write_manifest(bundle, manifest)
    return Reference(bundle, clf, raw, copy.deepcopy(manifest))


def edit_manifest(bundle_dir, edit) -> None:
    """Apply ``edit(manifest_dict)`` to the bundle's manifest.json, bypassing validation (for tampering tests)."""
    path = Path(bundle_dir) / MANIFEST_NAME
    manifest = json.loads(path.read_text(encoding="utf-8"))
    edit(manifest)
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
