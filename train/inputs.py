"""The CNN input pipeline on ``tf.data``: seeded batch order, augmentation in the pipeline, prefetch.

A training stage fits :class:`TrainingTargets` (images, a target distribution per image, and a flag for targets to be
matched through the noise transition matrix). :class:`Batches` fixes the order of every step up front — concatenated
seeded permutations of the rows, cut into global batches — so step ``s`` always sees the same images: a resumed run
skips exactly the steps it has done, and a run under several replicas gives each replica a disjoint slice of the same
global batch. Augmentation (a mirror, a random translation with reflect padding) is seeded by (seed, step, slice),
and runs inside the pipeline, overlapped with training by ``prefetch``. The mirror is drawn at random per image and
step ("random"), or alternates (airbench's alternating flip, "alternating"): each row is mirrored at random in its
first pass and then in every other pass only, so two consecutive passes always show both of its sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLIPS = ("random", "alternating", "off")  # how training images are mirrored


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
class Batches:
    """Seeded global batches of ``data`` rows: ``batch_size`` rows per step, ``epoch_images`` images per epoch.

    ``epoch_images`` is the number of *distinct* CNN training images (an epoch is one pass over them, whatever rows a
    method repeats), so every model's curves share an x-axis.
    """

    data: TrainingTargets
    batch_size: int
    seed: int = 0
    epoch_images: int | None = None
    flip: str = "random"    # one of FLIPS
    translate_px: int = 2
    replicas: int = 1       # the global batch is cut to a multiple of this (one equal slice per replica)

    def __post_init__(self):
        if self.flip not in FLIPS:
            raise ValueError(f"flip must be one of {FLIPS}, not {self.flip!r}")
        self.batch_size = min(self.batch_size, len(self.data.images))
        self.batch_size -= self.batch_size % self.replicas
        if self.batch_size <= 0:
            raise ValueError("nothing to train: no images")
        self.epoch_images = self.epoch_images or len(self.data.images)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.epoch_images // self.batch_size)

    def order(self, steps: int) -> np.ndarray:
        """(steps, batch_size) row indices: seeded permutations of all rows, concatenated, cut into batches."""
        return self._plan(steps)[0]

    def mirrored(self, steps: int) -> np.ndarray:
        """(steps, batch_size) bool: whether :meth:`order`'s rows are mirrored under the alternating flip — a seeded
        coin per row in its first pass over the data, the opposite side in the next pass, and so on."""
        rows, passes = self._plan(steps)
        coin = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(1,)))  # apart from the orders' seeds
        first = coin.random(len(self.data.images)) < 0.5
        return first[rows] ^ (passes % 2 == 1)

    def _plan(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`order`'s rows and, for each, which pass over the data (0, 1, …) it belongs to."""
        n = len(self.data.images)
        total = steps * self.batch_size
        perms = [np.random.default_rng([self.seed, e]).permutation(n) for e in range(-(-total // n))]
        rows = np.concatenate(perms)[:total].reshape(steps, self.batch_size)
        passes = (np.arange(total) // n).reshape(steps, self.batch_size)
        by_row = np.argsort(rows, axis=1, kind="stable")
        return np.take_along_axis(rows, by_row, axis=1), np.take_along_axis(passes, by_row, axis=1)

    def dataset(self, strategy, *, steps: int, start: int = 0):
        """A distributed dataset of steps ``start`` … ``steps``-1: per replica, (images float32, targets, forward)."""
        import tensorflow as tf

        order = self.order(steps)[start:]
        mirrored = self.mirrored(steps)[start:] if self.flip == "alternating" else np.zeros(order.shape, bool)
        replicas = strategy.num_replicas_in_sync
        if self.batch_size % replicas:
            raise ValueError(f"global batch {self.batch_size} does not split over {replicas} replicas")
        per_replica = self.batch_size // replicas
        images = tf.constant(self.data.images)
        targets = tf.constant(self.data.targets, tf.float32)
        forward = tf.constant(self.data.forward)
        random_flip, shift = self.flip == "random", self.translate_px

        def pipeline(context: tf.distribute.InputContext):
            # this pipeline's replicas take consecutive slices of each global batch, one element per replica
            local = replicas // context.num_input_pipelines
            first = context.input_pipeline_id * local
            def mine(a):  # this pipeline's slices of each step's global batch, one per element
                return a.reshape(len(a), replicas, per_replica)[:, first:first + local].reshape(-1, per_replica)

            slice_ids = (np.arange(start, start + len(order))[:, None] * replicas + first + np.arange(local))
            ds = tf.data.Dataset.from_tensor_slices((mine(order), mine(mirrored), slice_ids.reshape(-1)))

            def load(idx, mirror, slice_id):
                seed = tf.stack([tf.constant(self.seed, tf.int64), slice_id])
                if random_flip:
                    mirror = random_mirror(tf.shape(idx)[0], seed)
                x = augment(tf.gather(images, idx), seed, mirror=mirror, translate_px=shift)
                return x, tf.gather(targets, idx), tf.gather(forward, idx)

            options = tf.data.Options()
            options.autotune.enabled = False               # no tuning thread competing with training for the cores
            options.threading.private_threadpool_size = 1  # one thread prepares the next batch while a step runs
            options.threading.max_intra_op_parallelism = 1
            return ds.map(load).prefetch(1).with_options(options)

        return strategy.distribute_datasets_from_function(pipeline)


def random_mirror(n, seed):
    """(n,) bool: a fair coin per image, stateless-random with ``seed`` (2 ints)."""
    import tensorflow as tf

    return tf.random.stateless_uniform([n], seed + 1) < 0.5


def augment(images, seed, *, mirror, translate_px: int):
    """uint8 (B, 32, 32, 3) → float32, mirrored where ``mirror`` ((B,) bool, or None: nowhere) and shifted at random by
    up to ``translate_px`` pixels (reflect padding); stateless-random with ``seed`` (2 ints), so the same seed gives
    the same augmentation."""
    import tensorflow as tf

    x = tf.cast(images, tf.float32)
    b, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    if translate_px:
        t = translate_px
        padded = tf.pad(x, [[0, 0], [t, t], [t, t], [0, 0]], mode="REFLECT")
        offset = tf.random.stateless_uniform([b, 2], seed, minval=0, maxval=2 * t + 1, dtype=tf.int32)
        rows = offset[:, :1] + tf.range(h)[None]
        cols = offset[:, 1:] + tf.range(w)[None]
        x = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    if mirror is not None:
        x = tf.where(mirror[:, None, None, None], tf.reverse(x, axis=[2]), x)
    return x
