"""Where a report is: the notebook's ``REPORT_DIR``, resolved wherever its kernel runs.

A notebook's kernel runs in ``notebooks/``, so a path relative to the repository (``multirun/...``) is
resolved against the first of the working directory and its parents that holds a ``multirun/`` folder,
and no path at all means the newest report under that folder.
"""

from __future__ import annotations

from pathlib import Path

from rise_exp.core.errors import DataError
from rise_exp.report.runs import REPORT_DIRNAME

SWEEPS = "multirun"
HOW = (
    "make one with a sweep and its report, e.g. `python -m rise_exp -m method=rise,bm25 seed=0,1` then "
    "`python -m rise_exp.report multirun/<date>` (from the repository root), or set RISE_REPORT_DIR"
)


def sweeps_root(start: Path | None = None) -> Path | None:
    """The first of ``start`` (default: the working directory) and its parents that holds ``multirun/``."""
    here = (start or Path.cwd()).resolve()
    return next((d for d in (here, *here.parents) if (d / SWEEPS).is_dir()), None)


def find_report(report_dir: str | Path | None = None, start: Path | None = None) -> Path:
    """The report directory to read (it holds ``report.json``).

    Args:
        report_dir: A report directory; relative paths are tried against ``start`` and then the folder
            that holds ``multirun/``. None: the newest ``multirun/*/report``.
        start: Where to look from (default: the working directory).

    Raises:
        DataError: no such report (the message says how to make one).
    """
    start = (start or Path.cwd()).resolve()
    root = sweeps_root(start)
    if report_dir is not None:
        path = Path(report_dir).expanduser()
        candidates = [path] if path.is_absolute() else [start / path, *([root / path] if root else [])]
        found = next((c for c in candidates if (c / "report.json").is_file()), None)
        if found is None:
            raise DataError(f"no report.json in {report_dir} (looked in {', '.join(map(str, candidates))}); {HOW}")
        return found
    reports = sorted(root.glob(f"{SWEEPS}/*/{REPORT_DIRNAME}/report.json")) if root else []
    if not reports:
        raise DataError(f"no report found under {(root or start) / SWEEPS}; {HOW}")
    return max(reports, key=lambda p: p.stat().st_mtime).parent
