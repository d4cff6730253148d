"""The CNN shared by Model I and Model II: hyperparameters → layers → make_model → predict → training loop.

A ResNet-9-style network (airbench / DAWNBench lineage) narrowed to fit a 2-core CPU. One training loop serves
every stage of both models: each training image carries a target distribution over the K = 10 classes and a flag
saying whether that target is a *noisy* label to be matched through the transition matrix T (forward correction,
Patrini et al. 2017, eq. 6) or a label to be matched directly. Model I uses only direct targets (noisy labels taken
as clean); Model II mixes clean labels, forward-corrected noisy labels and posterior-corrected soft labels.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HYP = {
    "net": {
        "width": 16,             # channels of the first block; later 2x, 4x, 8x (16: ~900 img/s on 2 cores)
        "gpu_width": 64,         # the width used when TensorFlow sees a GPU (same budget buys far more there)
        "logit_scale": 0.125,    # multiplies the pooled features before the classifier (airbench's 1/8): keeps the
                                 # initial logits small, which a max-pooled ResNet needs to train stably at high LR
    },
    "opt": {
        "batch_size": 256,       # images per step; larger batches are faster per image on CPU
        "lr": 0.2,               # peak SGD learning rate (Nesterov), reached after warmup
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


# ---------------------------------------------------------------- layers and model


def _conv_bn_relu(x, channels: int, name: str):
    from keras import layers

    x = layers.Conv2D(channels, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def make_model(*, width: int = HYP["net"]["width"], logit_scale: float = HYP["net"]["logit_scale"], n_classes: int = 10,
               seed: int = 0):
    """ResNet-9-style CNN: raw RGB (N, 32, 32, 3) float32 in [0, 255] → logits (N, n_classes).

    Scaling to [-1, 1] happens inside the model, so the exported graph takes raw pixel values.
    """
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3), name="images")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(inputs)
    x = _conv_bn_relu(x, width, "prep")
    x = _conv_bn_relu(x, 2 * width, "layer1")
    x = layers.MaxPooling2D(name="pool1")(x)
    r = _conv_bn_relu(_conv_bn_relu(x, 2 * width, "res1a"), 2 * width, "res1b")
    x = layers.Add(name="res1")([x, r])
    x = _conv_bn_relu(x, 4 * width, "layer2")
    x = layers.MaxPooling2D(name="pool2")(x)
    x = _conv_bn_relu(x, 8 * width, "layer3")
    x = layers.MaxPooling2D(name="pool3")(x)
    r = _conv_bn_relu(_conv_bn_relu(x, 8 * width, "res3a"), 8 * width, "res3b")
    x = layers.Add(name="res3")([x, r])
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    x = layers.Rescaling(logit_scale, name="logit_scale")(x)
    logits = layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=f"resnet9_w{width}")


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


# ---------------------------------------------------------------- training loop

WARM_UP_STEPS = 3  # the first steps of a fit trace the graph (twice: variables are created on the first call)


@dataclass
class TrainingTargets:
    """What one training stage fits. ``images`` (N, 32, 32, 3) uint8; ``targets`` (N, K) float32 distributions;
    ``forward`` (N,) bool: True where the target is a noisy label matched through T (forward correction)."""

    images: np.ndarray
    targets: np.ndarray
    forward: np.ndarray

    def __post_init__(self):
        n = len(self.images)
        if self.targets.shape[0] != n or self.forward.shape != (n,):
            raise ValueError(f"images ({n}), targets {self.targets.shape} and forward {self.forward.shape} disagree")


@dataclass
class History:
    """Per-epoch curves of one training stage, plus wall time and how the budget was spent."""

    epoch: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)
    lr: list = field(default_factory=list)        # learning rate of the epoch's last step
    steps: int = 0
    planned_steps: int = 0
    progress: float = 0.0      # schedule progress reached, in [0, 1] (1 = annealed to zero)
    final_lr: float = 0.0      # learning rate of the last step taken
    seconds: float = 0.0
    warm_seconds: float = 0.0  # time after this call's first WARM_UP_STEPS steps (graph tracing, kernel selection)
    stopped_early: bool = False  # the deadline, not the planned steps, ended training (still annealed)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def one_hot(labels: np.ndarray, n_classes: int = 10, *, smoothing: float = 0.0) -> np.ndarray:
    """(N,) ints → (N, K) float32 targets with ``smoothing`` spread uniformly."""
    out = np.full((len(labels), n_classes), smoothing / n_classes, dtype=np.float32)
    out[np.arange(len(labels)), labels] += 1.0 - smoothing
    return out


def one_cycle(progress: float, *, peak: float, warmup_frac: float) -> float:
    """Learning rate at ``progress`` in [0, 1]: linear warm-up to ``peak``, then linear decay to 0 at progress 1."""
    p = min(max(progress, 0.0), 1.0)
    if p < warmup_frac:
        return peak * p / warmup_frac
    return peak * (1.0 - p) / max(1e-12, 1.0 - warmup_frac)


class BudgetClock:
    """Progress through a training budget of ``steps`` steps and, optionally, wall time up to ``deadline``.

    progress = max(steps done / planned, time used / time allotted), so the schedule follows whichever budget runs
    out first: a machine slower than its calibration still anneals to zero exactly at its deadline. ``start`` is
    the progress already made when this clock starts (a resumed stage); the rest is spread over what is left.
    """

    def __init__(self, steps: int, *, deadline: float | None = None, start: float = 0.0, done_steps: int = 0,
                 clock=time.monotonic):
        self.steps, self.deadline, self.clock = steps, deadline, clock
        self.start, self.done_steps = start, done_steps
        self.t0 = clock()

    def progress(self, step: int) -> float:
        left = max(1, self.steps - self.done_steps)
        p = self.start + (1.0 - self.start) * (step - self.done_steps) / left
        if self.deadline is not None:
            allotted = self.deadline - self.t0
            p_time = 1.0 if allotted <= 0 else (self.clock() - self.t0) / allotted
            p = max(p, self.start + (1.0 - self.start) * p_time)
        return min(p, 1.0)


def fit(model, data: TrainingTargets, *, steps: int, transition: np.ndarray | None = None,
        val: tuple[np.ndarray, np.ndarray] | None = None, seed: int = 0, deadline: float | None = None,
        hyp: dict = HYP, progress: bool = True, desc: str = "training", checkpoint: Path | None = None,
        clock=time.monotonic) -> History:
    """Train ``model`` for at most ``steps`` SGD steps on ``data`` (one learning-rate cycle); returns its History.

    ``transition`` (K, K) is required when any ``data.forward`` is True. ``val`` = (images, clean labels) is scored
    after every epoch. ``deadline`` (a ``clock()`` time) is a wall-time budget: the learning-rate schedule runs on
    :class:`BudgetClock` progress, so training that reaches the deadline before its planned steps still ends with
    the learning rate annealed to zero (``History.stopped_early`` says so). ``checkpoint`` (a path prefix) saves
    model + optimizer + curves after every epoch and, if a checkpoint is already there, resumes from it: finished
    epochs are skipped (their batch order is replayed, so the remaining epochs see the same batches as an
    uninterrupted run).
    """
    import keras
    import tensorflow as tf
    from keras import layers

    from labelmend._progress import progress_bar

    opt_h, aug_h = hyp["opt"], hyp["aug"]
    bs = min(opt_h["batch_size"], len(data.images))
    if bs == 0 or steps <= 0:
        raise ValueError(f"nothing to train: {len(data.images)} images, {steps} steps")
    k = data.targets.shape[1]
    if data.forward.any() and transition is None:
        raise ValueError("forward-corrected targets need the transition matrix")
    T = tf.constant(transition if transition is not None else np.eye(k), dtype=tf.float32)

    # the learning rate is a variable set from budget progress before every step (no retracing, no step schedule)
    optimizer = keras.optimizers.SGD(learning_rate=0.0, momentum=opt_h["momentum"], nesterov=True,
                                     weight_decay=opt_h["weight_decay"])
    augment = []
    if aug_h["flip"]:
        augment.append(layers.RandomFlip("horizontal", seed=seed))
    if aug_h["translate_px"]:
        f = aug_h["translate_px"] / 32
        augment.append(layers.RandomTranslation(f, f, fill_mode="reflect", interpolation="nearest", seed=seed + 1))

    @tf.function(reduce_retracing=True)
    def train_step(x, target, fwd):
        x = tf.cast(x, tf.float32)
        for aug in augment:
            x = aug(x, training=True)
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(corrected_cross_entropy(logits, target, fwd, T))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        correct = tf.reduce_sum(tf.cast(tf.argmax(logits, 1) == tf.argmax(target, 1), tf.float32))
        return loss, correct

    rng = np.random.default_rng(seed)
    n = len(data.images)
    steps_per_epoch = max(1, n // bs)
    n_epochs = math.ceil(steps / steps_per_epoch)
    hist = History(planned_steps=steps)
    t0 = clock()
    step = start_epoch = 0
    t_warm = None
    first_step = step
    ckpt = None
    if checkpoint is not None:
        optimizer.build(model.trainable_variables)
        ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer)
        state = _read_checkpoint_state(checkpoint)
        if state is not None:
            ckpt.read(state["path"]).assert_consumed()
            hist = History(**state["history"])
            start_epoch, step = state["epoch"], hist.steps
            first_step = step
            t0 -= hist.seconds
    budget = BudgetClock(steps, deadline=deadline, start=hist.progress, done_steps=step, clock=clock)
    p = hist.progress
    with progress_bar(total=steps, desc=desc, unit="step", disable=not progress, initial=step) as bar:
        for epoch in range(n_epochs):
            order = rng.permutation(n)
            if epoch < start_epoch:
                continue
            loss_sum = correct_sum = seen = 0.0
            for b in range(steps_per_epoch):
                p = budget.progress(step)
                if p >= 1.0:
                    hist.stopped_early = step < steps
                    break
                hist.final_lr = one_cycle(p, peak=opt_h["lr"], warmup_frac=opt_h["warmup_frac"])
                optimizer.learning_rate.assign(hist.final_lr)
                idx = np.sort(order[b * bs:(b + 1) * bs])
                loss, correct = train_step(data.images[idx], data.targets[idx], data.forward[idx])
                loss_sum += float(loss) * len(idx)
                correct_sum += float(correct)
                seen += len(idx)
                step += 1
                if step - first_step == WARM_UP_STEPS:
                    t_warm = clock()
                bar.update(1)
            if seen:
                hist.epoch.append(epoch + 1)
                hist.train_loss.append(loss_sum / seen)
                hist.train_acc.append(correct_sum / seen)
                hist.lr.append(hist.final_lr)
                if val is not None and len(val[0]):
                    probs = predict_proba(model, val[0], flip_tta=False)
                    hist.val_loss.append(float(-np.mean(np.log(probs[np.arange(len(val[1])), val[1]] + 1e-7))))
                    hist.val_acc.append(float(np.mean(probs.argmax(1) == val[1])))
                    bar.set_postfix(val_acc=f"{hist.val_acc[-1]:.3f}", lr=f"{hist.final_lr:.3f}")
                if ckpt is not None:
                    hist.steps, hist.seconds, hist.progress = step, clock() - t0, budget.progress(step)
                    _write_checkpoint_state(checkpoint, ckpt.write(str(checkpoint)), epoch + 1, hist)
            if hist.stopped_early or p >= 1.0:
                break
    hist.steps = step
    hist.progress = 1.0 if step >= steps or hist.stopped_early else budget.progress(step)
    hist.seconds = clock() - t0
    hist.warm_seconds = clock() - t_warm if t_warm is not None else 0.0
    return hist


def corrected_cross_entropy(logits, target, forward, transition):
    """Per-example cross-entropy (N,) of ``target`` (N, K) against softmax(logits), or, where ``forward`` (N,) is
    True, against softmax(logits) @ T (Patrini et al. 2017, eq. 6: the predicted distribution of the noisy label)."""
    import tensorflow as tf

    p = tf.nn.softmax(logits)
    q = tf.where(forward[:, None], tf.matmul(p, transition), p)
    return -tf.reduce_sum(target * tf.math.log(q + 1e-7), axis=1)


def _read_checkpoint_state(prefix: Path) -> dict | None:
    path = Path(f"{prefix}.json")
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _write_checkpoint_state(prefix: Path, ckpt_path: str, epoch: int, hist: History) -> None:
    """Record which checkpoint holds which epoch; written after the checkpoint itself, replaced atomically."""
    path = Path(f"{prefix}.json")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"path": ckpt_path, "epoch": epoch, "history": hist.as_dict()}), encoding="utf-8")
    os.replace(tmp, path)
