"""Progress bars for every long step (tqdm on stderr), with one switch to turn them off.

``RISE_EXP_PROGRESS=0`` hides them (tests, logs); when stderr is not a terminal they refresh at most
every 30 s so a captured log stays short, and every bar ends on its final line (rows done, time taken).

A long step whose work happens in helpers that know nothing of it (a diagnostic's kernels, a retraining
loop) opens a :func:`task` bar with the step's total; the helpers call :func:`advance` as they finish units
of work, and advance nothing when no task is open.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_TASKS: list[Any] = []  # the open task bars, innermost last


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
        leave=True,
        file=sys.stderr,
        **kwargs,
    )


@contextmanager
def task(total: int | None, desc: str, unit: str = "it") -> Iterator[Any]:
    """A bar over one long step (``total`` units, an ETA) that :func:`advance` moves from the code inside it."""
    b = bar(total, desc, unit=unit)
    _TASKS.append(b)
    try:
        yield b
    finally:
        _TASKS.remove(b)
        b.close()


def advance(n: int = 1) -> None:
    """``n`` more units of the innermost open :func:`task` done (nothing when none is open)."""
    if _TASKS:
        _TASKS[-1].update(n)
