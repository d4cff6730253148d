"""Static int8 quantization of the exported CNN graphs, with the accuracy change measured before it is accepted.

onnxruntime's ``quantize_static`` in QDQ format, convolutions and the classifier's matrix product only: weights
int8 per output channel, activations uint8 with ranges calibrated (MinMax) on a sample of the run's *training*
images, never the validation images it is then scored on. :func:`quantize_cnn` refuses the result when its
validation accuracy drops more than ``max_drop`` below the float32 graph's, so a bundle never ships an int8 model
whose cost in accuracy is unknown or too high.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from labelmend.export.onnx_models import ExportError

MAX_DROP = 0.01           # default: refuse int8 graphs that lose more than 1 point of validation accuracy
CALIBRATION_BATCH = 64    # images per calibration batch


def _session(model_bytes: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])


def onnx_accuracy(model_bytes: bytes, images: np.ndarray, labels: np.ndarray, *, batch: int = 512) -> float:
    """Accuracy of an images → probabilities ONNX graph on (N, 32, 32, 3) images with (N,) labels."""
    if len(labels) == 0:
        raise ExportError("no validation images to measure the int8 accuracy change on; train with --val-fraction > 0")
    sess = _session(model_bytes)
    name = sess.get_inputs()[0].name
    preds = np.concatenate([sess.run(None, {name: images[i:i + batch].astype(np.float32)})[0].argmax(1)
                            for i in range(0, len(images), batch)])
    return float(np.mean(preds == labels))


def quantize_graph(model_bytes: bytes, calibration: np.ndarray) -> bytes:
    """float32 ONNX bytes (images → probabilities) → int8 QDQ ONNX bytes, activation ranges from ``calibration``
    (M, 32, 32, 3) images. Conv + MatMul only: the softmax output stays float (quantized, probabilities would round
    to 1/255 and tie)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    input_name = _session(model_bytes).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter([calibration[i:i + CALIBRATION_BATCH].astype(np.float32)
                                  for i in range(0, len(calibration), CALIBRATION_BATCH)])

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    with tempfile.TemporaryDirectory(prefix="labelmend-int8-") as tmp:
        src, pre, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(model_bytes)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv", "MatMul"], calibrate_method=CalibrationMethod.MinMax)
        return dst.read_bytes()


def quantize_cnn(model_bytes: bytes, calibration: np.ndarray, val_images: np.ndarray, val_labels: np.ndarray, *,
                 max_drop: float = MAX_DROP, name: str = "model") -> tuple[bytes, dict]:
    """float32 ONNX bytes → (int8 ONNX bytes, facts: validation accuracy fp32/int8, drop, sizes).

    ``calibration`` (M, 32, 32, 3): training images for the activation ranges. Raises ExportError when the int8
    graph's accuracy on (``val_images``, ``val_labels``) is more than ``max_drop`` below the float32 graph's.
    """
    int8 = quantize_graph(model_bytes, calibration)
    acc_fp32 = onnx_accuracy(model_bytes, val_images, val_labels)
    acc_int8 = onnx_accuracy(int8, val_images, val_labels)
    facts = {"method": "onnxruntime quantize_static, QDQ, int8 weights per channel, uint8 activations (MinMax)",
             "calibration_images": int(len(calibration)), "validation_images": int(len(val_labels)),
             "val_accuracy_fp32": acc_fp32, "val_accuracy_int8": acc_int8, "accuracy_drop": acc_fp32 - acc_int8,
             "max_drop": max_drop, "size_bytes_fp32": len(model_bytes), "size_bytes_int8": len(int8)}
    if acc_fp32 - acc_int8 > max_drop:
        raise ExportError(f"{name}: int8 validation accuracy {acc_int8:.4f} is {acc_fp32 - acc_int8:.4f} below float32 "
                          f"{acc_fp32:.4f} (limit {max_drop:.4f}); export without --int8 or raise --int8-max-drop")
    return int8, facts
