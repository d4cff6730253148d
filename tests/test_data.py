"""train/data.py (the client's layouts, the image cache, hostile files) and runtime/png.py (the stdlib PNG reader).

Every test that loads images points LABELMEND_CACHE at its own tmp folder; nothing here reads ../shared.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import _data_factory as factory  # noqa: E402  (tests/ is put on sys.path by conftest.py)
import numpy as np
import pytest
from labelmend.runtime.png import read_png
from labelmend.train import data as D

from labelmend import evaluate
from labelmend.errors import DataError


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """Every test gets its own empty image cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LABELMEND_CACHE", str(cache))
    return cache


@pytest.fixture
def train_dir(tmp_path):
    return factory.make_training_dir(tmp_path / "train")


@pytest.fixture
def test_dir(tmp_path):
    return factory.make_test_dir(tmp_path / "test")


def name_re(path: Path) -> str:
    return re.escape(str(path))


def hostile_re(path: Path, kind: str) -> str:
    """The file's name, then what is wrong with it (case-insensitive)."""
    return "(?i)^" + name_re(path) + ": .*" + factory.HOSTILE_PNGS[kind].removeprefix("(?i)")


def load(root, **kw):
    return D.load_training_data(root, progress=False, **kw)


# ---- round trip ----------------------------------------------------------------------------------------------------


def test_round_trip_training(train_dir):
    data = load(train_dir.root)
    assert data.images.dtype == np.uint8 and data.images.shape == (12, 32, 32, 3)
    np.testing.assert_array_equal(data.images, train_dir.images)  # RGB, not the BGR on disk
    np.testing.assert_array_equal(data.noisy_labels, train_dir.labels)
    np.testing.assert_array_equal(data.clean_labels, train_dir.clean)
    assert data.noisy_labels.dtype == np.int64 and data.n_clean == 5


def test_rgb_order_matches_cv2_imread(train_dir):
    import cv2

    bgr = cv2.imread(str(train_dir.paths[0]))
    np.testing.assert_array_equal(load(train_dir.root).images[0], cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    assert tuple(load(train_dir.root).images[0, 0, 0]) == (10, 120, 240)


def test_clean_labels_optional(tmp_path):
    w = factory.make_training_dir(tmp_path / "t", n_clean=None)
    data = load(w.root)
    assert data.n_clean == 0 and data.clean_labels.dtype == np.int64
    np.testing.assert_array_equal(data.images, w.images)


def _load_test_folder(root):
    """The test layout as `labelmend evaluate` reads it: (images, labels, PNG paths)."""
    paths, labels = D.test_files(root)
    return evaluate.read_images(paths), labels, paths


def test_round_trip_test_layout(test_dir):
    paths, labels = D.test_files(test_dir.root)
    assert [p.name for p in paths] == [f"test{i:05d}.png" for i in range(1, 9)]
    np.testing.assert_array_equal(labels, test_dir.labels)
    images, labels, read_paths = _load_test_folder(test_dir.root)
    np.testing.assert_array_equal(images, test_dir.images)
    np.testing.assert_array_equal(labels, test_dir.labels)
    assert read_paths == paths


def test_extra_non_png_files_are_ignored(train_dir):
    (train_dir.root / "images" / "notes.txt").write_text("hello")
    (train_dir.root / "images" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (train_dir.root / "images" / "thumbs").mkdir()
    (train_dir.root / "README").write_text("client notes")
    np.testing.assert_array_equal(load(train_dir.root).images, train_dir.images)


def test_empty_list_loads_to_empty_array():
    assert D.load_images([], progress=False).shape == (0, 32, 32, 3)


# ---- cache ---------------------------------------------------------------------------------------------------------


def _forbid_decode(monkeypatch):
    def boom(path):
        raise AssertionError(f"decoded {path} although the cache should have been used")

    monkeypatch.setattr(D, "_decode_png", boom)


def test_cache_second_load_does_not_decode(train_dir, cache_dir, monkeypatch):
    first = load(train_dir.root)
    assert len(list(cache_dir.glob("images-*.npy"))) == 1
    _forbid_decode(monkeypatch)
    second = load(train_dir.root)
    np.testing.assert_array_equal(second.images, first.images)
    assert second.images.flags.writeable and second.images.flags.c_contiguous
    second.images[0, 0, 0, 0] ^= 1  # a private copy: the cache is untouched
    _forbid_decode(monkeypatch)
    np.testing.assert_array_equal(load(train_dir.root).images, first.images)


def test_cache_notices_rewritten_png(train_dir, monkeypatch):
    load(train_dir.root)
    new = factory.random_images(1, seed=99)[0]
    p = train_dir.paths[3]
    st = p.stat()
    factory.imwrite_rgb(p, new)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    np.testing.assert_array_equal(load(train_dir.root).images[3], new)


def test_cache_notices_same_size_rewrite_with_new_mtime(train_dir):
    load(train_dir.root)
    p = train_dir.paths[0]
    data = bytearray(p.read_bytes())
    st = p.stat()
    # same bytes, same size, only the mtime changes: the cache must be re-validated (decode is called again)
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    calls = []
    real = D._decode_png

    def counting(path):
        calls.append(path)
        return real(path)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(D, "_decode_png", counting)
        load(train_dir.root)
    assert len(calls) == 12


def test_cache_notices_deleted_and_added_file(train_dir):
    load(train_dir.root)
    last = train_dir.paths[-1]
    last.unlink()
    with pytest.raises(DataError, match=name_re(last) + ".*image file not found"):
        load(train_dir.root)
    # add it back with other content, and a 13th image + label
    new = factory.random_images(2, seed=5)
    factory.imwrite_rgb(last, new[0])
    factory.imwrite_rgb(train_dir.root / "images" / "00013.png", new[1])
    factory.write_labels(train_dir.root / "noisy_labels.csv", list(train_dir.labels) + [4])
    data = load(train_dir.root)
    assert data.images.shape[0] == 13
    np.testing.assert_array_equal(data.images[11:], new)
    np.testing.assert_array_equal(data.images[:11], train_dir.images[:11])


@pytest.mark.parametrize("garbage", [b"", b"\x93NUMPY", b"not a numpy file at all", "truncate", "wrong_shape"])
def test_corrupt_cache_is_ignored_and_rewritten(train_dir, cache_dir, garbage):
    first = load(train_dir.root)
    (cache_file,) = cache_dir.glob("images-*.npy")
    if garbage == "truncate":
        cache_file.write_bytes(cache_file.read_bytes()[:300])
    elif garbage == "wrong_shape":
        np.save(cache_file, np.zeros((3, 32, 32, 3), np.uint8))
    else:
        cache_file.write_bytes(garbage)
    np.testing.assert_array_equal(load(train_dir.root).images, first.images)
    np.testing.assert_array_equal(np.load(cache_file), first.images)  # rewritten whole
    assert not list(cache_dir.glob(".*tmp"))


def test_use_cache_false_bypasses(train_dir, cache_dir, monkeypatch):
    load(train_dir.root, use_cache=False)
    assert not cache_dir.exists() or not list(cache_dir.iterdir())
    load(train_dir.root)
    calls = []
    real = D._decode_png
    monkeypatch.setattr(D, "_decode_png", lambda p: calls.append(p) or real(p))
    load(train_dir.root, use_cache=False)
    assert len(calls) == 12


def test_unwritable_cache_is_not_an_error(train_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("LABELMEND_CACHE", str(blocker / "cache"))
    np.testing.assert_array_equal(load(train_dir.root).images, train_dir.images)


# ---- hostile images ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(factory.HOSTILE_PNGS))
def test_hostile_png_in_training_folder(train_dir, kind):
    bad = train_dir.paths[6]
    factory.hostile_png(kind, bad)
    with pytest.raises(DataError, match=hostile_re(bad, kind)):
        load(train_dir.root)


@pytest.mark.parametrize("kind", sorted(factory.HOSTILE_PNGS))
def test_hostile_png_in_test_folder(test_dir, kind):
    bad = test_dir.paths[2]
    factory.hostile_png(kind, bad)
    with pytest.raises(DataError, match=name_re(bad)):
        _load_test_folder(test_dir.root)


def test_hostile_png_is_not_cached_as_good(train_dir, monkeypatch):
    load(train_dir.root)
    bad = train_dir.paths[0]
    factory.hostile_png("truncated", bad)
    os.utime(bad, ns=(0, bad.stat().st_mtime_ns + 10**9))
    with pytest.raises(DataError, match=name_re(bad)):
        load(train_dir.root)


def test_directory_named_like_an_image(train_dir):
    bad = train_dir.paths[1]
    bad.unlink()
    bad.mkdir()
    with pytest.raises(DataError, match=name_re(bad)):
        load(train_dir.root)


def test_missing_image_gap_in_numbering(train_dir):
    gap = train_dir.paths[4]
    gap.unlink()
    with pytest.raises(DataError, match=name_re(gap) + r": image file not found \(noisy_labels.csv has 12 labels\)"):
        load(train_dir.root)


def test_extra_image_beyond_label_count(train_dir):
    extra = train_dir.root / "images" / "00013.png"
    factory.imwrite_rgb(extra, train_dir.images[0])
    with pytest.raises(DataError, match=name_re(extra) + ".*no label.*12 lines"):
        load(train_dir.root)


def test_image_number_zero_is_extra(train_dir):
    extra = train_dir.root / "images" / "00000.png"
    factory.imwrite_rgb(extra, train_dir.images[0])
    with pytest.raises(DataError, match=name_re(extra) + ".*no label"):
        load(train_dir.root)


def test_two_files_claim_the_same_number(train_dir):
    factory.imwrite_rgb(train_dir.root / "images" / "3.png", train_dir.images[0])
    with pytest.raises(DataError, match=r"00003\.png and 3\.png are both image number 3"):
        load(train_dir.root)


def test_missing_images_folder(train_dir):
    import shutil

    shutil.rmtree(train_dir.root / "images")
    with pytest.raises(DataError, match=name_re(train_dir.root / "images") + ": image folder not found"):
        load(train_dir.root)


def test_missing_data_folder(tmp_path):
    with pytest.raises(DataError, match=name_re(tmp_path / "nope") + ": data folder not found"):
        load(tmp_path / "nope")
    with pytest.raises(DataError, match=name_re(tmp_path / "nope") + ": test data folder not found"):
        D.test_files(tmp_path / "nope")


def test_missing_noisy_labels(train_dir):
    (train_dir.root / "noisy_labels.csv").unlink()
    with pytest.raises(DataError, match=name_re(train_dir.root / "noisy_labels.csv") + ": label file not found"):
        load(train_dir.root)


def test_missing_test_labels_and_images(test_dir):
    import shutil

    shutil.rmtree(test_dir.root / "test_images")
    with pytest.raises(DataError, match=name_re(test_dir.root / "test_images") + ": image folder not found"):
        D.test_files(test_dir.root)
    (test_dir.root / "test_labels.csv").unlink()
    with pytest.raises(DataError, match=name_re(test_dir.root / "test_labels.csv") + ": label file not found"):
        D.test_files(test_dir.root)


def test_test_layout_gap_and_extra(test_dir):
    test_dir.paths[7].unlink()
    with pytest.raises(DataError, match=name_re(test_dir.paths[7]) + ".*not found.*test_labels.csv has 8"):
        D.test_files(test_dir.root)
    factory.imwrite_rgb(test_dir.paths[7], test_dir.images[7])
    extra = test_dir.root / "test_images" / "test00009.png"
    factory.imwrite_rgb(extra, test_dir.images[0])
    with pytest.raises(DataError, match=name_re(extra) + ".*no label"):
        D.test_files(test_dir.root)


def test_more_clean_than_noisy_labels(train_dir):
    factory.write_labels(train_dir.root / "clean_labels.csv", [1] * 13)
    with pytest.raises(DataError, match=name_re(train_dir.root / "clean_labels.csv") + ": 13 clean labels but only 12"):
        load(train_dir.root)


# ---- label files ---------------------------------------------------------------------------------------------------

GOOD_CSV = {
    "trailing_blank_lines": (b"1\n2\n3\n\n\n  \n", [1, 2, 3]),
    "no_final_newline": (b"1\n2\n3", [1, 2, 3]),
    "whitespace": (b" 1\n2 \n\t3\t\n", [1, 2, 3]),
    "crlf": (b"1\r\n2\r\n3\r\n", [1, 2, 3]),
    "bom": (b"\xef\xbb\xbf1\n2\n3\n", [1, 2, 3]),
    "bom_crlf_trailing": (b"\xef\xbb\xbf7\r\n0\r\n9\r\n\r\n", [7, 0, 9]),
    "plus_sign": (b"+1\n2\n3\n", [1, 2, 3]),
}

BAD_CSV = {
    "blank_middle": (b"1\n\n3\n", r", line 2: .*a blank line"),
    "header": (b"label\n1\n2\n", r", line 1: .*'label'.*header"),
    "negative": (b"1\n-1\n3\n", r", line 2: label -1 is outside 0-9"),
    "over_max_classes": (b"1\n2\n100\n", r", line 3: label 100 is outside 0-99 \(labelmend supports at most 100 "),
    "float": (b"1\n3.5\n", r", line 2: .*'3\.5'"),
    "two_columns": (b"1,2\n", r", line 1: .*'1,2'"),
    "empty": (b"", r": the file holds no labels"),
    "only_blank": (b"\n\n \n", r": the file holds no labels"),
    "binary": (b"\xff\xfe\x00\x01", r": not a UTF-8 text file"),
}


@pytest.mark.parametrize("case", sorted(GOOD_CSV))
def test_read_labels_accepts(tmp_path, case):
    content, expected = GOOD_CSV[case]
    p = tmp_path / "labels.csv"
    p.write_bytes(content)
    labels = D.read_labels(p)
    assert labels.dtype == np.int64
    assert labels.tolist() == expected


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_read_labels_refuses(tmp_path, case):
    content, pattern = BAD_CSV[case]
    p = tmp_path / "labels.csv"
    p.write_bytes(content)
    with pytest.raises(DataError, match="^" + name_re(p) + pattern):
        D.read_labels(p)


def test_read_labels_with_declared_classes_names_the_class_file(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_bytes(b"1\n2\n10\n")
    with pytest.raises(DataError, match=name_re(p) + r", line 3: label 10 is outside 0-9 \(class_names\.txt names 10"):
        D.read_labels(p, n_classes=10)


@pytest.mark.parametrize("content, pattern", [
    (b"cat\n\ndog\n", r", line 2: blank class name"),
    (b"cat\ndog\ncat\n", r", line 3: class name 'cat' repeats line 1"),
    (b"cat\n", r": 1 class names; labelmend needs 2 to 100 classes"),
    (b"\xff\xfe", r": not a UTF-8 text file"),
])
def test_class_names_file_refuses(tmp_path, content, pattern):
    p = tmp_path / "class_names.txt"
    p.write_bytes(content)
    with pytest.raises(DataError, match="^" + name_re(p) + pattern):
        D.read_class_names(p)


def test_classes_come_from_class_names_or_the_labels(tmp_path):
    w = factory.make_training_dir(tmp_path / "a", n=12, class_names=tuple("abcdefghij"))
    data = D.load_training_data(w.root, use_cache=False, progress=False)
    assert data.class_names == tuple("abcdefghij") and data.n_classes == 10
    w = factory.make_training_dir(tmp_path / "b", n=12)
    data = D.load_training_data(w.root, use_cache=False, progress=False)
    assert data.class_names == tuple(str(i) for i in range(10))
    (w.root / "class_names.txt").write_text("a\nb\nc\n")
    with pytest.raises(DataError, match=r"noisy_labels\.csv, line \d+: label \d is outside 0-2 \(class_names"):
        D.load_training_data(w.root, use_cache=False, progress=False)


def test_an_empty_clean_label_file_means_no_trusted_labels(tmp_path):
    w = factory.make_training_dir(tmp_path / "a", n=12)
    (w.root / "clean_labels.csv").write_bytes(b"")
    assert D.load_training_data(w.root, use_cache=False, progress=False).n_clean == 0


# an empty clean_labels.csv is not an error: it means no trusted labels (test_an_empty_clean_label_file_...)
@pytest.mark.parametrize(("csv", "case"), [
    (csv, case) for csv in ("noisy_labels.csv", "clean_labels.csv")
    for case in ("blank_middle", "header", "over_max_classes", "float", "empty")
    if not (csv == "clean_labels.csv" and case == "empty")
])
def test_bad_label_files_in_training_layout(train_dir, csv, case):
    content, pattern = BAD_CSV[case]
    (train_dir.root / csv).write_bytes(content)
    with pytest.raises(DataError, match="^" + name_re(train_dir.root / csv) + pattern):
        load(train_dir.root)


@pytest.mark.parametrize("case", ["blank_middle", "header", "negative", "empty"])
def test_bad_label_files_in_test_layout(test_dir, case):
    content, pattern = BAD_CSV[case]
    (test_dir.root / "test_labels.csv").write_bytes(content)
    with pytest.raises(DataError, match="^" + name_re(test_dir.root / "test_labels.csv") + pattern):
        _load_test_folder(test_dir.root)


def test_crlf_bom_labels_in_training_layout(train_dir):
    text = "\ufeff" + "\r\n".join(f" {v} " for v in train_dir.labels) + "\r\n\r\n"
    (train_dir.root / "noisy_labels.csv").write_bytes(text.encode("utf-8"))
    np.testing.assert_array_equal(load(train_dir.root).noisy_labels, train_dir.labels)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads everything")
def test_unreadable_label_file(train_dir):
    p = train_dir.root / "noisy_labels.csv"
    p.chmod(0)
    with pytest.raises(DataError, match=name_re(p) + ": cannot read"):
        load(train_dir.root)


# ---- runtime/png.read_png ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("filters", [[0] * 32, [1] * 32, [2] * 32, [3] * 32, [4] * 32, [y % 5 for y in range(32)]],
                         ids=["none", "sub", "up", "average", "paeth", "mixed"])
def test_read_png_every_filter_type(tmp_path, filters):
    import cv2

    img = factory.random_images(1, seed=sum(filters))[0]
    p = tmp_path / "f.png"
    factory.write_png_filtered(p, img, filters)
    assert p.read_bytes()[:8] == factory.PNG_SIGNATURE
    got = read_png(p)
    assert got.dtype == np.uint8 and got.shape == (32, 32, 3)
    np.testing.assert_array_equal(got, img)
    np.testing.assert_array_equal(got, cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB))
    np.testing.assert_array_equal(got, D._decode_png(p))


def test_read_png_split_idat_and_non_square(tmp_path):
    img = factory.random_images(1, seed=3, size=(5, 7))[0]
    p = tmp_path / "s.png"
    p.write_bytes(factory.png_bytes(img, filters=[4, 3, 1, 2, 0], n_idat=3))
    np.testing.assert_array_equal(read_png(p), img)


@pytest.mark.parametrize("compression", [0, 1, 3, 6, 9])
def test_read_png_equals_cv2_on_cv2_written_files(tmp_path, compression):
    import cv2

    imgs = factory.random_images(3, seed=compression)
    # smooth images too: libpng picks different filters for them than for noise
    ramp = np.broadcast_to(np.arange(32, dtype=np.uint8)[None, :, None] * 8, (32, 32, 3)).copy()
    ramp[..., 1] = ramp[..., 1].T
    for k, img in enumerate([*imgs, ramp]):
        p = tmp_path / f"c{compression}_{k}.png"
        cv2.imwrite(str(p), img[..., ::-1].copy(), [cv2.IMWRITE_PNG_COMPRESSION, compression])
        np.testing.assert_array_equal(read_png(p), img)
        np.testing.assert_array_equal(read_png(p), D._decode_png(p))


@pytest.mark.parametrize("kind", sorted(set(factory.HOSTILE_PNGS) - {"wrong_size"}))
def test_read_png_refuses_hostile_files(tmp_path, kind):
    p = tmp_path / f"{kind}.png"
    factory.hostile_png(kind, p)
    with pytest.raises(DataError, match=hostile_re(p, kind)):
        read_png(p)
    with pytest.raises(DataError, match=name_re(p)):
        D._decode_png(p)


def test_read_png_wrong_size_is_returned_as_is(tmp_path):
    p = tmp_path / "w.png"
    factory.hostile_png("wrong_size", p)
    assert read_png(p).shape == (32, 31, 3)  # the runtime's validator refuses the shape, with its own message


@pytest.mark.parametrize("mutate,pattern", [
    (lambda b: b[:-12], r"truncated PNG \(no IEND"),
    (lambda b: b[:8] + b"\x00\x00\x00\x0cIHDR" + b[16:], r"CRC|corrupt"),  # IHDR length 12 instead of 13
    (lambda b: b[:29] + b"\0\0\0\0" + b[33:], r"CRC"),                       # IHDR CRC zeroed
], ids=["no_iend", "ihdr_length", "ihdr_crc"])
def test_read_png_refuses_broken_chunks(tmp_path, mutate, pattern):
    p = tmp_path / "b.png"
    p.write_bytes(mutate(factory.png_bytes(factory.random_images(1)[0])))
    with pytest.raises(DataError, match=name_re(p) + ".*" + pattern):
        read_png(p)


def test_read_png_refuses_interlaced_palette_and_bad_filter(tmp_path):
    img = factory.random_images(1)[0]
    cases = {
        "interlaced": (factory.png_bytes(img, interlace=1), "interlaced"),
        "palette": (factory.png_bytes(img, colour=3), "palette"),
        "bad_filter": (factory.png_bytes(img, raw=bytes([7] + [0] * 96) * 32), "unknown filter type 7 on row 0"),
        "short_data": (factory.png_bytes(img, raw=bytes(100)), "image data has 100 bytes"),
        "bad_zlib": (factory.PNG_SIGNATURE + factory._chunk(b"IHDR", bytes(factory.png_bytes(img)[16:29]))
                     + factory._chunk(b"IDAT", b"garbage") + factory._chunk(b"IEND", b""), "corrupt PNG image data"),
    }
    for name, (data, pattern) in cases.items():
        p = tmp_path / f"{name}.png"
        p.write_bytes(data)
        with pytest.raises(DataError, match=name_re(p) + ".*" + pattern):
            read_png(p)


def test_read_png_missing_file(tmp_path):
    with pytest.raises(DataError, match=name_re(tmp_path / "nope.png") + ": cannot read"):
        read_png(tmp_path / "nope.png")
