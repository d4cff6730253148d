"""labelmend.runtime: classify 32×32 RGB images with a verified ONNX bundle (needs only numpy + onnxruntime).

    >>> import labelmend.runtime as rt
    >>> model = rt.load("bundles/latest")          # the manifest's default model ("model2")
    >>> model.predict(image)                        # one (32, 32, 3) image, values in [0, 255] → int label
    >>> model.predict_batch(images)                 # (N, 32, 32, 3) → int64 (N,)
    >>> model.predict_proba(image_or_images)        # (K,) or (N, K) float32, columns in class_names order
    >>> model.predict_file("photo.jpg")             # a file (PNG, JPEG, BMP, WebP) or PIL/numpy image of any size
    >>> rt.to_input("photo.jpg")                    # the (32, 32, 3) uint8 array the models see for it
    >>> rt.predict(image, "bundles/latest")         # one-off call with a cached Predictor ($LABELMEND_BUNDLE)

Nothing here imports TensorFlow, scikit-learn, OpenCV, matplotlib, labelmend.train or labelmend.export;
onnxruntime itself is imported when the first Predictor is created.
"""

from labelmend.runtime.images import to_input
from labelmend.runtime.predictor import BUNDLE_ENV, Predictor, load, predict
from labelmend.runtime.validation import check_images

from labelmend.errors import BundleError, DeviceError, InputError, InputTypeError, MissingDependencyError

__all__ = [
    "BUNDLE_ENV",
    "BundleError",
    "DeviceError",
    "InputError",
    "InputTypeError",
    "MissingDependencyError",
    "Predictor",
    "check_images",
    "load",
    "predict",
    "to_input",
]
