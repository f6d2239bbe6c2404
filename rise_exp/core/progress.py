"""Progress bars for every long step (tqdm on stderr), with one switch to turn them off.

``RISE_EXP_PROGRESS=0`` hides them (tests, logs); when stderr is not a terminal they refresh at most
every 30 s so a captured log stays short.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def enabled() -> bool:
    """Whether progress bars are shown (``RISE_EXP_PROGRESS`` unset or not ``0``)."""
    return os.environ.get("RISE_EXP_PROGRESS", "1") != "0"


def bar(total: int | None, desc: str, unit: str = "it", **kwargs: Any) -> Any:
    """A tqdm bar (disabled when progress is off); ``unit_scale`` for token counts."""
    from tqdm.auto import tqdm

    tty = sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not enabled(),
        mininterval=0.5 if tty else 30.0,
        dynamic_ncols=True,
        leave=tty,
        file=sys.stderr,
        **kwargs,
    )
