"""The network every CNN method trains: hyperparameters → layers → make_model → the probability function.

A ResNet-9-style network (airbench / DAWNBench lineage) narrowed to fit a 2-core CPU. :func:`probability_function`
is the ``tf.function`` that export converts to ONNX and that evaluation calls, so both see the same graph. The loop
that trains it is :mod:`labelmend.train.loop`; what it is trained on is each method's business
(:mod:`labelmend.train.methods`).
"""

from __future__ import annotations

import copy
import functools
import os
import weakref

import numpy as np

from labelmend.bundle_format import IMAGE_SHAPE
from labelmend.run_format import PRECISIONS

HYP = {
    "net": {
        "width": 16,             # channels of the first block; later 2x, 4x, 8x (16: ~900 img/s on 2 cores)
        "gpu_width": 64,         # the width used when TensorFlow sees a GPU (same budget buys far more there)
        "precision": "auto",     # "auto": bfloat16 compute (mixed_bfloat16) where the CPU has native bf16 (AVX512_BF16
                                 # or AMX), float32 elsewhere; "float32" / "bfloat16" force one. Variables, logits and
                                 # the loss stay float32, and the exported graph is float32 either way
        "logit_scale": 0.125,    # multiplies the pooled features before the classifier (airbench's 1/8): keeps the
                                 # initial logits small, which a max-pooled ResNet needs to train stably at high LR
    },
    "opt": {
        "batch_size": 256,       # images per step and replica; larger batches are faster per image on CPU
        "lr": 0.2,               # peak SGD learning rate (Nesterov) per replica's batch, reached after warmup
        "momentum": 0.9,
        "weight_decay": 5e-4,    # decoupled, scaled by the learning rate (Keras 3 SGD)
        "warmup_frac": 0.1,      # fraction of the steps spent ramping the learning rate up linearly
        "label_smoothing": 0.1,  # mixed into every direct target
    },
    "aug": {
        "flip": True,            # random horizontal flips
        "translate_px": 2,       # random translation in pixels, reflect padding
    },
    "eval": {
        "batch_size": 1024,      # images per inference batch
        "flip_tta": True,        # average predictions over the image and its mirror (also inside the ONNX graph)
    },
}


def hyperparameters(**overrides) -> dict:
    """A deep copy of HYP with ``{"group": {"key": value}}`` overrides applied."""
    hyp = copy.deepcopy(HYP)
    for group, values in overrides.items():
        if group not in hyp:
            raise KeyError(f"unknown hyperparameter group {group!r}; groups: {sorted(hyp)}")
        for key, value in values.items():
            if key not in hyp[group]:
                raise KeyError(f"unknown hyperparameter {group}.{key}; keys: {sorted(hyp[group])}")
            hyp[group][key] = value
    return hyp


PRECISION_ENV = "LABELMEND_PRECISION"  # what "auto" means when set: float32 or bfloat16 (e.g. for a whole test suite)


def native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512_BF16 or AMX-BF16); False where it cannot be told."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def dtype_policy(precision: str, *, device: str = "cpu") -> str:
    """The Keras dtype policy that trains at ``precision`` (:data:`PRECISIONS`) on ``device``: "mixed_bfloat16"
    (bfloat16 compute, float32 variables) or "float32". "auto" is ``$LABELMEND_PRECISION`` when set, else bfloat16
    only on a CPU with native bf16: elsewhere it is emulated and slower."""
    if precision == "auto":
        precision = os.environ.get(PRECISION_ENV, "").strip() or "auto"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r} (--precision or "
                         f"{PRECISION_ENV})")
    if precision == "auto":
        precision = "bfloat16" if device == "cpu" and native_bf16() else "float32"
    return "mixed_bfloat16" if precision == "bfloat16" else "float32"


# ---------------------------------------------------------------- layers and model

WHITEN_PATCH = 2  # the whitening filters' size: 2x2 RGB patches, 12 dimensions


@functools.cache
def fused_batch_norm():
    """The BatchNormalization layer class every block trains with: Keras' own, but a training pass is TensorFlow's
    fused kernel (``FusedBatchNormV3``) on the layer's compute dtype. Keras 3's is unfused and, under
    ``mixed_bfloat16``, casts each map to float32 and back, which made it a quarter of a bfloat16 step
    (BENCHMARKS.md, “Speed of training”). Inference is Keras' own code, and :func:`float32_copy` turns every such
    layer back into a plain ``BatchNormalization``, so saved and exported models hold only Keras layers."""
    import keras
    import tensorflow as tf

    class FusedBatchNormalization(keras.layers.BatchNormalization):
        def call(self, inputs, training=None, mask=None):
            plain = mask is not None or self.renorm or self.axis != -1 or not (self.scale and self.center)
            if plain or not (training and self.trainable):
                return super().call(inputs, training=training, mask=mask)
            # the moments are float32 whatever the input's dtype; the variance is the unbiased one (n / (n - 1)
            # with n ≥ 256 × 4 × 4 values per channel here: no difference that matters for the moving average)
            outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=self.gamma, offset=self.beta, mean=tf.zeros([0]), variance=tf.zeros([0]),
                epsilon=self.epsilon, is_training=True)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
            return outputs

    return FusedBatchNormalization


def _batch_norm(name: str, policy: str):
    return fused_batch_norm()(momentum=0.9, epsilon=1e-5, name=name, dtype=policy)


def _conv_bn_relu(x, channels: int, name: str, policy: str, *, pool: str | None = None):
    """3×3 convolution → BatchNorm → ReLU; with ``pool`` (the pooling layer's name) a 2×2 max-pool right after the
    convolution, before BatchNorm and ReLU (airbench's order), so their passes run on a quarter of the pixels: on a
    CPU, Keras' unfused BatchNorm over a full-size map costs about as much as its convolution (BENCHMARKS.md)."""
    from keras import layers

    x = layers.Conv2D(channels, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                      name=f"{name}_conv", dtype=policy)(x)
    if pool:
        x = layers.MaxPooling2D(name=pool, dtype=policy)(x)
    x = _batch_norm(f"{name}_bn", policy)(x)
    return layers.ReLU(name=f"{name}_relu", dtype=policy)(x)


def make_model(images: np.ndarray, *, n_classes: int, width: int = HYP["net"]["width"],
               logit_scale: float = HYP["net"]["logit_scale"], seed: int = 0, policy: str = "float32"):
    """ResNet-9-style CNN: raw RGB (N, 32, 32, 3) float32 in [0, 255] → logits (N, n_classes).

    Scaling to [-1, 1] happens inside the model, so the exported graph takes raw pixel values. Two of airbench's
    parts that speed up early training: the first layer is frozen 2x2 patch-whitening filters of ``images`` (uint8
    training images; :func:`whitening_filters`), and the other convolutions start as identities (:func:`dirac_init`),
    so the deep stack trains at a high learning rate from the first step. ``policy`` is the Keras dtype policy of
    every layer but the classifier, which computes its logits in float32 (:func:`dtype_policy`).
    """
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(IMAGE_SHAPE, name="images")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="scale", dtype=policy)(inputs)
    # as many ± filter pairs as the width asks for, at most the 12 dimensions of a 2x2x3 patch (airbench: 24)
    n_whiten = max(2, min(width, 2 * WHITEN_PATCH * WHITEN_PATCH * 3) // 2 * 2)
    whiten = layers.Conv2D(n_whiten, WHITEN_PATCH, padding="same", use_bias=False, trainable=False, name="prep_conv",
                           dtype=policy)
    x = whiten(x)
    whiten.kernel.assign(whitening_filters(images, n_whiten, patch=WHITEN_PATCH))
    x = _batch_norm("prep_bn", policy)(x)
    x = layers.ReLU(name="prep_relu", dtype=policy)(x)
    x = _conv_bn_relu(x, 2 * width, "layer1", policy, pool="pool1")
    r = _conv_bn_relu(_conv_bn_relu(x, 2 * width, "res1a", policy), 2 * width, "res1b", policy)
    x = layers.Add(name="res1", dtype=policy)([x, r])
    x = _conv_bn_relu(x, 4 * width, "layer2", policy, pool="pool2")
    x = _conv_bn_relu(x, 8 * width, "layer3", policy, pool="pool3")
    r = _conv_bn_relu(_conv_bn_relu(x, 8 * width, "res3a", policy), 8 * width, "res3b", policy)
    x = layers.Add(name="res3", dtype=policy)([x, r])
    x = layers.GlobalMaxPooling2D(name="pool", dtype=policy)(x)
    x = layers.Rescaling(logit_scale, name="logit_scale", dtype=policy)(x)
    logits = layers.Dense(n_classes, name="logits", dtype="float32")(x)
    model = keras.Model(inputs, logits, name=f"resnet9_w{width}")
    dirac_init(model, skip=("prep_conv",))
    return model


def float32_copy(model):
    """``model`` itself if every layer is a Keras layer computing in float32, else its float32 twin: the same network
    of Keras' own layers (:func:`fused_batch_norm`'s become ``BatchNormalization``), holding a copy of ``model``'s
    current weights, computing in float32. It is what labelmend saves, scores, judges labels with and
    exports (onnxruntime's CPU kernels have no bfloat16 convolutions), so every figure a run reports is the shipped
    graph's. One twin per model, refreshed on every call, so its traced functions are reused."""
    import keras

    fused = fused_batch_norm()
    if all(layer.dtype_policy.name == "float32" and not isinstance(layer, fused) for layer in model.layers):
        return model
    twin = _FLOAT32_TWINS.get(model)
    if twin is None:
        def as_float32(layer):
            cls = keras.layers.BatchNormalization if isinstance(layer, fused) else layer.__class__
            return cls.from_config({**layer.get_config(), "dtype": "float32"})

        twin = _FLOAT32_TWINS[model] = keras.models.clone_model(model, clone_function=as_float32)
    twin.set_weights(model.get_weights())
    return twin


_FLOAT32_TWINS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def whitening_filters(images: np.ndarray, n_filters: int, *, patch: int = 2, eps: float = 5e-4,
                      max_images: int = 2000, seed: int = 0) -> np.ndarray:
    """(patch, patch, 3, n_filters) float32 conv kernel that whitens the images' patch × patch × 3 patches.

    The patches' covariance (pixels scaled to [-1, 1] as in the model) has eigenvectors v_i and eigenvalues λ_i; the
    filters are ±v_i / sqrt(λ_i + eps) for the n_filters / 2 largest λ_i (airbench's first layer: decorrelated,
    equal-variance inputs, and the ± pair keeps both signs through the ReLU).
    """
    if n_filters % 2 or n_filters // 2 > patch * patch * 3:
        raise ValueError(f"n_filters must be even and at most {2 * patch * patch * 3}, got {n_filters}")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(images), size=min(max_images, len(images)), replace=False)
    x = images[np.sort(pick)].astype(np.float32) / 127.5 - 1.0
    windows = np.lib.stride_tricks.sliding_window_view(x, (patch, patch), axis=(1, 2))  # (N, h, w, 3, p, p)
    patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, patch * patch * 3)         # (kh, kw, c) order
    patches = patches - patches.mean(axis=0)
    cov = (patches.T.astype(np.float64) @ patches) / (len(patches) - 1)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)                                        # ascending
    top = np.argsort(eigenvalues)[::-1][: n_filters // 2]
    w = eigenvectors[:, top] / np.sqrt(eigenvalues[top] + eps)
    return np.concatenate([w, -w], axis=1).reshape(patch, patch, 3, n_filters).astype(np.float32)


def dirac_init(model, *, skip=()) -> None:
    """Set each 3x3 convolution's first in-channels filters to the identity (airbench's dirac init); the other
    filters keep their random initialisation."""
    from keras import layers

    for layer in model.layers:
        if isinstance(layer, layers.Conv2D) and layer.name not in skip:
            kernel = layer.kernel.numpy()
            kh, kw, c_in, c_out = kernel.shape
            n = min(c_in, c_out)
            kernel[:, :, :, :n] = 0.0
            kernel[kh // 2, kw // 2, np.arange(n), np.arange(n)] = 1.0
            layer.kernel.assign(kernel)


def predict_proba(model, images: np.ndarray, *, batch_size: int = HYP["eval"]["batch_size"],
                  flip_tta: bool = HYP["eval"]["flip_tta"]) -> np.ndarray:
    """Class probabilities (N, K) float32 of uint8/float images (N, 32, 32, 3), in batches."""
    import tensorflow as tf

    fns = _PROBABILITY_FUNCTIONS.setdefault(model, {})
    if flip_tta not in fns:  # one traced function per model and TTA setting, reused by every validation pass
        fns[flip_tta] = probability_function(model, flip_tta=flip_tta)
    fn = fns[flip_tta]
    out = [fn(tf.constant(images[i:i + batch_size], dtype=tf.float32)).numpy()
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)


_PROBABILITY_FUNCTIONS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def probability_function(model, *, flip_tta: bool = HYP["eval"]["flip_tta"]):
    """A ``tf.function`` raw images → probabilities: what is exported to ONNX, and what evaluation uses."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.float32, name="images")], reduce_retracing=True)
    def probabilities(images):
        if flip_tta:  # one call on [images; mirrored images]: cheaper than two calls, above all for one image
            n = tf.shape(images)[0]
            both = model(tf.concat([images, tf.reverse(images, axis=[2])], axis=0), training=False)
            logits = 0.5 * (both[:n] + both[n:])
        else:
            logits = model(images, training=False)
        return tf.nn.softmax(logits, axis=-1)

    return probabilities


def one_hot(labels: np.ndarray, n_classes: int, *, smoothing: float = 0.0) -> np.ndarray:
    """(N,) ints → (N, K) float32 targets with ``smoothing`` spread uniformly."""
    out = np.full((len(labels), n_classes), smoothing / n_classes, dtype=np.float32)
    out[np.arange(len(labels)), labels] += 1.0 - smoothing
    return out
