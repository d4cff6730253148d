"""Progress bars on stderr (tqdm), silent when disabled or when stderr is not a terminal and LABELMEND_PROGRESS=0."""

from __future__ import annotations

import os
import sys


def progress_bar(*, total: int | None = None, desc: str = "", unit: str = "it", disable: bool = False):
    """A tqdm bar; disabled when ``disable`` or the environment variable LABELMEND_PROGRESS is "0"."""
    from tqdm.auto import tqdm

    disable = disable or os.environ.get("LABELMEND_PROGRESS") == "0"
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5, leave=False)
