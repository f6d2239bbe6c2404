"""rise_exp.report.plots: unjoined labelled points against index size, ablation lines with a named band."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_hex

from rise_exp.report import collect_runs, plot_ablation, plot_metric_vs_bytes, summarize


def _points(ax) -> list:
    """The data markers of errorbar calls (caps use the '_' marker)."""
    return [ln for ln in ax.lines if ln.get_marker() not in ("_", "|", "None", None, "")]


def test_metric_vs_bytes_points_are_not_joined_and_say_what_the_error_bars_are(sweep):
    fig = plot_metric_vs_bytes(summarize(collect_runs(sweep)), "auprc@10")
    (ax,) = fig.axes
    points = _points(ax)
    assert len(points) == 4 and all(len(p.get_xdata()) == 1 and p.get_linestyle() == "None" for p in points)
    assert "error bars: ± sample std over 2 seeds" in ax.get_title()
    legend = ax.get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    # sorted by the metric, high to low; the method once per series, settings that vary per point
    assert labels == [
        "rise (tiny-pythia): kr=128",
        "rise (tiny-pythia): kr=64",
        "rise (tiny-pythia): kr=32",
        "bm25 (tiny-pythia)",
    ]
    assert "sorted by auprc@10, high to low" in legend.get_title().get_text()
    assert len({to_hex(p.get_color()) for p in points}) == 4
    assert ax.get_xscale() == "log"
    lo, hi = ax.get_xlim()
    assert lo < 256 and hi > 1024 and hi / lo < 4 * 1024 / 256  # the data's range with a margin, not more
    # the error bar of kr=32 spans mean ± sample std (0.45 ± 0.0707)
    segs = [seg for coll in ax.collections for seg in coll.get_segments()]
    assert any(np.allclose(seg[:, 1], [0.45 - 0.0707107, 0.45 + 0.0707107], atol=1e-4) for seg in segs)


def test_metric_vs_bytes_names_variants_and_spreads_equal_sizes(ablation_sweep):
    fig = plot_metric_vs_bytes(summarize(collect_runs(ablation_sweep)), "auprc@10")
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["base", "kh64", "kr32", "gh_only"]
    assert ax.get_legend().get_title().get_text().startswith("rise (tiny-pythia)")
    assert len({p.get_marker() for p in _points(ax)}) == 4
    xs = {lab: p.get_xdata()[0] for p, lab in zip(_points(ax), ["base", "kh64", "kr32", "gh_only"])}
    assert xs["kh64"] != xs["kr32"] and xs["kh64"] == pytest.approx(2048, rel=0.15)  # same size, spread apart
    assert xs["kr32"] == pytest.approx(2048, rel=0.15) and xs["base"] == 4096 and xs["gh_only"] == 1024
    assert "spread slightly apart" in ax.get_xlabel()


def test_ablation_keeps_a_line_and_names_its_band(sweep, ablation_sweep):
    fig = plot_ablation(summarize(collect_runs(sweep)), "kr", "auprc@10")
    (ax,) = fig.axes
    (line,) = ax.lines
    assert list(line.get_xdata()) == [32, 64, 128] and line.get_linestyle() == "-"
    assert list(line.get_ydata()) == pytest.approx([0.45, 0.63, 0.75])
    assert ax.get_legend().get_title().get_text() == "band: ± sample std over 2 seeds"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["rise (tiny-pythia)"]
    # the ablation group (kr32 vs. base) makes one line; the other fixed settings are named in the title
    fig = plot_ablation(summarize(collect_runs(ablation_sweep)), "kr", "auprc@10")
    (ax,) = fig.axes
    (line,) = ax.lines
    assert list(line.get_xdata()) == [32, 128]
    assert "other settings: fusion=rh+gh, kh=128" in ax.get_title()
    assert ax.get_legend().get_title().get_text() == "band: ± sample std over 2 seeds"
    assert plot_ablation(summarize(collect_runs(ablation_sweep)), "kg", "auprc@10") is None  # one kg value
