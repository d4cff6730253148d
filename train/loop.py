"""The training loop: one ``fit`` for every stage of every method, run under a ``tf.distribute`` strategy.

``fit(model, batches, loss=..., optimizer=..., steps=...)`` takes SGD steps on :class:`~labelmend.train.inputs.Batches`
with any per-example loss ``loss(logits, targets, forward) -> (B,)``, setting the optimizer's learning rate before each
step from budget progress (:mod:`labelmend.train.budget`), so a deadline ends training annealed. After each epoch (a
pass over the training images) it records curves, runs the ``callbacks`` and saves a checkpoint from which an
interrupted run resumes at the same step with the same batches.

:class:`Trainer` carries what every stage of a method shares — hyperparameters, seed, strategy, deadline, progress
bars, checkpoint folder — and builds the model, optimizer and batches for :func:`fit`, so a method reads as its recipe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from labelmend.train import budget, cnn, distribute
from labelmend.train.inputs import Batches, TrainingTargets
from labelmend.train.task import accuracy

from labelmend._atomic import write_json

WARM_UP_STEPS = 3  # the first steps of a fit trace the graph (twice: variables are created on the first call)
CALIBRATION_STEPS = 16  # timed steps of the real network, after its warm-up steps


@dataclass
class History:
    """Per-epoch curves of one training stage, plus wall time and how the budget was spent."""

    epoch: list = field(default_factory=list)       # epochs done (passes over the training images), x-axis
    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)
    lr: list = field(default_factory=list)          # learning rate of the epoch's last step
    steps: int = 0
    planned_steps: int = 0
    progress: float = 0.0      # schedule progress reached, in [0, 1] (1 = annealed to zero)
    final_lr: float = 0.0      # learning rate of the last step taken
    seconds: float = 0.0
    warm_seconds: float = 0.0  # time after this call's first WARM_UP_STEPS steps (graph tracing, kernel selection)
    stopped_early: bool = False  # the deadline, not the planned steps, ended training (still annealed)
    resumed_from_step: int | None = None  # the checkpoint an interrupted stage continued from

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def cross_entropy(logits, target, forward=None):
    """Per-example cross-entropy (B,) of the target distributions (B, K) against softmax(logits)."""
    import tensorflow as tf

    return -tf.reduce_sum(target * tf.nn.log_softmax(logits), axis=1)


def sgd(hyp: dict):
    """Nesterov SGD with decoupled weight decay; its learning rate is set by :func:`fit` before every step."""
    import keras

    opt = hyp["opt"]
    return keras.optimizers.SGD(learning_rate=0.0, momentum=opt["momentum"], nesterov=True,
                                weight_decay=opt["weight_decay"])


def fit(model, batches: Batches, *, steps: int, loss=cross_entropy, optimizer, peak_lr: float, warmup_frac: float,
        strategy=None, deadline: float | None = None, epoch_offset: float = 0.0, callbacks=(),
        checkpoint: Path | None = None, progress: bool = True, desc: str = "training",
        cycle: tuple[float, float] = (0.0, 1.0), replan=None, clock=time.monotonic) -> History:
    """Take at most ``steps`` SGD steps on ``batches`` (one learning-rate cycle up to ``peak_lr``); return History.

    ``cycle`` = (start, end) runs only that part of the cycle (a stage that continues another's schedule ends at
    ``end``; only ``end`` = 1 anneals to zero).

    ``deadline`` (a ``clock()`` time) is a wall-time budget: the schedule runs on
    :class:`~labelmend.train.budget.BudgetClock` progress, so training that reaches the deadline first still ends
    with the learning rate annealed to zero (``History.stopped_early``). ``callbacks`` are called as
    ``callback(history)`` after each epoch (``epoch_offset`` shifts the epoch axis of a later stage). ``checkpoint``
    (a path prefix) saves model + optimizer + curves after every epoch and resumes from it if present. ``model`` and
    ``optimizer`` must have been made under ``strategy.scope()``.

    ``replan`` (a callable: (steps done, measured seconds per step) → steps) is asked once, after
    :data:`~labelmend.train.budget.REPLAN_STEPS` timed steps, for the step count to train instead of ``steps``
    (between one more step and ``REPLAN_MAX_GROWTH`` × ``steps``); the schedule stretches or shrinks to it.
    """
    import tensorflow as tf

    from labelmend._progress import progress_bar

    strategy = strategy or tf.distribute.get_strategy()
    if steps <= 0:
        raise ValueError(f"nothing to train: {steps} steps")
    global_batch = batches.batch_size

    @tf.function
    def train_step(x, target, forward):
        def replica_step(x, target, forward):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                per_example = loss(logits, target, forward)
                mean = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            grads = tape.gradient(mean, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            correct = tf.reduce_sum(tf.cast(tf.argmax(logits, 1) == tf.argmax(target, 1), tf.float32))
            return tf.reduce_sum(per_example), correct

        loss_sum, correct = strategy.run(replica_step, args=(x, target, forward))
        return (strategy.reduce(tf.distribute.ReduceOp.SUM, loss_sum, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None))

    hist = History(planned_steps=steps)
    t0 = clock()
    step = 0
    ckpt = None
    with strategy.scope():  # its slots now, not lazily inside the (replicated) step function
        optimizer.build(model.trainable_variables)
    if checkpoint is not None:
        ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer)
        state = _agreed_checkpoint_state(checkpoint, strategy)
        if state is not None:
            ckpt.read(state["path"]).assert_consumed()
            hist = History(**state["history"])
            step = hist.resumed_from_step = hist.steps
            t0 -= hist.seconds
    first_step, t_warm = step, None
    budget_clock = budget.BudgetClock(steps, deadline=deadline, start=hist.progress, done_steps=step, clock=clock)
    per_epoch = batches.steps_per_epoch
    loss_sum = correct_sum = seen = 0.0
    most = steps if replan is None else int(steps * budget.REPLAN_MAX_GROWTH)  # the batches drawn up front

    def end_epoch():
        nonlocal loss_sum, correct_sum, seen
        # passes over the training images at the global batch (a checkpoint every ``per_epoch`` whole steps)
        hist.epoch.append(round(epoch_offset + step * global_batch / batches.epoch_images, 4))
        hist.train_loss.append(loss_sum / seen)
        hist.train_acc.append(correct_sum / seen)
        hist.lr.append(hist.final_lr)
        for callback in callbacks:
            callback(hist)
        loss_sum = correct_sum = seen = 0.0
        if ckpt is not None:
            hist.steps, hist.seconds, hist.progress = step, clock() - t0, budget_clock.progress(step)
            _write_checkpoint_state(checkpoint, ckpt.write(f"{checkpoint}-{step}"), hist)

    with progress_bar(total=steps, desc=desc, unit="step", disable=not progress, initial=step) as bar:
        for x, target, forward in batches.dataset(strategy, steps=most, start=step):
            p = budget_clock.progress(step)
            if p >= 1.0:
                hist.stopped_early = step < steps
                break
            hist.final_lr = budget.one_cycle(cycle[0] + (cycle[1] - cycle[0]) * p, peak=peak_lr,
                                             warmup_frac=warmup_frac)
            optimizer.learning_rate.assign(hist.final_lr)
            batch_loss, correct = train_step(x, target, forward)
            loss_sum += float(batch_loss)
            correct_sum += float(correct)
            seen += global_batch
            step += 1
            if step - first_step == WARM_UP_STEPS:
                t_warm = clock()
            elif replan is not None and step - first_step == WARM_UP_STEPS + budget.REPLAN_STEPS:
                steps = min(most, max(step + 1, int(replan(step, (clock() - t_warm) / budget.REPLAN_STEPS))))
                budget_clock.steps = hist.planned_steps = bar.total = steps
                replan = None
            bar.update(1)
            if step % per_epoch == 0:
                end_epoch()
                if hist.val_acc:
                    bar.set_postfix(val_acc=f"{hist.val_acc[-1]:.3f}", lr=f"{hist.final_lr:.3f}")
        if seen:  # a last, partial epoch
            end_epoch()
    average_non_trainable(model, strategy)
    hist.steps = step
    hist.progress = 1.0 if step >= steps or hist.stopped_early else budget_clock.progress(step)
    hist.seconds = clock() - t0
    hist.warm_seconds = clock() - t_warm if t_warm is not None else 0.0
    return hist


def average_non_trainable(model, strategy) -> None:
    """Give every replica (and worker) the mean of the non-trainable variables. BatchNorm's moving statistics are
    updated by each replica from its own slice of the batch, so they drift apart while the trainable weights, all-
    reduced every step, stay equal; averaged, every worker ends with the same model."""
    if strategy.num_replicas_in_sync <= 1:
        return
    import tensorflow as tf

    for v in model.non_trainable_variables:
        var = getattr(v, "value", v)  # Keras 3 wraps the (distributed) tf.Variable
        parts = getattr(var, "values", None) or (var,)
        local = strategy.experimental_distribute_values_from_function(
            lambda ctx, parts=parts: tf.identity(parts[ctx.replica_id_in_sync_group % len(parts)]))
        var.assign(strategy.reduce(tf.distribute.ReduceOp.MEAN, local, axis=None))


def validation_callback(model, images: np.ndarray, labels: np.ndarray, *, batch_size: int):
    """An epoch callback that appends the validation loss and accuracy (single pass, no TTA) to the history."""

    def validate(hist: History) -> None:
        if not len(labels):
            return
        probs = cnn.predict_proba(model, images, batch_size=batch_size, flip_tta=False)
        hist.val_loss.append(float(-np.mean(np.log(probs[np.arange(len(labels)), labels] + 1e-7))))
        hist.val_acc.append(accuracy(probs, labels))

    return validate


@dataclass
class Trainer:
    """What every stage of a method shares. ``deadline`` is the method's whole wall-time budget (a
    ``time.monotonic()`` time, or None); ``checkpoints`` a folder for per-epoch checkpoints (or None)."""

    hyp: dict = field(default_factory=lambda: cnn.hyperparameters())
    seed: int = 0
    deadline: float | None = None
    progress: bool = True
    checkpoints: Path | None = None
    strategy: object = None
    clock: object = time.monotonic
    device: str | None = None  # "gpu" or "cpu", as distribute.configure_tensorflow found it (None: look)
    replan: object = None  # ``fit``'s replan, handed to the first fit of a whole learning-rate cycle, then dropped

    def __post_init__(self):
        import tensorflow as tf

        self.strategy = self.strategy or tf.distribute.get_strategy()
        if self.device is None:
            self.device = "gpu" if tf.config.list_logical_devices("GPU") else "cpu"
        self.policy = cnn.dtype_policy(self.hyp["net"].get("precision", "float32"), device=self.device)

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    @property
    def batch_size(self) -> int:
        return distribute.global_batch_size(self.hyp, self.replicas)

    def model(self, n_classes: int, images: np.ndarray):
        """A fresh network of the run's width and precision (``policy``), built under the strategy; ``images``
        (uint8, the training images) give the whitening filters."""
        net = self.hyp["net"]
        with self.strategy.scope():
            return cnn.make_model(images, n_classes=n_classes, width=net["width"], logit_scale=net["logit_scale"],
                                  seed=self.seed, policy=self.policy)

    def calibrate(self, images: np.ndarray, n_classes: int) -> tuple[float, float]:
        """Wall seconds of one training step of the real network, input pipeline and strategy on this machine, and
        of predicting one image (as judging every label does)."""
        n = min(len(images), self.batch_size * 4)
        data = TrainingTargets(images[:n], cnn.one_hot(np.arange(n) % n_classes, n_classes), np.zeros(n, bool))
        model = self.model(n_classes, images[:n])
        hist = self.fit(model, data, steps=WARM_UP_STEPS + CALIBRATION_STEPS, name="calibration", desc="calibration")
        self.predict_proba(model, images[:8])  # traces the inference function
        t0 = time.monotonic()
        self.predict_proba(model, images[:n])
        return hist.warm_seconds / CALIBRATION_STEPS, (time.monotonic() - t0) / n

    def predict_proba(self, model, images: np.ndarray) -> np.ndarray:
        """P(y | x) (N, K) of ``model``'s float32 twin (:func:`~labelmend.train.cnn.float32_copy`): the shipped
        graph's arithmetic whatever the training precision."""
        return cnn.predict_proba(cnn.float32_copy(model), images, batch_size=self.hyp["eval"]["batch_size"],
                                 flip_tta=self.hyp["eval"]["flip_tta"])

    def fit(self, model, data: TrainingTargets, *, steps: int, name: str, desc: str, loss=cross_entropy,
            cycle: tuple[float, float] = (0.0, 1.0), deadline: float | None = None,
            epoch_images: int | None = None, epoch_offset: float = 0.0,
            val: tuple[np.ndarray, np.ndarray] | None = None, seed_offset: int = 0) -> History:
        """One learning-rate cycle (or its ``cycle`` part) of at most ``steps`` steps on ``data`` with a fresh
        optimizer; ``name`` keys the checkpoint, ``deadline`` defaults to the method's."""
        opt, aug = self.hyp["opt"], self.hyp["aug"]
        with self.strategy.scope():
            optimizer = sgd(self.hyp)
        batches = Batches(data, self.batch_size, seed=self.seed + seed_offset, epoch_images=epoch_images,
                          flip=aug["flip"], translate_px=aug["translate_px"], replicas=self.replicas)
        callbacks = [] if val is None else [validation_callback(model, *val, batch_size=self.hyp["eval"]["batch_size"])]
        # only a single-stage method can change its own step count; a stage of a longer recipe has its share
        replan, self.replan = (self.replan, None) if cycle == (0.0, 1.0) else (None, self.replan)
        return fit(model, batches, steps=steps, loss=loss, optimizer=optimizer, strategy=self.strategy,
                   peak_lr=distribute.peak_learning_rate(self.hyp, self.replicas),
                   warmup_frac=opt["warmup_frac"], deadline=self.deadline if deadline is None else deadline,
                   epoch_offset=epoch_offset, callbacks=callbacks, progress=self.progress, desc=desc,
                   checkpoint=None if self.checkpoints is None else Path(self.checkpoints) / name,
                   cycle=cycle, replan=replan, clock=self.clock)


def read_checkpoint_state(prefix: Path) -> dict | None:
    """The newest checkpoint's record (path, step, epoch, history), with the older ones kept under "previous"."""
    from labelmend.run_format import read_partial_state

    return read_partial_state(Path(f"{prefix}.json"))


def _agreed_checkpoint_state(prefix: Path, strategy) -> dict | None:
    """The checkpoint to resume from: the newest one every worker holds (one worker: its newest)."""
    from labelmend.errors import ClusterError

    state = read_checkpoint_state(prefix)
    states = [] if state is None else [state, *state.get("previous", [])]
    step = distribute.agree_min(strategy, states[0]["step"] if states else 0)
    chosen = next((s for s in states if s["step"] == step), None)
    if step and chosen is None:
        raise ClusterError(f"{prefix}: no checkpoint of step {step}, the newest every worker holds (this one keeps "
                           f"steps {[s['step'] for s in states]}); the workers' runs diverged: start the run afresh")
    return chosen


def _write_checkpoint_state(prefix: Path, ckpt_path: str, hist: History) -> None:
    """Record which checkpoint holds which step; written after the checkpoint itself, replaced atomically. The
    last :data:`~labelmend.train.distribute.KEPT_CHECKPOINTS` are kept; older files are removed afterwards."""
    path = Path(f"{prefix}.json")
    old = read_checkpoint_state(prefix)
    kept = [] if old is None else [old, *old.pop("previous", [])]
    kept = [s for s in kept if s["path"] != ckpt_path]
    keep, drop = kept[:distribute.KEPT_CHECKPOINTS - 1], kept[distribute.KEPT_CHECKPOINTS - 1:]
    write_json(path, {"path": ckpt_path, "step": hist.steps, "epoch": hist.epoch[-1] if hist.epoch else 0,
                      "history": hist.as_dict(), "previous": keep})
    for state in drop:
        for f in Path(state["path"]).parent.glob(Path(state["path"]).name + ".*"):
            f.unlink(missing_ok=True)
