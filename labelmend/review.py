"""`labelmend review RUN`: a local page that turns a run's review queue into verified labels, one key per image.

The server is the standard library's ``http.server`` (no dependency to install or keep patched; one person, one
browser tab, a few requests a second). It serves ``review_queue.csv`` in its order, skipping the images that
``DATA/verified_labels.csv`` already holds, and writes each decision to that file at once, atomically (a temporary
sibling, fsync, rename), so a killed server or a closed tab loses at most the decision in flight; reopening the
page, or starting the server again, continues at the first image not yet checked.

Security, as for any local tool that writes files:

- it listens on 127.0.0.1 only, and answers only requests whose Host is that address or ``localhost``;
- every request carries the random token of the printed URL (``?token=`` or the ``X-Labelmend-Token`` header,
  compared in constant time); anything else gets 403;
- images are served by queue position (``/image/17``), never by a path from the request;
- request bodies are capped (:data:`MAX_BODY` bytes) and validated: an image outside the queue, a label outside the
  classes, or one that contradicts ``clean_labels.csv`` is a 400 with a one-line reason, and nothing is written;
- a lock file (``DATA/.labelmend-review.lock``, ``flock``: released by the OS when the process dies) refuses a
  second server on the same data folder, so two servers cannot interleave writes; within one server a mutex does.
"""

from __future__ import annotations

import csv
import hmac
import http.server
import json
import os
import secrets
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from labelmend._atomic import write_text
from labelmend.errors import DataError
from labelmend.folders import (
    CLEAN_CSV,
    NUMBERED,
    TRAIN_IMAGES,
    VERIFIED_CSV,
    read_clean_table,
    read_labels,
    read_verified_labels,
)

MAX_BODY = 4096           # bytes: a decision is a few dozen
LOCK_NAME = ".labelmend-review.lock"
TOKEN_HEADER = "X-Labelmend-Token"
REVIEW_QUEUE_CSV, LABEL_ISSUES_CSV = "review_queue.csv", "label_issues.csv"  # as train/label_issues.py names them


@dataclass(frozen=True)
class QueueItem:
    image: str          # as in the queue's first column
    given: int          # class indices
    suggested: int
    label_quality: float


class ReviewError(DataError):
    """A request the review state refuses; the message is the one-line reason the page shows."""


class ReviewState:
    """The queue, the classes, the clean labels and the verified labels of one run's data folder; every change is
    written to ``verified_labels.csv`` before the call returns. Thread-safe."""

    def __init__(self, run_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None):
        from labelmend.run_format import read_run

        self.run_dir = Path(run_dir)
        record = read_run(self.run_dir)
        self.class_names = tuple(record.class_names)
        self.layout = record.data_layout
        self.data_dir = Path(data_dir if data_dir is not None else record.data_dir)
        if not self.data_dir.is_dir():
            raise DataError(f"{self.data_dir}: the run's data folder is not there; pass --data DIR")
        self.verified_path = self.data_dir / VERIFIED_CSV
        all_images = [row["image"] for row in _read_csv(self.run_dir / LABEL_ISSUES_CSV)]
        self.trusted, clean_line = self._clean_labels(all_images)
        index = {c: i for i, c in enumerate(self.class_names)}
        try:
            self.queue = [QueueItem(r["image"], index[r["given_label"]], index[r["suggested_label"]],
                                    float(r["label_quality"])) for r in _read_csv(self.run_dir / REVIEW_QUEUE_CSV)]
        except (KeyError, ValueError) as exc:
            raise DataError(f"{self.run_dir / REVIEW_QUEUE_CSV}: not a review queue of this run ({exc}); train the "
                            "run again") from None
        self.position = {item.image: p for p, item in enumerate(self.queue)}
        self.verified: dict[str, int] = {}  # image → class, in file order (the order of decisions)
        if self.verified_path.exists():
            trusted = np.array([self.trusted.get(name, -1) for name in all_images], np.int64)
            lines = np.array([clean_line.get(name, 0) for name in all_images], np.int64)
            rows, labels = read_verified_labels(self.verified_path, image_names=all_images,
                                                class_names=self.class_names, trusted=trusted, trusted_line=lines,
                                                by_basename=self.layout == NUMBERED)
            self.verified = {all_images[i]: int(c) for i, c in zip(rows, labels)}
        self._lock = threading.Lock()

    def _clean_labels(self, all_images: list[str]) -> tuple[dict[str, int], dict[str, int]]:
        """clean_labels.csv as it is now: {image: class} and {image: line}."""
        path = self.data_dir / CLEAN_CSV
        if not path.exists():
            return {}, {}
        if self.layout == NUMBERED:
            labels = read_labels(path, n_classes=len(self.class_names), allow_empty=True)
            rows, lines = range(len(labels)), range(1, len(labels) + 1)
        else:
            rows, labels, lines = read_clean_table(path, image_names=all_images, class_names=self.class_names)
        return ({all_images[i]: int(c) for i, c in zip(rows, labels)},
                {all_images[i]: int(n) for i, n in zip(rows, lines)})

    # ---- reading

    def image_path(self, position: int) -> Path:
        """The file of the queue's image at ``position`` (the only way the server finds a file)."""
        folder = self.data_dir / TRAIN_IMAGES if self.layout == NUMBERED else self.data_dir
        return folder / self.queue[position].image

    def summary(self, start: int = 0, n: int = 6) -> dict:
        """Counts for the header, and the next ``n`` unchecked queue items at or after position ``start``."""
        with self._lock:
            items = []
            for p in range(max(0, start), len(self.queue)):
                if len(items) == n:
                    break
                item = self.queue[p]
                if item.image not in self.verified:
                    items.append({"position": p, "image": item.image, "given": item.given,
                                  "suggested": item.suggested, "label_quality": item.label_quality})
            done = sum(1 for image in self.verified if image in self.position)
            wrong = sum(1 for image, c in self.verified.items()
                        if image in self.position and c != self.queue[self.position[image]].given)
            return {"classes": list(self.class_names), "queue": len(self.queue), "checked": done, "wrong": wrong,
                    "verified_file": str(self.verified_path), "items": items,
                    "retrain": f"labelmend train --data {self.data_dir} --out {self.run_dir}-reviewed"}

    # ---- changing

    def decide(self, image, label) -> None:
        """Record ``label`` (a class name or index) for queue image ``image``; ReviewError with the reason if not."""
        if not isinstance(image, str) or image not in self.position:
            raise ReviewError(f"unknown image {str(image)[:80]!r}: not in this run's review queue")
        c = self._class_index(label)
        trusted = self.trusted.get(image)
        if trusted is not None and trusted != c:
            raise ReviewError(f"{image} is {self.class_names[trusted]!r} in clean_labels.csv; a verified label "
                              f"{self.class_names[c]!r} would contradict it")
        with self._lock:
            verified = {k: v for k, v in self.verified.items() if k != image}
            verified[image] = c  # a changed decision moves to the end: the newest decision is the last line
            self._write(verified)

    def undo(self, image) -> None:
        """Forget the decision on ``image`` (the page's `u`)."""
        with self._lock:
            if image not in self.verified or image not in self.position:
                raise ReviewError(f"nothing to undo for {str(image)[:80]!r}: it has no verified label from the queue")
            self._write({k: v for k, v in self.verified.items() if k != image})

    def _class_index(self, label) -> int:
        if isinstance(label, str) and label in self.class_names:
            return self.class_names.index(label)
        if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(self.class_names):
            return label
        raise ReviewError(f"label {str(label)[:40]!r} is not one of the {len(self.class_names)} classes")

    def _write(self, verified: dict[str, int]) -> None:
        """verified_labels.csv replaced whole: temporary sibling, fsync, rename; ``self.verified`` only after."""
        text = "image,label\n" + "".join(f"{image},{self.class_names[c]}\n" for image, c in verified.items())
        write_text(self.verified_path, text, durable=True)
        self.verified = verified


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataError(f"{path}: not found; give the --out folder of a finished `labelmend train` run")
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


class FolderLock:
    """An exclusive, non-blocking ``flock`` on DATA/.labelmend-review.lock, held while the server runs."""

    def __init__(self, data_dir: Path):
        import fcntl

        self.path = data_dir / LOCK_NAME
        self._file = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.seek(0)
            owner = self._file.read().strip() or "another process"
            self._file.close()
            raise DataError(f"{data_dir}: another `labelmend review` ({owner}) is writing its verified_labels.csv; "
                            "close that one first (one server per data folder)") from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()}\n")
        self._file.flush()

    def release(self) -> None:
        self._file.close()  # closing releases the flock; the empty file may stay


# ---------------------------------------------------------------- HTTP


def make_server(state: ReviewState, *, port: int = 0, token: str | None = None) -> http.server.ThreadingHTTPServer:
    """A server on 127.0.0.1:``port`` (0: any free port) for ``state``; ``server.url`` is the page's URL."""
    token = token or secrets.token_urlsafe(24)
    page = resources.files("labelmend").joinpath("review_page.html").read_text(encoding="utf-8")

    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "labelmend-review"

        def log_message(self, *args):  # the terminal shows the URL and errors, not every request
            pass

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj) -> None:
            self._send(status, json.dumps(obj).encode(), "application/json")

        def _allowed(self, query: dict) -> bool:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
            given = self.headers.get(TOKEN_HEADER) or (query.get("token") or [""])[0]
            if host not in ("127.0.0.1", "localhost") or not hmac.compare_digest(given.encode(), token.encode()):
                self._json(403, {"error": "forbidden: open the URL `labelmend review` printed (it carries the token)"})
                return False
            return True

        def do_GET(self):
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if not self._allowed(query):
                return
            if url.path == "/":
                self._send(200, page.encode(), "text/html; charset=utf-8")
            elif url.path == "/api/state":
                try:
                    start = int((query.get("from") or ["0"])[0])
                except ValueError:
                    return self._json(400, {"error": "from must be a queue position"})
                self._json(200, state.summary(start))
            elif url.path.startswith("/image/"):
                self._image(url.path[len("/image/"):])
            else:
                self._json(404, {"error": f"no such page {url.path[:60]!r}"})

        def _image(self, position: str) -> None:
            from labelmend.runtime.images import to_input
            from labelmend.runtime.png import encode_png

            if not position.isdigit() or int(position) >= len(state.queue):
                return self._json(404, {"error": "no such queue position"})
            try:
                self._send(200, encode_png(to_input(state.image_path(int(position)))), "image/png")
            except DataError as exc:
                self._json(404, {"error": str(exc)})

        def do_POST(self):
            url = urlsplit(self.path)
            if not self._allowed(parse_qs(url.query)):
                return
            try:
                length = int(self.headers.get("Content-Length") or -1)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                self.close_connection = True
                return self._json(413 if length > MAX_BODY else 411,
                                  {"error": f"a request body of 0 to {MAX_BODY} bytes with its Content-Length"})
            try:
                body = json.loads(self.rfile.read(length) or b"null")
                if not isinstance(body, dict):
                    raise ValueError("expected a JSON object")
                if url.path == "/api/label":
                    state.decide(body.get("image"), body.get("label"))
                elif url.path == "/api/undo":
                    state.undo(body.get("image"))
                else:
                    return self._json(404, {"error": f"no such action {url.path[:60]!r}"})
            except (ValueError, ReviewError) as exc:  # JSONDecodeError is a ValueError
                return self._json(400, {"error": str(exc).splitlines()[0][:300]})
            except OSError as exc:
                return self._json(500, {"error": f"could not write {state.verified_path}: {exc.strerror}"})
            self._json(200, state.summary(int(body.get("from", 0)) if str(body.get("from", 0)).isdigit() else 0))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.url = f"http://127.0.0.1:{server.server_address[1]}/?token={token}"
    return server


def serve(run_dir, *, data_dir=None, port: int = 0, open_browser: bool = True, quiet: bool = False) -> None:
    """`labelmend review`: lock the data folder, serve until Ctrl-C, release."""
    state = ReviewState(run_dir, data_dir)
    lock = FolderLock(state.data_dir)
    try:
        try:
            server = make_server(state, port=port)
        except OSError as exc:
            raise DataError(f"127.0.0.1:{port}: cannot listen ({exc.strerror}); pick another --port") from None
        s = state.summary()
        print(f"review queue of {run_dir}: {s['queue']:,} images, {s['checked']:,} checked; writing "
              f"{state.verified_path}\nopen {server.url}\n(Ctrl-C stops; every decision is saved at once)", flush=True)
        if open_browser:
            import webbrowser

            webbrowser.open(server.url)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            if not quiet:
                print("stopped; verified labels are in", state.verified_path, flush=True)
        finally:
            server.server_close()
    finally:
        lock.release()
