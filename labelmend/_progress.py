"""Progress bars on stderr (tqdm): shown on a terminal; LABELMEND_PROGRESS=0 hides them, =1 forces them on.

tqdm comes with the ``train`` and ``eval`` extras; without it the bars are silently off (the runtime alone has no
long-running work to show).
"""

from __future__ import annotations

import os
import sys


class _NoBar:
    """What ``progress_bar`` returns when bars are off or tqdm is absent: the same calls, doing nothing."""

    total: int | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass


def progress_bar(*, total: int | None = None, desc: str = "", unit: str = "it", disable: bool = False,
                 initial: int = 0):
    """A tqdm bar; off when ``disable``, when LABELMEND_PROGRESS is "0", or when stderr is not a terminal
    (unless LABELMEND_PROGRESS is "1"), so piped output and logs stay free of bar fragments."""
    setting = os.environ.get("LABELMEND_PROGRESS")
    if disable or setting == "0" or (setting != "1" and not sys.stderr.isatty()):
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ModuleNotFoundError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, mininterval=0.5,
                leave=False, initial=initial)
