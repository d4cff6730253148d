"""Write an output directory (or one JSON file) so that it appears whole or not at all; read JSON back.

``with atomic_directory(path) as tmp:`` — write everything into ``tmp`` (a hidden sibling of ``path``); on a clean
exit ``tmp`` replaces ``path`` by rename, on any exception the previous ``path`` is left exactly as it was and
``tmp`` is removed. A killed process leaves only a hidden ``.NAME.partial-*`` sibling, which never looks valid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path


def commit_directory(tmp: Path, final: Path) -> None:
    """Move the finished directory ``tmp`` to ``final``, replacing what was there (two renames, no copy)."""
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike):
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.partial-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    commit_directory(tmp, final)


def write_text(path: str | os.PathLike, text: str, *, durable: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary sibling and a rename, so a reader (or a process killed
    mid-write) never sees half a file; ``durable`` also syncs it to disk before the rename (a file a person's work
    lives in). Returns the path."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path: str | os.PathLike, obj, *, sort_keys: bool = False) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (:func:`write_text`); returns the path."""
    import json

    return write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n")


def read_json(path: Path, *, error: type[Exception], missing: str, corrupt: str):
    """The JSON in ``path``; ``error`` with "PATH: ``missing``" if there is no such file, with "PATH: ``corrupt``"
    (its ``{exc}`` filled with the parser's message) if it is not JSON, and with the OS's reason if unreadable."""
    import json

    if not path.is_file():
        raise error(f"{path}: {missing}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: {corrupt.format(exc=exc)}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None
