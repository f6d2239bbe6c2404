"""Plot pieces shared by the diagnostics: a log-2 bytes axis and mean lines with a ± std band."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rise_exp.report.plots import fmt_bytes, new_figure, palette

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["band_line", "bytes_axis", "new_figure", "palette"]


def bytes_axis(ax: Axes, label: str = "index bytes per row (log scale)") -> None:
    """Log-2 x axis labelled in bytes (``48 KiB``)."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(LogLocator(base=2))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_bytes(v)))
    ax.set_xlabel(label)


def band_line(
    ax: Axes,
    x: Sequence[float],
    mean: Sequence[float],
    std: Sequence[float] | None,
    *,
    label: str,
    color: Any,
    marker: str = "o",
    linestyle: str = "-",
) -> None:
    """A mean line with markers and, when ``std`` is given, a shaded ``mean ± std`` band."""
    x, m = np.asarray(x, float), np.asarray(mean, float)
    ax.plot(x, m, marker=marker, linestyle=linestyle, color=color, label=label, markersize=5)
    if std is not None:
        s = np.nan_to_num(np.asarray(std, float))
        ax.fill_between(x, m - s, m + s, color=color, alpha=0.18, linewidth=0)
