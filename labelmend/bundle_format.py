"""The bundle format: what `labelmend.export` writes and `labelmend.runtime` reads.

A bundle is a directory holding ``manifest.json`` and one ``.onnx`` file per model. The manifest::

    {
      "format": "labelmend-bundle",
      "format_version": 1,
      "labelmend_version": "0.1.0",
      "created_utc": "2026-11-27T20:00:00Z",
      "class_names": ["plane", ..., "truck"],          # K names (2 <= K <= 100), label order
      "default_model": "model2",                       # or the only model the bundle has
      "library_versions": {"tensorflow": "2.21.0", ...},
      "models": {
        "<name>": {
          "file": "<name>.onnx",                       # a plain file name inside the bundle
          "sha256": "<64 hex digits>",
          "size_bytes": 12345,
          "preprocessing": "rgb_histogram" | "raw_rgb",
          "input":  {"name": "...", "dtype": "float32", "shape": [null, 15] | [null, 32, 32, 3]},
          "output": {"name": "...", "dtype": "float32", "shape": [null, K]},    # class probabilities
          "description": "...", "training": {...}, "validation": {...}, "export": {...}
        }, ...
      }
    }

``preprocessing`` says what the runtime does to a raw RGB image (H=W=32, C=3, values in [0, 255]) before the graph:
``rgb_histogram`` computes the 15 per-channel 5-bin pixel counts (``labelmend.ext.rgb_histogram``) as float32;
``raw_rgb`` feeds the image itself as float32 — scaling and normalisation live inside the graph.

This module is pure Python (json, hashlib) so both sides can import it without pulling in anything heavy.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from labelmend._atomic import read_json, write_json
from labelmend.errors import BundleError

FORMAT = "labelmend-bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
PREPROCESSING = {
    "rgb_histogram": [None, 15],
    "raw_rgb": [None, 32, 32, 3],
}
IMAGE_SHAPE = (32, 32, 3)
MAX_CLASSES = 100
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SAFE_FILE = re.compile(r"^[A-Za-z0-9_.-]+\.onnx$")


def sha256_file(path: str | os.PathLike, *, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(bundle_dir: str | os.PathLike, manifest: dict) -> Path:
    """Validate ``manifest`` and write it as ``bundle_dir/manifest.json``; returns the path."""
    validate_manifest(manifest, source="manifest to write")
    path = Path(bundle_dir) / MANIFEST_NAME
    return write_json(path, manifest, sort_keys=True)


def read_manifest(bundle_dir: str | os.PathLike, *, verify_files: bool = True) -> dict:
    """Read, validate and (by default) verify a bundle's manifest.

    Verification checks every model file exists, has the recorded size and SHA-256. Raises
    :class:`~labelmend.errors.BundleError` naming the offending file or manifest field.
    """
    bundle = Path(bundle_dir)
    if bundle.exists() and not bundle.is_dir():
        raise BundleError(f"{bundle}: is a file, not a bundle directory (pass the folder that holds manifest.json)")
    if not bundle.is_dir():
        raise BundleError(f"bundle directory {str(bundle)!r} does not exist (create one with `labelmend export`)")
    path = bundle / MANIFEST_NAME
    manifest = read_json(path, error=BundleError, missing="missing; this is not a labelmend bundle",
                         corrupt="not valid JSON ({exc}); the manifest is corrupt or was edited")
    validate_manifest(manifest, source=str(path))
    if verify_files:
        for name, spec in manifest["models"].items():
            verify_model_file(bundle, name, spec)
    return manifest


def verify_model_file(bundle: Path, name: str, spec: dict) -> Path:
    """Check one model file against its manifest entry; returns its path."""
    path = bundle / spec["file"]
    if not path.is_file():
        raise BundleError(f"{path}: model file of {name!r} is missing from the bundle")
    try:
        size = path.stat().st_size
        digest = sha256_file(path)
    except OSError as exc:
        raise BundleError(f"{path}: cannot read ({exc.strerror})") from None
    if size != spec["size_bytes"]:
        raise BundleError(
            f"{path}: size {size} bytes, manifest says {spec['size_bytes']}; the file is truncated or was replaced"
        )
    if digest != spec["sha256"]:
        raise BundleError(f"{path}: SHA-256 {digest[:12]}… does not match the manifest; the file was modified")
    return path


def validate_manifest(manifest: object, *, source: str) -> None:
    """Raise BundleError unless ``manifest`` has the structure documented above."""

    def fail(msg: str) -> None:
        raise BundleError(f"{source}: {msg}")

    if not isinstance(manifest, dict):
        fail("top level is not a JSON object")
    if manifest.get("format") != FORMAT:
        fail(f"'format' is {manifest.get('format')!r}, expected {FORMAT!r}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        fail(f"format_version {version!r} is not supported (this labelmend reads version {FORMAT_VERSION})")
    names = manifest.get("class_names")
    if not (isinstance(names, list) and 2 <= len(names) <= MAX_CLASSES and all(isinstance(n, str) for n in names)):
        fail(f"'class_names' must be a list of 2 to {MAX_CLASSES} strings")
    if len(set(names)) != len(names):
        fail("'class_names' has repeated names")
    models = manifest.get("models")
    if not (isinstance(models, dict) and models):
        fail("'models' must be a non-empty object")
    if manifest.get("default_model") not in models:
        fail(f"'default_model' {manifest.get('default_model')!r} is not one of the bundle's models {sorted(models)}")
    for name, spec in models.items():
        where = f"models.{name}"
        if not isinstance(spec, dict):
            fail(f"{where} is not an object")
        file = spec.get("file")
        if not (isinstance(file, str) and _SAFE_FILE.match(file)):
            fail(f"{where}.file {file!r} must be a plain '.onnx' file name inside the bundle")
        if not (isinstance(spec.get("sha256"), str) and _HEX64.match(spec["sha256"])):
            fail(f"{where}.sha256 must be 64 lowercase hex digits")
        if not (isinstance(spec.get("size_bytes"), int) and spec["size_bytes"] > 0):
            fail(f"{where}.size_bytes must be a positive integer")
        prep = spec.get("preprocessing")
        if prep not in PREPROCESSING:
            fail(f"{where}.preprocessing {prep!r} is not one of {sorted(PREPROCESSING)}")
        for key, shape in (("input", PREPROCESSING[prep]), ("output", [None, len(names)])):
            io = spec.get(key)
            if not (isinstance(io, dict) and isinstance(io.get("name"), str) and io["name"]):
                fail(f"{where}.{key} must be an object with a non-empty 'name'")
            if io.get("dtype") != "float32":
                fail(f"{where}.{key}.dtype is {io.get('dtype')!r}, expected 'float32'")
            if io.get("shape") != shape:
                fail(f"{where}.{key}.shape is {io.get('shape')!r}, expected {shape} for preprocessing {prep!r}")
