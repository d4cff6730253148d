"""The CNN input pipeline on ``tf.data``: seeded batch order, augmentation in the pipeline, prefetch.

A training stage fits :class:`TrainingTargets` (images, a target distribution per image, and a flag for targets to be
matched through the noise transition matrix). :class:`Batches` fixes the order of every step up front — concatenated
seeded permutations of the rows, cut into global batches — so step ``s`` always sees the same images: a resumed run
skips exactly the steps it has done, and a run under several replicas gives each replica a disjoint slice of the same
global batch. Augmentation (random mirror, random translation with reflect padding) is stateless-random, seeded by
(seed, step, slice), and runs inside the pipeline, overlapped with training by ``prefetch``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    flip: bool = True
    translate_px: int = 2
    replicas: int = 1       # the global batch is cut to a multiple of this (one equal slice per replica)

    def __post_init__(self):
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
        n = len(self.data.images)
        perms = [np.random.default_rng([self.seed, e]).permutation(n)
                 for e in range(-(-steps * self.batch_size // n))]
        return np.sort(np.concatenate(perms)[:steps * self.batch_size].reshape(steps, self.batch_size), axis=1)

    def dataset(self, strategy, *, steps: int, start: int = 0):
        """A distributed dataset of steps ``start`` … ``steps``-1: per replica, (images float32, targets, forward)."""
        import tensorflow as tf

        order = self.order(steps)[start:]
        replicas = strategy.num_replicas_in_sync
        if self.batch_size % replicas:
            raise ValueError(f"global batch {self.batch_size} does not split over {replicas} replicas")
        per_replica = self.batch_size // replicas
        images = tf.constant(self.data.images)
        targets = tf.constant(self.data.targets, tf.float32)
        forward = tf.constant(self.data.forward)
        flip, shift = self.flip, self.translate_px

        def pipeline(context: tf.distribute.InputContext):
            # this pipeline's replicas take consecutive slices of each global batch, one element per replica
            local = replicas // context.num_input_pipelines
            first = context.input_pipeline_id * local
            rows = order.reshape(len(order), replicas, per_replica)[:, first:first + local]
            slice_ids = (np.arange(start, start + len(order))[:, None] * replicas + first + np.arange(local))
            ds = tf.data.Dataset.from_tensor_slices((rows.reshape(-1, per_replica), slice_ids.reshape(-1)))

            def load(idx, slice_id):
                x = augment(tf.gather(images, idx), tf.stack([tf.constant(self.seed, tf.int64), slice_id]),
                            flip=flip, translate_px=shift)
                return x, tf.gather(targets, idx), tf.gather(forward, idx)

            options = tf.data.Options()
            options.autotune.enabled = False               # no tuning thread competing with training for the cores
            options.threading.private_threadpool_size = 1  # one thread prepares the next batch while a step runs
            options.threading.max_intra_op_parallelism = 1
            return ds.map(load).prefetch(1).with_options(options)

        return strategy.distribute_datasets_from_function(pipeline)


def augment(images, seed, *, flip: bool, translate_px: int):
    """uint8 (B, 32, 32, 3) → float32, randomly mirrored and shifted by up to ``translate_px`` pixels (reflect
    padding); stateless-random with ``seed`` (2 ints), so the same seed gives the same augmentation."""
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
    if flip:
        mirror = tf.random.stateless_uniform([b], seed + 1) < 0.5
        x = tf.where(mirror[:, None, None, None], tf.reverse(x, axis=[2]), x)
    return x
