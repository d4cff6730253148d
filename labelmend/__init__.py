"""labelmend: image classifiers from mostly-wrong labels, shipped as a small ONNX bundle.

Sub-packages, in the one direction data flows:
``labelmend.folders`` (the client's folder layouts and label files) and ``labelmend.ext`` (RGB histogram kernel) →
``labelmend.train`` (data loading, models) →
``labelmend.export`` (ONNX bundle) → ``labelmend.runtime`` (numpy + onnxruntime only) → ``labelmend.evaluate``;
``labelmend.run_format`` and ``labelmend.bundle_format`` describe what travels between them. Importing this package
imports none of them. Classes are the data's own (``class_names.txt``), any K from 2 to 100.
"""

__version__ = "0.1.0"
