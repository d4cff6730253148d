"""labelmend: image classifiers from mostly-wrong labels, shipped as a small ONNX bundle.

Sub-packages, in the one direction data flows:
``labelmend.ext`` (RGB histogram kernel) → ``labelmend.train`` (data loading, models) →
``labelmend.export`` (ONNX bundle) → ``labelmend.runtime`` (numpy + onnxruntime only) → ``labelmend.evaluate``.
Importing this package imports none of them.
"""

__version__ = "0.1.0"

CLASS_NAMES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
"""The client's classes, in label order 0..9."""
