"""rise_exp.report.closed_loop: selector tables, CSV, flat metrics, and the budget plot (categorical with
one budget, lines over several; a junk-perplexity panel when present)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from rise_exp.report.closed_loop import (
    aggregate,
    cell,
    flat_metrics,
    markdown_table,
    mean_std,
    metric_columns,
    plot_budget,
    print_table,
    write_csv,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SELECTORS = ("rise", "bm25", "random")
HIGH = {"rise": (40.0, 42.0), "bm25": (43.0, 44.0), "random": (45.0, 49.0)}  # ppl_high of seeds 0, 1
JUNK = {"rise": (60.0, 61.0), "bm25": (55.0, 57.0), "random": (50.0, 50.0)}


def _rows(budgets=(0.3,), junk=True) -> list[dict]:
    rows = []
    for b in budgets:
        for seed in (0, 1):
            for s in SELECTORS:
                row = {
                    "selector": s,
                    "budget": b,
                    "seed": seed,
                    "ppl_high": HIGH[s][seed] - 10 * b,
                    "frac_high": 0.5,
                    "lm_eval": "skipped",
                    "flag": True,
                }
                if junk:
                    row["ppl_junk"] = JUNK[s][seed] - 10 * b
                rows.append(row)
    return rows


def _points(ax) -> list:
    return [ln for ln in ax.lines if ln.get_marker() not in ("_", "|", "None", None, "")]


def test_columns_aggregate_tables_csv_and_flat_metrics(tmp_path, capsys):
    rows = _rows()
    cols = metric_columns(rows)
    assert cols == ["ppl_high", "frac_high", "ppl_junk"]  # text and bools are not metrics
    aggs = aggregate(rows, cols)
    assert [(a["selector"], a["n"]) for a in aggs] == [("rise", 2), ("bm25", 2), ("random", 2)]
    assert aggs[0]["ppl_high_mean"] == pytest.approx(38.0) and aggs[0]["ppl_high_std"] == pytest.approx(math.sqrt(2))
    assert cell(aggs[0], "ppl_high") == "38.000 ± 1.414"
    md = markdown_table(aggs, ["ppl_high"], base={"ppl_high": 1234.5})
    assert md.splitlines()[2:4] == ["| start | - | - | 1.23e+03 |", "| rise | 0.3 | 2 | 38.000 ± 1.414 |"]
    write_csv(tmp_path / "c.csv", rows, aggs, cols)
    table = list(csv.reader(open(tmp_path / "c.csv")))
    assert table[0] == ["selector", "budget", "seed", "ppl_high", "frac_high", "ppl_junk"]
    assert len(table) == 1 + 6 + 2 * 3 and table[-2][:3] == ["random", "0.3", "mean"]
    flat = flat_metrics(aggs, ["ppl_high"])
    assert flat["ppl_high/rise"] == flat["ppl_high/rise@0.3"] == pytest.approx(38.0)
    assert flat["ppl_high_std/bm25"] == pytest.approx(math.sqrt(0.5))
    print_table(aggs, ["ppl_high"], "closed loop", {"ppl_high": 50.0})
    out = capsys.readouterr().out
    assert "closed loop" in out and "38.000 ± 1.414" in out and "50.000" in out


def test_single_budget_plot_puts_selectors_on_a_categorical_axis_with_a_junk_panel(tmp_path):
    aggs = aggregate(_rows(), metric_columns(_rows()))
    path = tmp_path / "budget.png"
    fig = plot_budget(path, aggs, "ppl_high", {"ppl_high": 50.0, "ppl_junk": 65.0})
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert [ax.get_ylabel() for ax in fig.axes] == ["ppl_high (lower is better)", "ppl_junk (lower is better)"]
    assert "junk" in fig.axes[1].get_title()
    assert "budget 0.3" in fig.get_suptitle() and "± sample std over 2 seeds" in fig.get_suptitle()
    for ax, values in zip(fig.axes, (HIGH, JUNK)):
        assert [t.get_text() for t in ax.get_xticklabels()] == list(SELECTORS)
        points = _points(ax)
        # one unjoined point per selector, at its category, at the mean: no line over a single budget
        assert len(points) == 3 and all(p.get_linestyle() == "None" for p in points)
        assert [p.get_xdata()[0] for p in points] == [0, 1, 2]
        assert [p.get_ydata()[0] for p in points] == pytest.approx([np.mean(values[s]) - 3 for s in SELECTORS])
        start = [ln for ln in ax.lines if ln.get_label().startswith("start")]
        assert len(start) == 1 and start[0].get_linestyle() == "--"
    # the error bar of random's ppl_high spans mean ± sample std (44 ± 2.83)
    segs = [seg for coll in fig.axes[0].collections for seg in coll.get_segments()]
    assert any(np.allclose(seg[:, 1], [44 - 2 * math.sqrt(2), 44 + 2 * math.sqrt(2)]) for seg in segs)


def test_stage_call_with_a_number_as_base_and_no_junk(tmp_path):
    rows = _rows(junk=False)
    fig = plot_budget(tmp_path / "b.png", aggregate(rows, metric_columns(rows)), "ppl_high", 50.0)
    (ax,) = fig.axes  # no ppl_junk in the results: one panel
    assert (tmp_path / "b.png").is_file()
    assert [ln.get_ydata()[0] for ln in ax.lines if ln.get_label().startswith("start")] == [50.0]
    rows = _rows()
    fig = plot_budget(tmp_path / "c.png", aggregate(rows, metric_columns(rows)), "ppl_high", 50.0)
    assert len(fig.axes) == 2  # the junk panel is drawn; the number is the start of ppl_high only
    assert [ln.get_label() for ln in fig.axes[1].lines if ln.get_label().startswith("start")] == []


def test_several_budgets_draw_a_line_per_selector(tmp_path):
    rows = _rows(budgets=(0.1, 0.5, 0.3))
    fig = plot_budget(tmp_path / "m.png", aggregate(rows, metric_columns(rows)), "ppl_high")
    assert len(fig.axes) == 2
    lines = [ln for ln in _points(fig.axes[0])]
    assert len(lines) == 3 and all(ln.get_linestyle() == "-" for ln in lines)
    assert all(list(ln.get_xdata()) == [0.1, 0.3, 0.5] for ln in lines)
    assert list(lines[0].get_ydata()) == pytest.approx([40.0, 38.0, 36.0])  # rise: mean 41 - 10 * budget
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(SELECTORS)
    assert "± sample std over 2 seeds" in fig.get_suptitle()


def test_report_mean_std_and_markdown():
    rows = [
        {"selector": "a", "budget": 0.3, "seed": 0, "x": 1.0},
        {"selector": "a", "budget": 0.3, "seed": 1, "x": 3.0},
        {"selector": "b", "budget": 0.3, "seed": 0, "x": 5.0},
    ]
    aggs = aggregate(rows, ["x"])
    assert aggs[0]["x_mean"] == 2.0 and aggs[0]["x_std"] == pytest.approx(math.sqrt(2.0))
    assert aggs[1]["n"] == 1 and aggs[1]["x_std"] == 0.0
    assert mean_std([1.0, float("nan"), 3.0]) == (2.0, pytest.approx(math.sqrt(2.0)))
    md = markdown_table(aggs, ["x"], base={"x": 9.0})
    assert "| a | 0.3 | 2 | 2.000 ± 1.414 |" in md and "| start | - | - | 9.000 |" in md
