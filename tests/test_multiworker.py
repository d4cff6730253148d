"""Several machines, proven on one: two real `labelmend train` processes under MultiWorkerMirroredStrategy on
localhost (free ports picked at run time), a lost worker, a resume across workers, and a worker left alone.

Every process is bounded by a timeout, so a hang fails the test instead of stalling CI.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
import _data_factory as factory  # noqa: E402

from labelmend.cli import main  # noqa: E402

pytestmark = pytest.mark.slow
TIMEOUT_S = 300


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _start(tmp_path, ports, index, *args, timeout=None):
    config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
    env = {**os.environ, "TF_CONFIG": json.dumps(config), "LABELMEND_CACHE": str(tmp_path / "cache"),
           "LABELMEND_PROGRESS": "0", "TF_CPP_MIN_LOG_LEVEL": "2"}
    if timeout is not None:
        env["LABELMEND_CLUSTER_TIMEOUT"] = str(timeout)
    log = open(tmp_path / f"worker{index}-{time.monotonic_ns()}.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "labelmend", "--quiet", "train", *map(str, args)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log = log
    return proc


def _finish(proc, timeout=TIMEOUT_S) -> tuple[int, str]:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    proc.log.seek(0)
    return proc.returncode, proc.log.read()


def _weights(path: Path) -> list[np.ndarray]:
    import keras

    return [np.asarray(w) for w in keras.models.load_model(path, compile=False).weights]


def test_two_worker_processes_train_identical_models_and_the_chief_exports(tmp_path):
    from labelmend.export.bundle import export_bundle
    from labelmend.runtime import load

    w = factory.make_training_dir(tmp_path / "data", n=64, n_clean=24)
    ports, run = _free_ports(2), tmp_path / "run"
    args = ("--data", w.root, "--out", run, "--models", "model1,model2", "--epochs", 3, "--width", 4)
    procs = [_start(tmp_path, ports, i, *args) for i in (0, 1)]
    results = [_finish(p) for p in procs]
    for rc, log in results:
        assert rc == 0, log[-3000:]
    chief = json.loads((run / "run.json").read_text())
    other = json.loads((tmp_path / "run.worker1" / "run.json").read_text())
    assert chief["distribution"] == {"strategy": "CollectiveAllReduceStrategy", "replicas": 2, "workers": 2}
    assert chief["global_batch_size"] == 512 and chief["cnn_steps"] == other["cnn_steps"] == 3
    for name in ("model1", "model2"):  # same weights, BatchNorm statistics included
        for a, b in zip(_weights(run / f"{name}.keras"), _weights(tmp_path / "run.worker1" / f"{name}.keras")):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.load(run / "pred_probs.npy"), np.load(tmp_path / "run.worker1" / "pred_probs.npy"))
    manifest = export_bundle(run, tmp_path / "bundle", progress=False)
    for name in ("model1", "model2"):
        assert manifest["models"][name]["export"]["parity_max_abs_diff"] < 1e-4
        proba = load(tmp_path / "bundle", name).predict_proba(w.images[:5])
        assert proba.shape == (5, 10) and np.allclose(proba.sum(1), 1, atol=1e-4)


def test_a_lost_worker_is_one_line_and_both_resume_from_the_last_common_checkpoint(tmp_path):
    # 700 images, 2 of them validation: 698 training images, 1.36 global batches of 512 per epoch, so steps and
    # epochs differ (a checkpoint every whole step, the epoch axis in passes over the training images)
    w = factory.make_training_dir(tmp_path / "data", n=700, n_clean=24)
    ports, run, epochs = _free_ports(2), tmp_path / "run", 30
    planned = math.ceil(epochs * 698 / 512)
    args = ("--data", w.root, "--out", run, "--models", "model1", "--epochs", epochs, "--width", 4)
    procs = [_start(tmp_path, ports, i, *args) for i in (0, 1)]
    state = tmp_path / ".run.partial" / "checkpoints" / "model1" / "all.json"
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and procs[0].poll() is None:
        if state.is_file() and json.loads(state.read_text())["step"] >= 5:
            break
        time.sleep(0.02)
    os.killpg(procs[1].pid, signal.SIGKILL)
    _finish(procs[1])
    rc, log = _finish(procs[0], timeout=120)
    assert rc == 1, log[-3000:]
    # a quiet log holds labelmend's lines only: its progress lines and one error line, no TensorFlow report
    assert all(line.startswith(("[labelmend] ", "labelmend train: error: ")) for line in log.splitlines()), log[-3000:]
    lines = [line for line in log.splitlines() if line.startswith("labelmend train: error")]
    assert len(lines) == 1, log[-3000:]
    assert f"lost contact with worker 1 (127.0.0.1:{ports[1]})" in lines[0]
    assert f"labelmend train --resume {run}" in lines[0] and "model1" in lines[0]
    said = re.search(r"last checkpoint every worker holds at step (\d+), epoch ([\d.]+)", lines[0])
    step, epoch = int(said[1]), float(said[2])
    newest = json.loads(state.read_text())
    assert step in [newest["step"]] + [s["step"] for s in newest["previous"]]  # a checkpoint worker 0 holds
    assert 4 <= step < planned and 0 < epoch < epochs  # worker 1 saved step 4 at least: worker 0 passed step 5 and epoch == pytest.approx(step * 512 / 698, abs=1e-4)
    assert not run.exists()

    procs = [_start(tmp_path, ports, i, "--resume", run) for i in (0, 1)]
    for rc, log in [_finish(p) for p in procs]:
        assert rc == 0, log[-3000:]
    record = json.loads((run / "run.json").read_text())
    hist = record["models"]["model1"]["training"]["history"]["all"]
    assert record["models"]["model1"]["training"]["steps"] == record["cnn_steps"] == planned
    assert hist["resumed_from_step"] == step  # the checkpoint the message named is the one --resume took
    assert hist["epoch"][step - 1] == pytest.approx(epoch) and hist["epoch"][-1] == pytest.approx(planned * 512 / 698,
                                                                                                    abs=1e-4)
    for a, b in zip(_weights(run / "model1.keras"), _weights(tmp_path / "run.worker1" / "model1.keras")):
        np.testing.assert_array_equal(a, b)
    assert main(["--quiet", "export", "--run", str(run), "--bundle", str(tmp_path / "bundle")]) == 0


def test_a_worker_alone_says_so_within_the_stated_time(tmp_path):
    w = factory.make_training_dir(tmp_path / "data", n=64, n_clean=24)
    ports = _free_ports(2)
    t0 = time.monotonic()
    proc = _start(tmp_path, ports, 0, "--data", w.root, "--out", tmp_path / "run", "--models", "model1",
                  "--epochs", 1, timeout=5)
    rc, log = _finish(proc, timeout=120)
    assert rc == 1, log[-3000:]
    assert time.monotonic() - t0 < 90
    lines = [line for line in log.splitlines() if line.startswith("labelmend train: error")]
    assert len(lines) == 1 and "Traceback" not in log, log[-3000:]
    assert f"could not reach worker 1 (127.0.0.1:{ports[1]}) within 5 s" in lines[0]
    assert not (tmp_path / "run").exists()
