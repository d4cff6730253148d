"""`labelmend review`: the server (token, 403, 400, traversal, lock, atomic writes, a kill) through a real HTTP client,
and the page in a real headless browser (Debian's chromium + chromedriver, driven by Selenium)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import _data_factory as factory
import numpy as np
import pytest

from labelmend import review
from labelmend.errors import DataError
from labelmend.folders import VERIFIED_CSV
from labelmend.run_format import RunRecord, write_run

NAMES = factory.CLASS_NAMES


def make_run(tmp_path, *, n: int = 24, n_clean: int = 4) -> tuple[Path, Path, list[dict]]:
    """A data folder in the client's layout and a finished run's files over it (no training: the queue is drawn
    at random); returns (run, data, queue rows)."""
    w = factory.make_training_dir(tmp_path / "data", n=n, n_clean=n_clean, class_names=NAMES)
    rng = np.random.default_rng(0)
    run = tmp_path / "run"
    run.mkdir()
    write_run(run / "run.json", RunRecord(labelmend_version="test", seed=0, data_dir=str(w.root), n_images=n,
                                          n_clean=n_clean, split={}, class_names=list(NAMES), time_budget_s=0))
    images = [f"{i + 1:05d}.png" for i in range(n)]
    (run / "label_issues.csv").write_text("image,given_label\n" + "".join(
        f"{im},{NAMES[w.labels[i]]}\n" for i, im in enumerate(images)), encoding="utf-8")
    order = n_clean + rng.permutation(n - n_clean)
    queue = [{"image": images[i], "given": int(w.labels[i]), "suggested": int((w.labels[i] + 1 + i % 3) % 10),
              "quality": round(float(rng.random()), 4)} for i in order]
    (run / "review_queue.csv").write_text(
        "image,given_label,suggested_label,review_score,label_quality,is_label_issue\n" + "".join(
            f"{q['image']},{NAMES[q['given']]},{NAMES[q['suggested']]},1.0,{q['quality']},True\n" for q in queue),
        encoding="utf-8")
    return run, w.root, queue


@pytest.fixture()
def server(tmp_path):
    run, data, queue = make_run(tmp_path)
    srv = review.make_server(review.ReviewState(run), token="secret-token")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, data, queue
    srv.shutdown()
    srv.server_close()


def request(srv, method, path, body=None, *, token="secret-token", host=None, raw=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
    headers = {"Host": host or f"127.0.0.1:{srv.server_address[1]}"}
    if token is not None:
        headers[review.TOKEN_HEADER] = token
    payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def verified_lines(data: Path) -> list[str]:
    path = data / VERIFIED_CSV
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


# ---- security ----------------------------------------------------------------------------------------------------


def test_without_the_token_everything_is_403_and_nothing_is_written(server):
    srv, data, queue = server
    for token in (None, "wrong", "secret-token-"):
        assert request(srv, "GET", "/", token=token)[0] == 403
        assert request(srv, "GET", "/image/0", token=token)[0] == 403
        assert request(srv, "GET", "/api/state", token=token)[0] == 403
        assert request(srv, "POST", "/api/label", {"image": queue[0]["image"], "label": "cat"}, token=token)[0] == 403
    assert request(srv, "GET", "/?token=secret-token", token=None)[0] == 200  # the printed URL's form
    assert request(srv, "GET", "/", host="evil.example:80")[0] == 403  # DNS rebinding: a foreign Host
    assert not (data / VERIFIED_CSV).exists()


@pytest.mark.parametrize("body, raw, status, match", [
    ({"image": "99999.png", "label": "cat"}, None, 400, "unknown image '99999.png'"),
    ({"image": "../../etc/passwd", "label": "cat"}, None, 400, "unknown image"),
    ({"image": "00001.png", "label": "cat"}, None, 400, "unknown image"),  # a trusted image is not in the queue
    ({"image": "QUEUE0", "label": "unicorn"}, None, 400, "label 'unicorn' is not one of the 10 classes"),
    ({"image": "QUEUE0", "label": 10}, None, 400, "label '10' is not one of"),
    ({"image": "QUEUE0", "label": True}, None, 400, "is not one of"),
    (None, b"{not json", 400, "Expecting"),
    (None, b"[1, 2]", 400, "expected a JSON object"),
    (None, b"{" + b" " * (review.MAX_BODY + 10) + b"}", 413, "a request body of 0 to"),
])
def test_bad_writes_are_refused_with_a_reason_and_change_nothing(server, body, raw, status, match):
    srv, data, queue = server
    assert request(srv, "POST", "/api/label", {"image": queue[0]["image"], "label": "cat"})[0] == 200
    before = (data / VERIFIED_CSV).read_bytes()
    if body is not None and body.get("image") == "QUEUE0":
        body = {**body, "image": queue[1]["image"]}
    code, answer = request(srv, "POST", "/api/label", body, raw=raw)
    assert code == status and match in json.loads(answer)["error"]
    assert (data / VERIFIED_CSV).read_bytes() == before


def test_images_are_served_by_queue_position_only(server):
    from labelmend.runtime.images import to_input
    from labelmend.runtime.png import read_png

    srv, data, queue = server
    code, png = request(srv, "GET", "/image/3")
    assert code == 200
    path = data / "out.png"
    path.write_bytes(png)
    np.testing.assert_array_equal(read_png(path), to_input(data / "images" / queue[3]["image"]))
    for bad in ("/image/999", "/image/-1", "/image/..%2F..%2Fetc%2Fpasswd", "/image/0001.png", "/etc/passwd"):
        assert request(srv, "GET", bad)[0] == 404


# ---- decisions ---------------------------------------------------------------------------------------------------


def test_decisions_are_written_at_once_in_order_and_undo_removes_one(server):
    srv, data, queue = server
    for item, label in zip(queue[:3], ("cat", 2, "truck")):
        code, answer = request(srv, "POST", "/api/label", {"image": item["image"], "label": label})
        assert code == 200
    assert verified_lines(data) == ["image,label", f"{queue[0]['image']},cat", f"{queue[1]['image']},bird",
                                    f"{queue[2]['image']},truck"]
    state = json.loads(request(srv, "GET", "/api/state")[1])
    assert state["checked"] == 3 and state["items"][0]["image"] == queue[3]["image"]
    assert state["wrong"] == sum(NAMES.index(lab) != q["given"] for q, lab in zip(queue, ("cat", "bird", "truck")))
    assert request(srv, "POST", "/api/undo", {"image": queue[1]["image"]})[0] == 200
    assert verified_lines(data)[1:] == [f"{queue[0]['image']},cat", f"{queue[2]['image']},truck"]
    assert json.loads(request(srv, "GET", "/api/state")[1])["items"][0]["image"] == queue[1]["image"]
    assert request(srv, "POST", "/api/undo", {"image": queue[1]["image"]})[0] == 400  # nothing left to undo there
    assert not [p for p in data.iterdir() if p.name.endswith(".tmp")]


def test_training_reads_the_verified_labels_the_page_wrote(server):
    from labelmend.train.data import load_training_data

    srv, data, queue = server
    for item in queue[:4]:
        assert request(srv, "POST", "/api/label", {"image": item["image"], "label": item["suggested"]})[0] == 200
    loaded = load_training_data(data, use_cache=False, progress=False)
    assert [loaded.image_names[i] for i in loaded.verified_index] == [q["image"] for q in queue[:4]]
    assert loaded.verified_labels.tolist() == [q["suggested"] for q in queue[:4]]


def test_a_label_contradicting_clean_labels_is_refused(tmp_path):
    run, data, queue = make_run(tmp_path)
    n_clean = len((data / "clean_labels.csv").read_text().splitlines())
    first = int(queue[0]["image"][:5])  # give the queue's first image a clean label after the run
    clean = (data / "clean_labels.csv").read_text().splitlines()
    noisy = (data / "noisy_labels.csv").read_text().splitlines()
    (data / "clean_labels.csv").write_text("\n".join(clean + noisy[n_clean:first - 1] + ["3"]) + "\n")
    state = review.ReviewState(run)
    with pytest.raises(review.ReviewError, match=r"is 'cat' in clean_labels.csv; a verified label 'dog' would"):
        state.decide(queue[0]["image"], "dog")
    state.decide(queue[0]["image"], "cat")  # agreeing is fine
    assert not (data / VERIFIED_CSV).read_text().count("dog")


def test_a_failed_write_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    run, data, queue = make_run(tmp_path)
    state = review.ReviewState(run)
    state.decide(queue[0]["image"], "cat")
    before = (data / VERIFIED_CSV).read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(review.os, "replace", broken_replace)
    with pytest.raises(OSError):
        state.decide(queue[1]["image"], "dog")
    assert (data / VERIFIED_CSV).read_bytes() == before and list(state.verified) == [queue[0]["image"]]
    assert not [p for p in data.iterdir() if p.name.endswith(".tmp")]


# ---- the command: lock, kill, restart ----------------------------------------------------------------------------


def start_cli(run, *extra):
    proc = subprocess.Popen([sys.executable, "-m", "labelmend", "review", str(run), "--no-browser", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("open http://127.0.0.1:"):
            return proc, line.split()[1]
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"no URL printed; stderr: {proc.stderr.read()}")


def test_second_server_is_refused_and_a_killed_server_loses_nothing(tmp_path):
    from urllib.parse import urlsplit

    run, data, queue = make_run(tmp_path)
    proc, url = start_cli(run)
    try:
        second = subprocess.run([sys.executable, "-m", "labelmend", "review", str(run), "--no-browser"],
                                capture_output=True, text=True, timeout=60)
        err = second.stderr.strip().splitlines()
        assert second.returncode == 1 and len(err) == 1 and "another `labelmend review`" in err[0]
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        for item in queue[:5]:
            conn.request("POST", f"/api/label?{parts.query}", json.dumps({"image": item["image"], "label": "ship"}))
            assert conn.getresponse().read() and True
        conn.close()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert verified_lines(data) == ["image,label"] + [f"{q['image']},ship" for q in queue[:5]]
    proc, url = start_cli(run)  # the lock died with the process: a new server starts and continues at image 6
    try:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.request("GET", f"/api/state?{parts.query}")
        state = json.loads(conn.getresponse().read())
        assert state["checked"] == 5 and state["items"][0]["image"] == queue[5]["image"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_review_of_a_folder_that_is_not_a_run_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "labelmend", "review", str(tmp_path), "--no-browser"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "labelmend review: error:" in r.stderr


def test_folder_lock_is_exclusive(tmp_path):
    lock = review.FolderLock(tmp_path)
    with pytest.raises(DataError, match="another `labelmend review`"):
        review.FolderLock(tmp_path)
    lock.release()
    review.FolderLock(tmp_path).release()


# ---- the page in a real browser --------------------------------------------------------------------------------------

CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver")


def browser():
    """Headless Debian chromium through its chromedriver; skipped (with the reason) where either is missing, failed
    where the run asks for the browser (LABELMEND_REQUIRE_BROWSER=1, as CI does)."""
    missing = [p for p, ok in (("chromium", os.path.exists(CHROMIUM)), ("chromedriver", bool(CHROMEDRIVER))) if not ok]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if missing:
        why = f"no {', '.join(missing)}: apt-get install chromium chromium-driver"
        if os.environ.get("LABELMEND_REQUIRE_BROWSER") == "1":
            pytest.fail(why)
        pytest.skip(why)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,760"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


@pytest.mark.slow
def test_the_page_in_headless_chromium(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run, data, queue = make_run(tmp_path, n=30)
    driver = browser()
    proc, url = start_cli(run)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 20)

        def name():
            return driver.find_element(By.ID, "name").text

        def press(keys, expect_checked):
            for key in keys:
                driver.find_element(By.TAG_NAME, "body").send_keys(key)
            wait.until(lambda d: d.find_element(By.ID, "counts").text.startswith(f"{expect_checked} checked"))

        wait.until(lambda d: name() == queue[0]["image"])
        assert driver.find_element(By.ID, "suggested").text == NAMES[queue[0]["suggested"]]
        assert driver.find_element(By.ID, "given").text == NAMES[queue[0]["given"]]
        assert len(driver.find_elements(By.CSS_SELECTOR, "#next img")) == 5
        press("aaaaa", 5)
        press("kkk", 8)
        wait.until(lambda d: name() == queue[8]["image"])
        expected = ([f"{q['image']},{NAMES[q['suggested']]}" for q in queue[:5]]
                    + [f"{q['image']},{NAMES[q['given']]}" for q in queue[5:8]])
        assert verified_lines(data) == ["image,label"] + expected
        if os.environ.get("LABELMEND_SCREENSHOT"):  # how README's picture is made
            driver.save_screenshot(os.environ["LABELMEND_SCREENSHOT"])
        press("3", 9)  # a digit: the third class
        assert verified_lines(data)[-1] == f"{queue[8]['image']},{NAMES[2]}"
        press("u", 8)  # undo the digit
        wait.until(lambda d: name() == queue[8]["image"])
        assert verified_lines(data) == ["image,label"] + expected
        driver.find_element(By.TAG_NAME, "body").send_keys("s")  # skip: nothing written, the next image shows
        wait.until(lambda d: name() == queue[9]["image"])
        assert len(verified_lines(data)) == 9
        driver.refresh()  # a reload resumes at the first image not checked: image 9
        wait.until(lambda d: name() == queue[8]["image"])
        proc.terminate()
        proc.wait(timeout=30)
        proc, url = start_cli(run)  # a new server, a new token: the old page's URL is refused, the new one resumes
        driver.get(url)
        wait.until(lambda d: name() == queue[8]["image"])
        assert "8 checked" in driver.find_element(By.ID, "counts").text
    finally:
        driver.quit()
        proc.terminate()
        proc.wait(timeout=30)
