"""Write an output directory so that it appears whole or not at all.

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
