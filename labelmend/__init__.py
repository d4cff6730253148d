"""labelmend: image classifiers from mostly-wrong labels, shipped as a small ONNX bundle.

Sub-packages, in the one direction data flows:
``labelmend.folders`` (the client's folder layouts and label files) and ``labelmend.ext`` (RGB histogram kernel) →
``labelmend.train`` (data loading, models) →
``labelmend.export`` (ONNX bundle) → ``labelmend.runtime`` (numpy + onnxruntime only) → ``labelmend.evaluate``.
Importing this package imports none of them.
"""

__version__ = "0.1.0"

CLASS_NAMES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
"""The first client's classes, in label order 0..9 (what ``data/sample/train/class_names.txt`` holds). Other data
sets bring their own names (``class_names.txt``); runs and bundles record the names they were trained with."""
