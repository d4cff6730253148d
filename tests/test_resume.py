"""Crash safety of `labelmend train`: kill it mid-training, resume, and get a complete run; outputs stay atomic."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("tensorflow")
cv2 = pytest.importorskip("cv2")

pytestmark = pytest.mark.slow


def _make_data(root, n=64, n_clean=24):
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(root / "images" / f"{i + 1:05d}.png"), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    labels = rng.integers(0, 10, n)
    (root / "noisy_labels.csv").write_text("\n".join(map(str, labels)) + "\n")
    (root / "clean_labels.csv").write_text("\n".join(map(str, labels[:n_clean])) + "\n")


def _cli(*args, env):
    return [sys.executable, "-m", "labelmend", "--quiet", *map(str, args)]


def test_kill_mid_training_then_resume(tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    _make_data(data)
    env = {**os.environ, "LABELMEND_CACHE": str(tmp_path / "cache"), "LABELMEND_PROGRESS": "0"}
    # an earlier complete run at the same path must survive the killed one untouched
    run.mkdir()
    (run / "run.json").write_text('{"earlier": true}\n')
    epochs = 60  # 64 images = 1 step per epoch at batch 64
    proc = subprocess.Popen(_cli("train", "--data", data, "--out", run, "--models", "model1,model2",
                                 "--epochs", epochs, "--width", 4, env=env), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    state = tmp_path / ".run.partial" / "checkpoints" / "model1" / "all.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if state.is_file() and json.loads(state.read_text())["epoch"] >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(state.read_text())["epoch"]
    assert 3 <= killed_at < epochs
    assert json.loads((run / "run.json").read_text()) == {"earlier": True}

    r = subprocess.run(_cli("train", "--resume", run, env=env), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    record = json.loads((run / "run.json").read_text())
    hist = record["models"]["model1"]["training"]["history"]["all"]
    assert hist["epoch"] == list(range(1, epochs + 1))  # the epochs before the kill were kept, none redone
    assert record["models"]["model1"]["training"]["steps"] == record["cnn_steps"] == epochs
    assert set(record["models"]) == {"model1", "model2"}
    assert not (tmp_path / ".run.partial").exists()
    assert not (run / "checkpoints").exists()


def test_resume_without_interrupted_run_is_a_clear_error(tmp_path):
    env = {**os.environ, "LABELMEND_PROGRESS": "0"}
    r = subprocess.run(_cli("train", "--resume", tmp_path / "nothing", env=env), env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1
    assert "no interrupted run to resume" in r.stderr and "Traceback" not in r.stderr


def test_resume_from_a_corrupt_interrupted_run_is_a_clear_error(tmp_path):
    env = {**os.environ, "LABELMEND_PROGRESS": "0"}
    (tmp_path / ".run.partial").mkdir()
    (tmp_path / ".run.partial" / "config.json").write_text('{"seed": 0, "data')  # cut short
    r = subprocess.run(_cli("train", "--resume", tmp_path / "run", env=env), env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1
    assert "config.json: corrupt" in r.stderr and "without --resume" in r.stderr and "Traceback" not in r.stderr
    assert [line for line in r.stderr.splitlines() if "resuming" not in line] == [r.stderr.splitlines()[-1]]
