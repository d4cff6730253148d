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

A worker that cannot reach the others at start-up stops after ``LABELMEND_CLUSTER_TIMEOUT`` seconds (default
:data:`CLUSTER_TIMEOUT_S`) instead of waiting forever; a worker lost mid-training makes the others stop at their next
collective step (:func:`lost_worker_message` says which and how to continue). Each worker checkpoints every epoch and
keeps the last :data:`KEPT_CHECKPOINTS`; a resumed run starts from the newest step every worker holds
(:func:`agree_min`), since a worker killed at an epoch's end may not have written the checkpoint the others did.

``LABELMEND_LOGICAL_CPUS=N`` splits the CPU into N logical devices and mirrors over them: the distributed code path,
testable on a machine without GPUs (it is not faster: the logical devices share the same cores).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import numpy as np

LOGICAL_CPUS_ENV = "LABELMEND_LOGICAL_CPUS"
CLUSTER_TIMEOUT_ENV = "LABELMEND_CLUSTER_TIMEOUT"
CLUSTER_TIMEOUT_S = 120  # waiting for the other workers at start-up: TF starts in ~10 s, a slow shared disk more
KEPT_CHECKPOINTS = 2     # per stage: workers may be one epoch apart when one of them is lost


def configure_tensorflow(seed: int) -> str:
    """Set up devices (:func:`configure_devices`), seed everything, make ops deterministic, quiet TF's logging;
    returns 'gpu' or 'cpu'."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    configure_devices()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    return "gpu" if gpus else "cpu"


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


def cluster_timeout() -> float:
    value = os.environ.get(CLUSTER_TIMEOUT_ENV, "").strip()
    try:
        t = float(value) if value else float(CLUSTER_TIMEOUT_S)
    except ValueError:
        raise ValueError(f"{CLUSTER_TIMEOUT_ENV} must be a number of seconds, got {value!r}") from None
    if not t > 0:
        raise ValueError(f"{CLUSTER_TIMEOUT_ENV} must be positive, got {value!r}")
    return t


def addresses() -> list[str]:
    """Every task's address in ``TF_CONFIG``, chief first, as 'job index (host:port)'."""
    cluster, _ = _tf_config()
    return [f"{job} {i} ({address})" for job in ("chief", "worker") for i, address in enumerate(cluster.get(job, []))]


def run_dirs(out_dir: str) -> dict[str, str]:
    """Every task's run directory, as `labelmend train --out OUT` names them ('job index (host:port)' → folder): the
    chief's (or worker 0's, without a chief) is OUT, every other worker's OUT.worker<index>."""
    cluster, _ = _tf_config()
    dirs = {}
    for job in ("chief", "worker"):
        for i, address in enumerate(cluster.get(job, [])):
            first = job == "chief" or ("chief" not in cluster and i == 0)
            dirs[f"{job} {i} ({address})"] = out_dir if first else f"{out_dir}.worker{i}"
    return dirs


def me() -> str:
    cluster, task = _tf_config()
    job, index = task.get("type", "worker"), int(task.get("index", 0))
    return f"{job} {index} ({cluster.get(job, ['?'] * (index + 1))[index]})"


def make_strategy():
    """The strategy for this process (see the module docstring); call :func:`configure_devices` first."""
    import tensorflow as tf

    if n_workers() > 1:
        wait_for_peers(cluster_timeout())
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


def wait_for_peers(timeout_s: float) -> None:
    """Wait until every other worker's port answers, listening on this worker's own port meanwhile, so that each
    sees the others before any starts TensorFlow's server (which then waits for them for ever, holding the
    interpreter). Raises ClusterError naming the workers still missing after ``timeout_s``."""
    from labelmend.errors import ClusterError

    cluster, task = _tf_config()
    mine = cluster[task.get("type", "worker")][int(task.get("index", 0))]
    others = {a: a for a in addresses() if a != me()}
    port = int(mine.rsplit(":", 1)[1])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", port))
    except OSError as exc:
        listener.close()
        raise ClusterError(f"{me()}: cannot listen on port {port} ({exc.strerror}); free it or name another port "
                           "for this worker in TF_CONFIG on every machine") from None
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def answer():
        while not stop.is_set():
            try:
                listener.accept()[0].close()
            except OSError:
                continue

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    deadline, waiting = time.monotonic() + timeout_s, dict(others)
    try:
        while waiting and time.monotonic() < deadline:
            for name in list(waiting):
                host, peer_port = name.rsplit("(", 1)[1].rstrip(")").rsplit(":", 1)
                try:
                    socket.create_connection((host, int(peer_port)), timeout=1.0).close()
                    del waiting[name]
                except OSError:
                    pass
            if waiting:
                time.sleep(0.2)
    finally:
        stop.set()
        thread.join()
        listener.close()
    if waiting:
        raise ClusterError(f"{me()} could not reach {', '.join(waiting)} within {timeout_s:g} s: start the same "
                           f"`labelmend train` on every machine named in TF_CONFIG (each with its own task index), "
                           f"check that their ports are open, or wait longer with {CLUSTER_TIMEOUT_ENV}=SECONDS")


def agree_min(strategy, value: int) -> int:
    """The smallest ``value`` over all workers (an all-reduce); ``value`` itself with one worker."""
    if n_workers() <= 1:
        return int(value)
    import tensorflow as tf

    n, index = n_workers(), _global_task_index()
    mine = np.zeros(n, np.int64)
    mine[index] = value + 1  # + 1: 0 marks the slots of the other workers (and of this one's other replicas)

    def local(ctx):
        return tf.constant(mine if ctx.replica_id_in_sync_group % max(1, strategy.num_replicas_in_sync // n) == 0
                           else np.zeros(n, np.int64))

    total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.experimental_distribute_values_from_function(local),
                            axis=None).numpy()
    return int(total.min()) - 1


def _global_task_index() -> int:
    """This task's position among all tasks, chief first (the order of :func:`addresses`)."""
    cluster, task = _tf_config()
    offset = len(cluster.get("chief", [])) if task.get("type") == "worker" else 0
    return offset + int(task.get("index", 0))


def is_lost_worker(exc: BaseException) -> bool:
    """Whether ``exc`` is how TensorFlow reports a collective that a worker's loss aborted."""
    import tensorflow as tf

    return isinstance(exc, (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
                            tf.errors.AbortedError)) or (isinstance(exc, tf.errors.InternalError)
                                                         and "ollective" in str(exc))


def lost_worker_message(exc: BaseException, *, where: str, resume_path: str) -> str:
    """One line for a collective that failed because a worker went away: which worker (the addresses in TF's
    message, else every other one), where training stood, and the command that continues."""
    text = str(exc)
    others = [a for a in addresses() if a != me()]
    named = [a for a in others if a.rsplit("(", 1)[1].rstrip(")") in text]
    return (f"lost contact with {', '.join(named or others)} ({type(exc).__name__}) during {where}; finished "
            f"models and the last checkpoints are kept: restart every worker with the same TF_CONFIG and "
            f"`labelmend train --resume {resume_path}` to continue from the last step all of them saved")
