"""Convert trained models to ONNX and check each conversion against its source model.

The baseline goes through skl2onnx (``zipmap`` off, so it returns a plain probability tensor), the CNNs through
tf2onnx's ``from_function`` on the ``tf.function`` of :func:`labelmend.train.cnn.probability_function` (with
TF 2.21 / Keras 3.15, ``from_keras`` fails). Both graphs take float32 input with a free batch dimension.
"""

from __future__ import annotations

import numpy as np

from labelmend.errors import LabelmendError

OPSET = 17
PARITY_TOLERANCE = 1e-4  # max |ONNX − source| over class probabilities


class ExportError(LabelmendError, RuntimeError):
    """A conversion failed or its output disagrees with the source model."""


def _onnx_probabilities(model_bytes: bytes, input_name: str, output_name: str, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return sess.run([output_name], {input_name: x.astype(np.float32)})[0]


def check_parity(name: str, expected: np.ndarray, got: np.ndarray, *, tolerance: float = PARITY_TOLERANCE) -> float:
    """Max |diff| between source and ONNX probabilities; raises ExportError above ``tolerance``."""
    if expected.shape != got.shape:
        raise ExportError(f"{name}: ONNX output shape {got.shape} differs from the source model's {expected.shape}")
    diff = float(np.max(np.abs(expected.astype(np.float64) - got))) if expected.size else 0.0
    if not diff <= tolerance:
        raise ExportError(f"{name}: ONNX probabilities differ from the source model by {diff:.2e} > {tolerance:.0e}")
    return diff


def baseline_to_onnx(clf, features: np.ndarray) -> tuple[bytes, dict]:
    """LogisticRegression on (N, 15) histogram features → (ONNX bytes, io spec + parity facts)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(clf, initial_types=[("features", FloatTensorType([None, features.shape[1]]))],
                          options={id(clf): {"zipmap": False}}, target_opset=OPSET)
    data = onx.SerializeToString()
    got = _onnx_probabilities(data, "features", "probabilities", features)
    diff = check_parity("baseline", clf.predict_proba(features), got)
    agree = float(np.mean(got.argmax(1) == clf.predict(features)))
    spec = {
        "input": {"name": "features", "dtype": "float32", "shape": [None, features.shape[1]]},
        "output": {"name": "probabilities", "dtype": "float32", "shape": [None, got.shape[1]]},
        "export": {"converter": "skl2onnx", "opset": OPSET, "parity_max_abs_diff": diff,
                   "parity_images": len(features), "parity_label_agreement": agree},
    }
    return data, spec


def cnn_to_onnx(model, images: np.ndarray, *, flip_tta: bool) -> tuple[bytes, dict]:
    """Keras CNN (raw RGB in, logits out) → (ONNX bytes of images → probabilities, io spec + parity facts)."""
    import tensorflow as tf
    import tf2onnx
    from labelmend.train.cnn import probability_function

    fn = probability_function(model, flip_tta=flip_tta)
    spec_in = [tf.TensorSpec([None, 32, 32, 3], tf.float32, name="images")]
    try:
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec_in, opset=OPSET)
    except Exception as exc:  # tf2onnx raises many types; surface them as one export failure
        raise ExportError(f"tf2onnx could not convert {model.name}: {type(exc).__name__}: {exc}") from exc
    input_name, output_name = proto.graph.input[0].name, proto.graph.output[0].name
    data = proto.SerializeToString()
    x = images.astype(np.float32)
    expected = fn(tf.constant(x)).numpy()
    got = _onnx_probabilities(data, input_name, output_name, x)
    diff = check_parity(model.name, expected, got)
    spec = {
        "input": {"name": input_name, "dtype": "float32", "shape": [None, 32, 32, 3]},
        "output": {"name": output_name, "dtype": "float32", "shape": [None, got.shape[1]]},
        "export": {"converter": "tf2onnx.from_function", "opset": OPSET, "parity_max_abs_diff": diff,
                   "parity_images": len(x),
                   "parity_label_agreement": float(np.mean(got.argmax(1) == expected.argmax(1))),
                   "flip_tta": flip_tta},
    }
    return data, spec
