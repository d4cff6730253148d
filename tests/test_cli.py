"""The `labelmend` command: user errors are one line on stderr + exit 1 (a traceback only with --debug), nothing is
written on failure, command-line mistakes too, and train → export → evaluate → predict works end to end on tiny data.

Most tests call ``labelmend.cli.main(argv)`` in-process (fast; stderr through capsys); the ones about tracebacks
and the real entry point run ``python -m labelmend`` in a subprocess.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import _data_factory as factory  # noqa: E402  (tests/ is put on sys.path by conftest.py)
import numpy as np
import pytest

from labelmend.cli import main


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("LABELMEND_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LABELMEND_PROGRESS", "0")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


def run_cli(*argv, cwd=None, extra_env=None):
    env = {**os.environ, **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "labelmend", *map(str, argv)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- broken data: one line, exit 1, nothing written ----------------------------------------------------------------


def _corrupt_png(root: Path) -> Path:
    bad = root / "images" / "00007.png"
    factory.hostile_png("truncated", bad)
    return bad


def _bad_label_line(root: Path) -> Path:
    p = root / "noisy_labels.csv"
    lines = p.read_text().splitlines()
    lines[4] = "3.5"
    p.write_text("\n".join(lines) + "\n")
    return p


def _missing_images(root: Path) -> Path:
    import shutil

    shutil.rmtree(root / "images")
    return root / "images"


BROKEN = {
    "corrupt_png": (_corrupt_png, r"00007\.png: corrupt or truncated PNG"),
    "bad_label_line": (_bad_label_line, r"noisy_labels\.csv, line 5: .*'3\.5'"),
    "missing_folder": (_missing_images, r"images: image folder not found"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_train_on_broken_data_is_one_line_exit_1(tmp_path, capsys, case):
    w = factory.make_training_dir(tmp_path / "data")
    make_broken, pattern = BROKEN[case]
    culprit = make_broken(w.root)
    out = tmp_path / "runs" / "out"
    rc = main(["train", "--data", str(w.root), "--out", str(out), "--models", "baseline"])
    err = capsys.readouterr().err
    assert rc == 1
    assert len(err.splitlines()) == 1, err
    assert err.startswith("labelmend train: error: ") and str(culprit) in err and re.search(pattern, err), err
    assert "Traceback" not in err
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_train_on_missing_data_folder(tmp_path, capsys):
    rc = main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "out"), "--models", "baseline"])
    err = capsys.readouterr().err
    assert rc == 1 and err == f"labelmend train: error: {tmp_path / 'nope'}: data folder not found\n"
    assert not (tmp_path / "out").exists()


def test_failed_train_leaves_existing_run_untouched(tmp_path, capsys):
    w = factory.make_training_dir(tmp_path / "data")
    _corrupt_png(w.root)
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text('{"models": {}}\n')
    before = snapshot(out)
    assert main(["train", "--data", str(w.root), "--out", str(out), "--models", "baseline"]) == 1
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["data", "out"]  # no partial sibling


def test_subprocess_error_has_no_traceback_and_debug_has_one(tmp_path):
    w = factory.make_training_dir(tmp_path / "data")
    bad = _corrupt_png(w.root)
    out = tmp_path / "out"
    # progress bars left on (the default): stderr must still be the one error line
    env = {"LABELMEND_PROGRESS": ""}
    r = run_cli("train", "--data", w.root, "--out", out, "--models", "baseline", extra_env=env)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "WARN" not in r.stderr, r.stderr
    assert r.stderr.rstrip("\n").split("\n")[-1].startswith(f"labelmend train: error: {bad}: corrupt")
    assert not out.exists()
    r = run_cli("--debug", "train", "--data", w.root, "--out", out, "--models", "baseline", extra_env=env)
    assert r.returncode == 1
    assert "Traceback (most recent call last)" in r.stderr and "DataError" in r.stderr and str(bad) in r.stderr
    assert not out.exists()


def test_progress_bar_does_not_pollute_stderr_when_piped(tmp_path):
    w = factory.make_training_dir(tmp_path / "data")
    _corrupt_png(w.root)
    r = run_cli("train", "--data", w.root, "--out", tmp_path / "out", "--models", "baseline",
                extra_env={"LABELMEND_PROGRESS": ""})
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, repr(r.stderr)


def test_quiet_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LABELMEND_PROGRESS")
    w = factory.make_training_dir(tmp_path / "data")
    _bad_label_line(w.root)
    assert main(["--quiet", "train", "--data", str(w.root), "--out", str(tmp_path / "o"), "--models", "baseline"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("labelmend train: error: ")


def test_debug_reraises_in_process(tmp_path):
    from labelmend.errors import DataError

    w = factory.make_training_dir(tmp_path / "data")
    bad = _corrupt_png(w.root)
    with pytest.raises(DataError, match=re.escape(str(bad))):
        main(["--debug", "train", "--data", str(w.root), "--out", str(tmp_path / "o"), "--models", "baseline"])
    assert not (tmp_path / "o").exists()


# ---- export / evaluate / predict errors ----------------------------------------------------------------------------


def test_export_not_a_run(tmp_path, capsys):
    not_a_run = tmp_path / "not_a_run"
    not_a_run.mkdir()
    bundle = tmp_path / "bundle"
    rc = main(["export", "--run", str(not_a_run), "--bundle", str(bundle)])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.splitlines()) == 1 and err.startswith("labelmend export: error: ")
    assert str(not_a_run / "run.json") in err and "Traceback" not in err
    assert not bundle.exists()


@pytest.mark.parametrize("run_kind", ["missing", "corrupt_json", "missing_model_file"])
def test_failed_export_leaves_existing_bundle_byte_identical(tmp_path, capsys, run_kind):
    run = tmp_path / "run"
    if run_kind != "missing":
        run.mkdir()
        text = "{not json" if run_kind == "corrupt_json" else (
            '{"models": {"baseline": {"file": "baseline.pkl"}}}')
        (run / "run.json").write_text(text)
        if run_kind == "missing_model_file":
            np.save(run / "parity_images.npy", np.zeros((2, 32, 32, 3), np.uint8))
    bundle = tmp_path / "bundle"
    (bundle / "sub").mkdir(parents=True)
    (bundle / "manifest.json").write_text('{"format": "something else"}\n')
    (bundle / "baseline.onnx").write_bytes(os.urandom(1000))
    (bundle / "sub" / "notes.txt").write_text("keep me\n")
    before = snapshot(bundle)
    rc = main(["export", "--run", str(run), "--bundle", str(bundle)])
    err = capsys.readouterr().err
    assert rc == 1
    assert snapshot(bundle) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".bundle")) == []
    if run_kind != "missing_model_file":
        assert str(run / "run.json") in err and len(err.splitlines()) == 1


def test_evaluate_missing_bundle_and_broken_test_data(tmp_path, capsys):
    t = factory.make_test_dir(tmp_path / "test")
    rc = main(["evaluate", "--bundle", str(tmp_path / "nob"), "--test-data", str(t.root), "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("labelmend evaluate: error: ") and len(err.splitlines()) == 1
    assert not (tmp_path / "e").exists()


def test_predict_on_non_png(tmp_path, capsys):
    bad = tmp_path / "x.png"
    bad.write_text("text")
    rc = main(["predict", "--bundle", str(tmp_path / "nob"), str(bad)])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("labelmend predict: error: ") and len(err.splitlines()) == 1


# ---- command-line mistakes: one line, exit 1 -----------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["train", "--data", "d", "--out", "o", "--models", "resnet"],
    ["train", "--data", "d", "--out", "o", "--models", ""],
    ["train", "--data", "d", "--out", "o", "--time-budget", "-1"],
    ["train", "--data", "d", "--out", "o", "--time-budget", "0"],
    ["train", "--data", "d", "--out", "o", "--time-budget", "soon"],
    ["train", "--data", "d", "--out", "o", "--epochs", "-2"],
    ["train", "--data", "d", "--out", "o", "--val-fraction", "1.5"],
    ["train", "--data", "d", "--out", "o", "--val-fraction", "-0.1"],
    ["train", "--data", "d"],
    ["export", "--run", "r", "--bundle", "b", "--int8-max-drop", "2"],
    ["predict", "--bundle", "b", "--device", "tpu", "x.png"],
    ["frobnicate"],
    [],
], ids=lambda a: " ".join(a) or "no-args")
def test_command_line_mistakes_are_one_line_exit_1(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("labelmend") and "error: " in err, repr(err)
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_val_fraction_is_refused_before_any_image_is_loaded(tmp_path):
    w = factory.make_training_dir(tmp_path / "data")
    r = run_cli("train", "--data", w.root, "--out", tmp_path / "o", "--val-fraction", "1.5",
                extra_env={"LABELMEND_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "--val-fraction" in r.stderr and "[0, 1)" in r.stderr
    assert not (tmp_path / "cache").exists() and not (tmp_path / "o").exists()


def test_usage_error_subprocess_is_one_line(tmp_path):
    r = run_cli("train", "--data", tmp_path, "--out", tmp_path / "o", "--models", "baseline,cnn")
    assert r.returncode == 1 and "baseline,model1,model2" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.splitlines()) == 1


def _tiny_bundle(tmp_path):
    import _bundle_factory as bundles

    bundles.make_bundle(tmp_path / "bundle")
    return tmp_path / "bundle"


def _one_line_exit_1(capsys, argv, pattern):
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 1, captured
    assert len(captured.err.splitlines()) == 1 and "Traceback" not in captured.err, repr(captured.err)
    assert re.search(pattern, captured.err), captured.err
    return captured


def test_predict_unknown_model_is_one_line(tmp_path, capsys):
    bundle = _tiny_bundle(tmp_path)
    t = factory.make_test_dir(tmp_path / "test", n=2)
    _one_line_exit_1(capsys, ["predict", "--bundle", str(bundle), "--model", "nosuch", str(t.paths[0])],
                     r"model 'nosuch' is not in the bundle .*available: \['baseline', 'model2'\]")


def test_predict_on_cuda_without_cuda_is_one_line(tmp_path, capsys, monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])  # a CPU-only box
    bundle = _tiny_bundle(tmp_path)
    t = factory.make_test_dir(tmp_path / "test", n=2)
    _one_line_exit_1(capsys, ["predict", "--bundle", str(bundle), "--device", "cuda", str(t.paths[0])],
                     r"device='cuda' requested but onnxruntime has no CUDAExecutionProvider")


def test_predict_without_onnxruntime_is_one_line(tmp_path, capsys, monkeypatch):
    bundle = _tiny_bundle(tmp_path)
    t = factory.make_test_dir(tmp_path / "test", n=2)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as after `pip install labelmend` with neither engine extra
    _one_line_exit_1(capsys, ["predict", "--bundle", str(bundle), str(t.paths[0])],
                     r"^labelmend predict: error: onnxruntime is not installed: pip install 'labelmend\[cpu\]' "
                     r"\(or \[gpu\] on a CUDA machine\)$")


@pytest.mark.parametrize("make_path", ["missing", "a_file", "no_manifest", "unreadable_manifest"])
def test_unreadable_bundle_path_is_one_line(tmp_path, capsys, make_path):
    t = factory.make_test_dir(tmp_path / "test", n=2)
    path = tmp_path / "b"
    if make_path == "a_file":
        path.write_text("not a bundle")
    elif make_path == "no_manifest":
        path.mkdir()
    elif make_path == "unreadable_manifest":
        (path / "manifest.json").mkdir(parents=True)  # a directory where the manifest file should be
    for argv in (["predict", "--bundle", str(path), str(t.paths[0])],
                 ["evaluate", "--bundle", str(path), "--test-data", str(t.root), "--out", str(tmp_path / "e")]):
        _one_line_exit_1(capsys, argv, re.escape(str(path)))
        assert not (tmp_path / "e").exists()


def test_test_folder_with_fewer_images_than_labels_is_one_line(tmp_path, capsys):
    bundle = _tiny_bundle(tmp_path)
    t = factory.make_test_dir(tmp_path / "test", n=6)
    t.paths[-1].unlink()
    out = tmp_path / "e"
    _one_line_exit_1(capsys, ["evaluate", "--bundle", str(bundle), "--test-data", str(t.root), "--out", str(out)],
                     r"test00006\.png: image file not found \(test_labels\.csv has 6 labels\)")
    assert not out.exists() and not any(p.name.startswith(".e") for p in tmp_path.iterdir())


# ---- end to end ----------------------------------------------------------------------------------------------------


def test_end_to_end_baseline(tmp_path, capsys):
    w = factory.make_training_dir(tmp_path / "data", n=60, n_clean=20, class_names=factory.CLASS_NAMES)
    t = factory.make_test_dir(tmp_path / "test", n=10)
    run, bundle, evaluation = tmp_path / "run", tmp_path / "bundle", tmp_path / "eval"

    assert main(["--quiet", "train", "--data", str(w.root), "--out", str(run), "--models", "baseline"]) == 0
    assert (run / "run.json").is_file()
    assert main(["--quiet", "export", "--run", str(run), "--bundle", str(bundle)]) == 0
    assert (bundle / "manifest.json").is_file() and (bundle / "baseline.onnx").is_file()
    assert main(["--quiet", "evaluate", "--bundle", str(bundle), "--test-data", str(t.root),
                 "--out", str(evaluation)]) == 0
    out = capsys.readouterr().out
    assert "baseline: accuracy" in out

    with open(evaluation / "label_prediction.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and "baseline" in rows[0]
    assert all(r["baseline"].strip() for r in rows)
    assert (evaluation / "classification_report_baseline.txt").is_file()
    assert (evaluation / "classification_report_baseline.txt").read_text().strip()

    images = [str(p) for p in t.paths]
    assert main(["predict", "--bundle", str(bundle), "--model", "baseline", *images]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10
    for line, path in zip(lines, images):
        p, label, name = line.split("\t")
        assert p == path and name in factory.CLASS_NAMES and factory.CLASS_NAMES[int(label)] == name

    # an unreadable image given to predict: one line naming it, exit 1, nothing printed for the good one before it
    for kind in ("truncated", "zero_bytes", "text", "bad_crc"):
        bad = tmp_path / f"bad_{kind}.png"
        factory.hostile_png(kind, bad)
        assert main(["predict", "--bundle", str(bundle), "--model", "baseline", images[0], str(bad)]) == 1, kind
        out, err = capsys.readouterr()
        assert err.startswith("labelmend predict: error: ") and str(bad) in err and len(err.splitlines()) == 1
        assert out == ""
    # any size, grayscale or RGBA: read through the one preprocessing (converted, not refused)
    for kind in ("grayscale", "rgba", "wrong_size", "16bit"):
        odd = tmp_path / f"odd_{kind}.png"
        factory.hostile_png(kind, odd)
        assert main(["predict", "--bundle", str(bundle), "--model", "baseline", str(odd)]) == 0, kind
        assert capsys.readouterr().out.split("\t")[0] == str(odd)


@pytest.mark.slow
def test_end_to_end_cnn_tiny(tmp_path):
    w = factory.make_training_dir(tmp_path / "data", n=64, n_clean=24)
    t = factory.make_test_dir(tmp_path / "test", n=8)
    run, bundle, evaluation = tmp_path / "run", tmp_path / "bundle", tmp_path / "eval"
    r = run_cli("--quiet", "train", "--data", w.root, "--out", run, "--models", "baseline,model2",
                "--epochs", "1", "--width", "4")
    assert r.returncode == 0, r.stderr
    r = run_cli("--quiet", "export", "--run", run, "--bundle", bundle)
    assert r.returncode == 0, r.stderr
    r = run_cli("--quiet", "evaluate", "--bundle", bundle, "--test-data", t.root, "--out", evaluation)
    assert r.returncode == 0, r.stderr
    with open(evaluation / "label_prediction.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {"baseline", "model2"} <= set(rows[0])
    r = run_cli("predict", "--bundle", bundle, *t.paths)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 8
