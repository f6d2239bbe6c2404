"""What a diagnostic returns and how it is written: Markdown + CSV tables and PNG plots in the run dir."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rise_exp.report.render import to_markdown
from rise_exp.report.summary import fmt_mean_std, fmt_short

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class Section:
    """One table: ``data`` (numbers, written to ``<key>.csv``) and ``display`` (text cells, for Markdown).

    Attributes:
        key: File stem of the CSV (``<diagnostic>`` for the first section, ``<diagnostic>_<x>`` else).
        title: Heading in the Markdown file.
        data: The numbers, one row per line of the table.
        display: The table as shown (defaults to ``data`` with three significant decimals).
        notes: Sentences printed under the heading (what is measured, how, the formula).
        in_markdown: False for long tables that only go to CSV (the Markdown file links them).
    """

    key: str
    title: str
    data: pd.DataFrame
    display: pd.DataFrame | None = None
    notes: Sequence[str] = ()
    in_markdown: bool = True

    def shown(self) -> pd.DataFrame:
        """The display table (formatted ``data`` when no display table was given)."""
        table = self.display if self.display is not None else self.data
        return table.map(_text)


def _text(v: object) -> str:
    """A table cell: three decimals, whole numbers from 1000 on (no digit lost), a dash for NaN."""
    if isinstance(v, (float, np.floating)):
        return f"{v:.0f}" if np.isfinite(v) and abs(v) >= 1000 else fmt_short(v, "–")
    return str(v)


@dataclass
class DiagnosticResult:
    """Tables, plots and headline numbers of one diagnostic run."""

    name: str
    title: str
    sections: list[Section]
    metrics: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    command: str = ""


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof 1; 0 for one value) of finite values; NaN when there are none."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def cell(values: Sequence[float]) -> str:
    """``mean ± std`` of ``values`` (one value: the value)."""
    m, s = mean_std(values)
    return fmt_mean_std(m, s if len(values) > 1 else float("nan"))


def write(result: DiagnosticResult, run_dir: Path) -> list[str]:
    """Write ``<name>.md``, one CSV per section and one PNG per figure; return the file names."""
    files: list[str] = []
    lines = [f"# {result.title}", ""]
    if result.command:
        lines += [f"Command: `{result.command}`", ""]
    for sec in result.sections:
        csv_name = f"{sec.key}.csv"
        sec.data.to_csv(run_dir / csv_name, index=False)
        files.append(csv_name)
        lines += [f"## {sec.title}", ""]
        lines += [*(f"{n}" for n in sec.notes), ""] if sec.notes else []
        if sec.in_markdown:
            lines += [to_markdown(sec.shown()), ""]
        lines += [f"Numbers: `{csv_name}`.", ""]
    for stem, fig in result.figures.items():
        png = f"{stem}.png"
        fig.savefig(run_dir / png, dpi=120)
        lines += [f"![{stem}]({png})", ""]
        files.append(png)
    md = f"{result.name}.md"
    (run_dir / md).write_text("\n".join(lines))
    return [md, *files]


def logged_tables(result: DiagnosticResult) -> Mapping[str, tuple[list[str], list[list[Any]]]]:
    """``{key: (columns, rows)}`` of every section, for loggers with tables (W&B)."""
    out = {}
    for sec in result.sections:
        if not sec.in_markdown:
            continue
        shown = sec.shown()
        out[sec.key] = ([str(c) for c in shown.columns], shown.astype(str).values.tolist())
    return out
