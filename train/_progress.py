"""Progress bars on stderr (tqdm): shown on a terminal; LABELMEND_PROGRESS=0 hides them, =1 forces them on."""

from __future__ import annotations

import os
import sys


def progress_bar(*, total: int | None = None, desc: str = "", unit: str = "it", disable: bool = False,
                 initial: int = 0):
    """A tqdm bar; off when ``disable``, when LABELMEND_PROGRESS is "0", or when stderr is not a terminal
    (unless LABELMEND_PROGRESS is "1"), so piped output and logs stay free of bar fragments."""
    from tqdm.auto import tqdm

    setting = os.environ.get("LABELMEND_PROGRESS")
    disable = disable or setting == "0" or (setting != "1" and not sys.stderr.isatty())
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5, leave=False, initial=initial)
