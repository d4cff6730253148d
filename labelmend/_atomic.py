"""Write an output directory so that it appears whole or not at all.

``with atomic_directory(path) as tmp:`` — write everything into ``tmp`` (a hidden sibling of ``path``); on a clean
exit ``tmp`` replaces ``path`` by rename, on any exception (or a kill: the hidden sibling never looks valid) the
previous ``path`` is left exactly as it was and ``tmp`` is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, keep_on_error: bool = False):
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = final.with_name(f".{final.name}.partial-{tag}")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        if not keep_on_error:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old-{tag}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
