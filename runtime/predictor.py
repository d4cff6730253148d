"""Predict with a verified labelmend bundle: numpy + onnxruntime only.

Notation: N images, K classes (``class_names`` in label order, from the bundle manifest); an image is RGB
(32, 32, 3) in [0, 255].

``onnxruntime`` is imported when the first :class:`Predictor` is created, not when this module is imported, so
``import labelmend.runtime`` stays cheap. It comes from the ``cpu`` extra (onnxruntime) or the ``gpu`` extra
(onnxruntime-gpu), never both; without either, creating a Predictor raises
:class:`~labelmend.errors.MissingDependencyError` (an ``ImportError``) naming the install command.
``labelmend.ext`` (the histogram kernel) is imported only by models whose preprocessing is ``"rgb_histogram"``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np
from labelmend.runtime.images import to_input
from labelmend.runtime.validation import check_images

from labelmend.bundle_format import read_manifest
from labelmend.errors import BundleError, DeviceError, MissingDependencyError

__all__ = ["Predictor", "load", "predict", "BUNDLE_ENV"]

BUNDLE_ENV = "LABELMEND_BUNDLE"
"""Environment variable naming the bundle directory used by :func:`predict` when none is passed."""

CHUNK = 1024
"""Images per onnxruntime call in batch prediction (bounds the memory of the float32 copies and features)."""

DEVICES = ("auto", "cpu", "cuda")
_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"
_ORT_DTYPES = {"float32": "tensor(float)"}


ORT_MISSING = "onnxruntime is not installed: pip install 'labelmend[cpu]' (or [gpu] on a CUDA machine)"
"""The error when no onnxruntime distribution is installed: the base install ships none, the extras pick one."""


def _import_ort():
    try:
        import onnxruntime  # noqa: PLC0415 — deliberately lazy, see the module docstring
    except ModuleNotFoundError as exc:
        if exc.name == "onnxruntime":
            raise MissingDependencyError(ORT_MISSING, name="onnxruntime") from None
        if (exc.name or "").startswith("onnxruntime."):  # typically onnxruntime and onnxruntime-gpu were mixed
            raise MissingDependencyError(
                f"onnxruntime is installed but incomplete (no {exc.name}): pip uninstall -y onnxruntime "
                f"onnxruntime-gpu, then pip install 'labelmend[cpu]' (or [gpu] on a CUDA machine)", name=exc.name
            ) from None
        raise  # onnxruntime is there but a package it needs is not: show that
    return onnxruntime


def _providers_for(device: object) -> list[str]:
    """The execution providers, in order of preference (CPU last), for ``device``."""
    if not isinstance(device, str) or device.lower() not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    device = device.lower()
    if device == "cpu":
        return [_CPU]
    available = _import_ort().get_available_providers()
    if device == "cuda" and _CUDA not in available:
        raise DeviceError(
            f"device='cuda' requested but onnxruntime has no {_CUDA} (available: {available}); install "
            f"onnxruntime-gpu instead of onnxruntime (pip uninstall onnxruntime && pip install 'labelmend[gpu]'; "
            f"needs CUDA/cuDNN), or use device='cpu' or 'auto'"
        )
    return [_CUDA, _CPU] if _CUDA in available else [_CPU]


def _check_threads(threads: object) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads must be a positive int or None, got {threads!r}")
    if threads < 1:
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    return int(threads)


def _shape_matches(graph_shape: list | None, spec_shape: list) -> bool:
    """A graph dimension is symbolic (str) or unknown (None) where the manifest says None, else the same int."""
    if graph_shape is None or len(graph_shape) != len(spec_shape):
        return False
    for got, want in zip(graph_shape, spec_shape):
        if want is None:
            if isinstance(got, int):  # a fixed batch size cannot take N images
                return False
        elif got != want:
            return False
    return True


def _check_io(session, spec: dict, path: Path) -> None:
    """Raise BundleError unless the graph's input/output match the manifest's ``input``/``output`` spec."""
    inputs = session.get_inputs()
    want = spec["input"]
    if len(inputs) != 1:
        raise BundleError(
            f"{path}: graph has {len(inputs)} inputs {[i.name for i in inputs]}, manifest expects exactly one, "
            f"{want['name']!r}"
        )
    for key, nodes in (("input", inputs), ("output", session.get_outputs())):
        want = spec[key]
        found = [n for n in nodes if n.name == want["name"]]
        if not found:
            raise BundleError(
                f"{path}: graph has no {key} named {want['name']!r} (graph {key}s: {[n.name for n in nodes]}); "
                f"the model file does not match the manifest"
            )
        node = found[0]
        if node.type != _ORT_DTYPES[want["dtype"]]:
            raise BundleError(
                f"{path}: graph {key} {node.name!r} has type {node.type}, manifest says {want['dtype']}"
            )
        if not _shape_matches(node.shape, want["shape"]):
            raise BundleError(
                f"{path}: graph {key} {node.name!r} has shape {node.shape}, manifest says {want['shape']} "
                f"(null = any batch size)"
            )


def _make_session(ort, data: bytes, options, providers: list[str], path: Path, *, cuda_required: bool):
    """An InferenceSession on ``providers``; a model onnxruntime cannot load → BundleError naming the file."""
    # CUDA: full float32 matmuls/convolutions (no TF32), so CUDA probabilities match the CPU's to ~1e-6, not ~1e-3
    requested = [(p, {"use_tf32": "0"}) if p == _CUDA else p for p in providers]
    try:
        return ort.InferenceSession(data, sess_options=options, providers=requested)
    except Exception as exc:  # onnxruntime raises its own exception classes (InvalidProtobuf, Fail, ...)
        error = exc
    if providers != [_CPU]:  # is it the model or the CUDA setup? Try the CPU alone.
        try:
            session = ort.InferenceSession(data, sess_options=options, providers=[_CPU])
        except Exception:  # noqa: BLE001 - the model itself is bad: report the first error below
            pass
        else:
            if not cuda_required:
                return session  # device="auto": CUDA is listed but unusable here; CPU it is
            raise DeviceError(
                f"device='cuda' requested but onnxruntime could not start a CUDA session "
                f"({type(error).__name__}: {error}); check the CUDA/cuDNN installation, or use device='cpu'"
            ) from None
    raise BundleError(f"{path}: onnxruntime cannot load the model ({type(error).__name__}: {error})") from None


class Predictor:
    """A classifier loaded from a verified bundle; ``predict`` / ``predict_batch`` / ``predict_proba``.

    Parameters
    ----------
    bundle_dir : path of the bundle directory (holds ``manifest.json``).
    model : model name in the bundle; None → the manifest's ``default_model``.
    device : "auto" (CUDA if onnxruntime has it, else CPU), "cpu" or "cuda" (error if CUDA is unavailable).
    threads : onnxruntime intra-op threads (positive int); None → onnxruntime's default.

    Loading verifies the manifest, every model file's size and SHA-256, and the graph's input/output names, dtypes
    and shapes; any mismatch raises :class:`~labelmend.errors.BundleError` naming the file. One onnxruntime session
    is created per Predictor and reused; concurrent ``predict*`` calls from several threads are safe.

    Attributes: ``class_names`` (tuple of K names), ``n_classes``, ``model`` (name), ``manifest`` (the model's
    manifest entry), ``bundle_manifest`` (the whole manifest), ``providers`` (the session's providers),
    ``preprocessing``, ``bundle_dir``.
    """

    def __init__(self, bundle_dir, model: str | None = None, *, device: str = "auto", threads: int | None = None):
        requested = _providers_for(device)
        threads = _check_threads(threads)
        if model is not None and not isinstance(model, str):
            raise TypeError(f"model must be a model name (str) or None, got {model!r}")

        self.bundle_dir = Path(bundle_dir)
        manifest = read_manifest(self.bundle_dir)  # format version, every file's size and SHA-256
        models = manifest["models"]
        name = manifest["default_model"] if model is None else model
        if name not in models:
            raise BundleError(
                f"model {name!r} is not in the bundle {str(self.bundle_dir)!r}; available: {sorted(models)}"
            )
        spec = models[name]
        path = self.bundle_dir / spec["file"]

        # Load the bytes we hash, so the file cannot change between the check and the session.
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != spec["sha256"]:
            raise BundleError(f"{path}: SHA-256 does not match the manifest; the file was modified")

        ort = _import_ort()
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only; warnings would go to the client's stderr
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        session = _make_session(ort, data, options, requested, path, cuda_required=device.lower() == "cuda")
        providers = tuple(session.get_providers())
        if device.lower() == "cuda" and _CUDA not in providers:
            raise DeviceError(
                f"device='cuda' requested but the onnxruntime session runs on {list(providers)}; check the CUDA and "
                f"cuDNN installation that onnxruntime-gpu needs, or use device='cpu'"
            )
        _check_io(session, spec, path)

        self.model = name
        self.manifest = spec
        self.bundle_manifest = manifest
        self.class_names = tuple(manifest["class_names"])
        self.n_classes = len(self.class_names)
        self.preprocessing = spec["preprocessing"]
        self.providers = providers
        self.device = "cuda" if providers[0] == _CUDA else "cpu"
        self._session = session
        self._input = spec["input"]["name"]
        self._output = spec["output"]["name"]
        if self.preprocessing == "rgb_histogram":
            from labelmend.ext import rgb_histogram  # noqa: PLC0415 — only histogram models need the kernel

            self._histogram = rgb_histogram
        else:
            self._histogram = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.bundle_dir)!r}, model={self.model!r}, "
            f"providers={list(self.providers)})"
        )

    # ---- internals: images are validated float32 (N, 32, 32, 3) ----------------------------------------------

    def _features(self, images: np.ndarray) -> np.ndarray:
        if self._histogram is None:  # raw_rgb: the graph scales/normalises itself
            return images
        return np.ascontiguousarray(self._histogram(images), dtype=np.float32)

    def _proba(self, images: np.ndarray) -> np.ndarray:
        """(N, K) float32 class probabilities, computed CHUNK images at a time."""
        n = images.shape[0]
        out = np.empty((n, self.n_classes), dtype=np.float32)
        for start in range(0, n, CHUNK):
            chunk = images[start : start + CHUNK]
            result = self._session.run([self._output], {self._input: self._features(chunk)})[0]
            if result.shape != (chunk.shape[0], self.n_classes):
                raise BundleError(
                    f"{self.bundle_dir / self.manifest['file']}: model returned shape {result.shape}, expected "
                    f"{(chunk.shape[0], self.n_classes)}"
                )
            out[start : start + chunk.shape[0]] = result
        return out

    # ---- public API --------------------------------------------------------------------------------------------

    def predict(self, image) -> int:
        """Class label (0..K-1) of ONE image of shape (32, 32, 3), values in [0, 255]."""
        images, _ = check_images(image, name="image", allow_batch=False)
        return int(np.argmax(self._proba(images)[0]))

    __call__ = predict

    def predict_batch(self, images) -> np.ndarray:
        """Class labels, int64 shape (N,), of a batch of shape (N, 32, 32, 3); N may be 0."""
        batch, _ = check_images(images, name="images", allow_single=False)
        if batch.shape[0] == 0:
            return np.empty((0,), dtype=np.int64)
        return np.argmax(self._proba(batch), axis=1).astype(np.int64)

    def predict_proba(self, images) -> np.ndarray:
        """Class probabilities, float32: shape (K,) for one image (32, 32, 3), (N, K) for a batch (N, 32, 32, 3)."""
        batch, single = check_images(images, name="images")
        proba = self._proba(batch)
        return proba[0] if single else proba

    def predict_file(self, image) -> int:
        """Class label of ONE image of any size: a file path (PNG, JPEG, BMP, WebP), a PIL image or a uint8 numpy
        image, through labelmend's one preprocessing (:func:`labelmend.runtime.images.to_input`)."""
        return self.predict(to_input(image))

    def predict_proba_file(self, image) -> np.ndarray:
        """Class probabilities (K,) float32 of ONE image of any size, as :meth:`predict_file` reads it."""
        return self.predict_proba(to_input(image))

    def predict_names(self, images) -> list[str] | str:
        """Class names instead of labels: a str for one image, a list of str for a batch."""
        batch, single = check_images(images, name="images")
        labels = np.argmax(self._proba(batch), axis=1) if batch.shape[0] else []
        names = [self.class_names[int(i)] for i in labels]
        return names[0] if single else names


def load(bundle_dir, model: str | None = None, *, device: str = "auto", threads: int | None = None) -> Predictor:
    """Load a bundle's model (default: the manifest's ``default_model``) as a :class:`Predictor`."""
    return Predictor(bundle_dir, model, device=device, threads=threads)


_cache: dict[tuple, Predictor] = {}
_cache_lock = threading.Lock()


def _cached(bundle_dir, model: str | None) -> Predictor:
    if bundle_dir is None:
        bundle_dir = os.environ.get(BUNDLE_ENV) or None
        if bundle_dir is None:
            raise BundleError(
                f"no bundle given: pass bundle_dir=... or set the environment variable {BUNDLE_ENV} to the bundle "
                f"directory (create one with `labelmend export`)"
            )
    path = Path(bundle_dir).resolve()
    try:
        stamp = (path / "manifest.json").stat().st_mtime_ns  # a re-exported bundle gets a fresh Predictor
    except OSError:
        stamp = None
    key = (str(path), model, stamp)
    with _cache_lock:
        predictor = _cache.get(key)
        if predictor is None:
            predictor = Predictor(path, model)
            for old in [k for k in _cache if k[:2] == key[:2]]:  # the same bundle before it was re-exported
                del _cache[old]
            _cache[key] = predictor
    return predictor


def predict(image, bundle_dir=None, model: str | None = None) -> int:
    """Class label of ONE image with a cached Predictor; ``bundle_dir`` defaults to ``$LABELMEND_BUNDLE``."""
    return _cached(bundle_dir, model).predict(image)
