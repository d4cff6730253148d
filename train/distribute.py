"""Which ``tf.distribute`` strategy trains the CNNs, and how batch size and learning rate scale with its replicas.

- ``TF_CONFIG`` naming several workers → ``MultiWorkerMirroredStrategy`` (one process per machine, same command).
- several visible GPUs → ``MirroredStrategy`` over all of them.
- otherwise the default strategy (one device: the CPU, or the one GPU).

Scaling (the linear scaling rule, Goyal et al. 2017): each replica takes ``opt.batch_size`` images per step, so the
global batch is ``batch_size × replicas`` and the peak learning rate is ``lr × replicas``; the warm-up fraction is
unchanged. Epochs are passes over the training images, so more replicas mean proportionally fewer steps per epoch.

Several workers train in lockstep, so they need the same step plan and no wall-clock deadline: multi-worker runs
take fixed ``--epochs``. Every worker trains; only the chief's run directory is the result (the others write theirs
next to it, suffixed ``.worker<index>``).

``LABELMEND_LOGICAL_CPUS=N`` splits the CPU into N logical devices and mirrors over them: the distributed code path,
testable on a machine without GPUs (it is not faster: the logical devices share the same cores).
"""

from __future__ import annotations

import json
import os

LOGICAL_CPUS_ENV = "LABELMEND_LOGICAL_CPUS"


def configure_devices() -> None:
    """Split the CPU into logical devices if asked; must run before TensorFlow initialises its devices."""
    import tensorflow as tf

    n = logical_cpus()
    if n > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        if len(tf.config.get_logical_device_configuration(cpu) or []) != n:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)


def logical_cpus() -> int:
    value = os.environ.get(LOGICAL_CPUS_ENV, "").strip()
    try:
        n = int(value or 0)
    except ValueError:
        raise ValueError(f"{LOGICAL_CPUS_ENV} must be a whole number, got {value!r}") from None
    if n < 0:
        raise ValueError(f"{LOGICAL_CPUS_ENV} must be ≥ 0, got {n}")
    return n


def _tf_config() -> tuple[dict, dict]:
    """(cluster, task) from ``TF_CONFIG`` ({}, {} without it)."""
    config = os.environ.get("TF_CONFIG")
    if not config:
        return {}, {}
    try:
        parsed = json.loads(config)
        return parsed.get("cluster", {}), parsed.get("task", {})
    except (json.JSONDecodeError, AttributeError):
        raise ValueError("TF_CONFIG is not a JSON object with a 'cluster'") from None


def n_workers() -> int:
    """Workers named by ``TF_CONFIG`` (1 without it)."""
    cluster, _ = _tf_config()
    return max(1, len(cluster.get("worker", [])) + len(cluster.get("chief", [])))


def worker_index() -> int:
    """This process's task index in ``TF_CONFIG`` (0 without it)."""
    return int(_tf_config()[1].get("index", 0))


def is_chief() -> bool:
    """Whether this process writes the run: always, except on workers other than the first of a cluster."""
    cluster, task = _tf_config()
    if n_workers() <= 1:
        return True
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and worker_index() == 0


def make_strategy():
    """The strategy for this process (see the module docstring); call :func:`configure_devices` first."""
    import tensorflow as tf

    if n_workers() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    if logical_cpus() > 1:
        return tf.distribute.MirroredStrategy(devices=[d.name for d in tf.config.list_logical_devices("CPU")])
    return tf.distribute.get_strategy()


def describe(strategy) -> dict:
    """What a run records about its strategy."""
    return {"strategy": type(strategy).__name__, "replicas": int(strategy.num_replicas_in_sync),
            "workers": n_workers()}


def global_batch_size(hyp: dict, replicas: int) -> int:
    """Images per step over all replicas: ``opt.batch_size`` per replica."""
    return hyp["opt"]["batch_size"] * replicas


def peak_learning_rate(hyp: dict, replicas: int) -> float:
    """The peak learning rate for the global batch (linear scaling rule)."""
    return hyp["opt"]["lr"] * replicas
