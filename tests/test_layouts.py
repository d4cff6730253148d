"""Users' own data: class folders and label tables, images of any size and format, trusted labels for any images,
and one preprocessing from training to predict (runtime/images.py)."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import _bundle_factory as bundles
import _data_factory as factory
import numpy as np
import pytest
from PIL import Image

import labelmend.runtime as rt
from labelmend.cli import main
from labelmend.errors import DataError, InputError, InputTypeError
from labelmend.evaluate import evaluate
from labelmend.folders import CLASS_FOLDERS, LABEL_TABLE
from labelmend.train.data import load_training_data


@pytest.fixture()
def folders(tmp_path):
    return factory.make_class_folders(tmp_path / "set")


def _load(root, **kw):
    return load_training_data(root, use_cache=False, progress=False, **kw)


# ---- loading --------------------------------------------------------------------------------------------------------


def test_class_folders_load_trusted_images_first_named_by_path(folders):
    data = _load(folders.root)
    assert data.layout == CLASS_FOLDERS and data.class_names == ("cat", "dog", "frog")
    m = len(folders.clean)
    assert data.n_clean == m and set(data.image_names[:m]) == set(folders.clean)
    assert sorted(data.image_names) == folders.names  # every image once
    by_name = dict(zip(folders.names, folders.labels))
    assert [by_name[n] for n in data.image_names] == data.noisy_labels.tolist()  # the folder is the given label
    assert data.clean_labels.tolist() == [folders.clean[n] for n in data.image_names[:m]]
    assert data.conversions == {"grayscale": {"count": 1, "examples": ["cat/img_000.png"]},
                                "alpha": {"count": 1, "examples": [folders.names[1]]}}
    for i, name in enumerate(data.image_names):  # the pixels training sees are the runtime's, exactly
        np.testing.assert_array_equal(data.images[i], rt.to_input(folders.root / name))


def test_a_cached_load_is_the_same_load(folders, tmp_path, monkeypatch):
    monkeypatch.setenv("LABELMEND_CACHE", str(tmp_path / "cache"))
    first = load_training_data(folders.root, progress=False)
    second = load_training_data(folders.root, progress=False)
    np.testing.assert_array_equal(first.images, second.images)
    assert first.conversions == second.conversions and first.image_names == second.image_names


def test_class_names_txt_orders_the_classes(folders):
    (folders.root / "class_names.txt").write_text("frog\ncat\ndog\nbird\n", encoding="utf-8")
    data = _load(folders.root)
    assert data.class_names == ("frog", "cat", "dog", "bird")
    by_name = dict(zip(folders.names, folders.labels))
    order = {0: 1, 1: 2, 2: 0}  # cat, dog, frog → their place in class_names.txt
    assert data.noisy_labels.tolist() == [order[by_name[n]] for n in data.image_names]


def test_label_table_with_names_or_numbers(tmp_path):
    root = tmp_path / "table"
    (root / "photos" / "a").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8)).save(root / "photos" / "a" / f"{i}.jpg")
    (root / "labels.csv").write_text("image,label\n" + "".join(
        f"photos/a/{i}.jpg,{'dog' if i % 2 else 'cat'}\n" for i in range(6)), encoding="utf-8")
    (root / "clean_labels.csv").write_text("photos\\a\\5.jpg,cat\n./photos/a/2.jpg,1\n", encoding="utf-8")
    data = _load(root)
    assert data.layout == LABEL_TABLE and data.class_names == ("cat", "dog")
    assert data.image_names[:2] == ("photos/a/2.jpg", "photos/a/5.jpg") and data.clean_labels.tolist() == [1, 0]
    assert data.noisy_labels.tolist() == [0, 1, 0, 1, 1, 0]  # images 2, 5, then 0, 1, 3, 4
    (root / "labels.csv").write_text("".join(f"photos/a/{i}.jpg,{i % 3}\n" for i in range(6)), encoding="utf-8")
    (root / "clean_labels.csv").unlink()
    data = _load(root)
    assert data.class_names == ("0", "1", "2") and data.noisy_labels.tolist() == [0, 1, 2, 0, 1, 2]


def test_verified_labels_name_images_by_path(folders):
    trusted = next(iter(folders.clean))
    other = next(n for n in folders.names if n not in folders.clean)
    agreeing = ("cat", "dog", "frog")[folders.clean[trusted]]  # agrees with clean_labels.csv: dropped
    (folders.root / "verified_labels.csv").write_text(f"{other},frog\n{trusted},{agreeing}\n", encoding="utf-8")
    data = _load(folders.root)
    assert [data.image_names[i] for i in data.verified_index] == [other] and data.verified_labels.tolist() == [2]


# ---- bad input: one line naming the file (and line) -----------------------------------------------------------------


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage, match", [
    (lambda r, f: _truncate(next(r.rglob("*.jpg"))), r"img_\d+\.jpg: corrupt or truncated image"),
    (lambda r, f: (r / "cat" / "notes.txt").write_text("x"), r"cat/notes.txt: not an image file"),
    (lambda r, f: (r / "readme.md").write_text("x"), r"readme.md: a file in the data folder's root"),
    (lambda r, f: (r / "empty").mkdir(), r"empty: empty class folder"),
    (lambda r, f: (r / "dog" / "zero.png").write_bytes(b""), r"zero.png: empty file"),
    (lambda r, f: (r / "clean_labels.csv").write_text("cat/nope.jpg,cat\n"), r"line 1: unknown image 'cat/nope.jpg'"),
    (lambda r, f: (r / "clean_labels.csv").write_text(f"{f.names[0]},horse\n"), r"line 1: label 'horse' is not one"),
    (lambda r, f: (r / "clean_labels.csv").write_text(f"{f.names[0]},cat\n{f.names[0]},dog\n"),
     r"line 2: image .* is already labelled on line 1"),
    (lambda r, f: (r / "class_names.txt").write_text("cat\ndog\n"), r"frog: folder 'frog' is not one of the classes"),
])
def test_bad_class_folder_data_is_one_clear_error(folders, damage, match):
    damage(folders.root, folders)
    with pytest.raises(DataError, match=match):
        _load(folders.root)


@pytest.mark.parametrize("table, match", [
    ("a.png,cat\nmissing.png,dog\n", r"labels.csv, line 2: image file 'missing.png' not found"),
    ("a.png,cat\na.png,dog\n", r"labels.csv, line 2: image 'a.png' is already labelled on line 1"),
    ("a.png,cat\nb.png,1\n", r"labels.csv, line 2: label '1' is a number where other lines name classes"),
    ("a.png\n", r"labels.csv, line 1: expected `image,label`"),
    ("notes.txt,cat\n", r"labels.csv, line 1: 'notes.txt' is not an image file"),
])
def test_bad_label_tables_name_file_and_line(tmp_path, table, match):
    root = tmp_path / "t"
    root.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / name)
    (root / "notes.txt").write_text("x")
    (root / "labels.csv").write_text(table, encoding="utf-8")
    with pytest.raises(DataError, match=match):
        _load(root)


def test_train_on_a_truncated_jpeg_is_one_line_exit_1_and_no_run(folders, tmp_path, capsys):
    bad = next(folders.root.rglob("*.jpg"))
    _truncate(bad)
    out = tmp_path / "run"
    assert main(["--quiet", "train", "--data", str(folders.root), "--out", str(out), "--models", "baseline"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("labelmend train: error: ") and str(bad) in err[0]
    assert not out.exists() and not any(p.name.startswith(".run") for p in tmp_path.iterdir())


# ---- the runtime's input from files, PIL images and arrays of any size ----------------------------------------------


@pytest.mark.parametrize("fmt, ext", [("PNG", "png"), ("JPEG", "jpg"), ("BMP", "bmp"), ("WEBP", "webp")])
def test_every_format_decodes_to_what_pillow_decodes(tmp_path, fmt, ext):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)
    path = tmp_path / f"x.{ext}"
    Image.fromarray(pixels).save(path, format=fmt)
    with Image.open(path) as img:
        decoded = np.asarray(img.convert("RGB"))
    np.testing.assert_array_equal(rt.to_input(path), rt.to_input(decoded))
    if fmt in ("PNG", "BMP"):  # lossless
        np.testing.assert_array_equal(decoded, pixels)


def test_grayscale_alpha_pil_and_exif_orientation(tmp_path):
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    gray = rgb[:, :, 1]
    np.testing.assert_array_equal(rt.to_input(gray), rt.to_input(np.repeat(gray[:, :, None], 3, axis=2)))
    rgba = np.concatenate([rgb, np.full((40, 60, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(rt.to_input(rgba), rt.to_input(rgb))
    np.testing.assert_array_equal(rt.to_input(Image.fromarray(rgba, mode="RGBA")), rt.to_input(rgb))
    rotated = Image.fromarray(rgb)  # stored sideways, EXIF says "rotate 90° clockwise to view" (orientation 6)
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(tmp_path / "r.png", exif=exif)
    np.testing.assert_array_equal(rt.to_input(tmp_path / "r.png"), rt.to_input(np.rot90(rgb, k=-1).copy()))


@pytest.mark.parametrize("bad, error, match", [
    (np.zeros((10, 10, 3), np.float32), InputTypeError, "8-bit"),
    (np.zeros((10, 10, 2), np.uint8), InputError, "shape"),
    (np.zeros((0, 10, 3), np.uint8), InputError, "H, W >= 1"),
    (3.5, InputTypeError, "file path, a PIL image or a numpy array"),
])
def test_to_input_refuses_what_it_cannot_read(bad, error, match):
    with pytest.raises(error, match=match):
        rt.to_input(bad)


def test_to_input_names_missing_and_foreign_files(tmp_path):
    with pytest.raises(DataError, match="nope.jpg: image file not found"):
        rt.to_input(tmp_path / "nope.jpg")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "x.gif")
    with pytest.raises(DataError, match="x.gif: not a readable image"):
        rt.to_input(tmp_path / "x.gif")


# ---- one preprocessing: evaluate, predict and the Python runtime agree ----------------------------------------------


def test_evaluate_predict_and_runtime_give_the_same_answer_on_class_folder_files(folders, tmp_path, capsys):
    bundles.make_bundle(tmp_path / "bundle")
    for f in ("clean_labels.csv",):
        (folders.root / f).unlink()
    out = tmp_path / "eval"
    metrics = evaluate(tmp_path / "bundle", folders.root, out, progress=False)
    assert metrics["test_layout"] == CLASS_FOLDERS and metrics["n_images"] == len(folders.names)
    with open(out / "label_prediction.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == folders.names
    names = bundles._data_factory.CLASS_NAMES
    assert [int(r["true_label"]) for r in rows] == [names.index(("cat", "dog", "frog")[c]) for c in folders.labels]
    model = rt.load(tmp_path / "bundle")
    data = _load(folders.root)
    index = {n: i for i, n in enumerate(data.image_names)}
    paths = [str(folders.root / r["image"]) for r in rows]
    assert main(["predict", "--bundle", str(tmp_path / "bundle"), *paths]) == 0
    printed = capsys.readouterr().out.splitlines()
    for row, path, line in zip(rows, paths, printed):
        p = model.predict_proba_file(path)
        np.testing.assert_allclose(p, model.predict_proba(data.images[index[row["image"]]]), rtol=0, atol=1e-6)
        label = int(np.argmax(p))
        assert int(row["model2"]) == label == model.predict_file(path)
        assert line == f"{path}\t{label}\t{names[label]}"


def test_the_cpu_runtime_imports_no_image_library():
    code = ("import sys, numpy as np, labelmend.runtime as rt; rt.to_input(np.zeros((50, 40, 3), np.uint8)); "
            "print(sorted(m for m in ('PIL', 'cv2', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


# ---- a whole run on class folders ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_export_evaluate_and_issues_on_class_folders(tmp_path):
    f = factory.make_class_folders(tmp_path / "set", n=60)
    test = factory.make_class_folders(tmp_path / "test", n=12, seed=1)
    (test.root / "clean_labels.csv").unlink()
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    assert main(["--quiet", "train", "--data", str(f.root), "--out", str(run), "--models", "baseline,model2",
                 "--epochs", "1", "--width", "4"]) == 0
    record = rt_json(run / "run.json")
    assert record["data_layout"] == CLASS_FOLDERS and record["image_conversions"]["grayscale"]["count"] == 1
    with open(run / "label_issues.csv", newline="", encoding="utf-8") as fh:
        issues = list(csv.DictReader(fh))
    assert sorted(r["image"] for r in issues) == f.names
    with open(run / "corrected_labels.csv", newline="", encoding="utf-8") as fh:
        corrected = list(csv.DictReader(fh))
    assert [r["image"] for r in corrected] == f.names and {r["label"] for r in corrected} <= {"cat", "dog", "frog"}
    with open(run / "review_queue.csv", newline="", encoding="utf-8") as fh:
        queue = [r["image"] for r in csv.DictReader(fh)]
    assert set(queue) == set(f.names) - set(f.clean)
    assert main(["issues", str(run), "--top", "2"]) == 0
    # the review page finds the images by their paths and writes labels `train` reads back by path
    from labelmend.review import ReviewState

    state = ReviewState(run)
    np.testing.assert_array_equal(rt.to_input(state.image_path(0)), rt.to_input(f.root / queue[0]))
    state.decide(queue[0], "frog")
    state.decide(queue[1], 0)
    data = _load(f.root)
    assert [data.image_names[i] for i in data.verified_index] == queue[:2]
    assert data.verified_labels.tolist() == [2, 0]
    assert main(["--quiet", "export", "--run", str(run), "--bundle", str(bundle)]) == 0
    assert main(["--quiet", "evaluate", "--bundle", str(bundle), "--test-data", str(test.root), "--out",
                 str(tmp_path / "eval")]) == 0
    shutil.rmtree(tmp_path / "eval")


def rt_json(path):
    import json

    return json.loads(path.read_text(encoding="utf-8"))
