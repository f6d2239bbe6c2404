"""rise_exp.report.render: Markdown and LaTeX tables, LaTeX escaping, and report.md's failed-runs section."""

from __future__ import annotations

import pandas as pd

from rise_exp.report import collect_runs, render_markdown, tex_escape, to_latex, to_markdown
from rise_exp.report.render import failed_section


def test_tex_escape():
    assert tex_escape("p@10% a_b & 1 ± 2 –") == r"p@10\% a\_b \& 1 $\pm$ 2 --"


def test_tables_right_align_numbers_only():
    table = pd.DataFrame({"method": ["bm25", "rise"], "seeds": ["2", "3"], "auprc@10": ["0.3 ± 0.1", "–"]})
    rule = to_markdown(table).splitlines()[1].strip("|").split("|")
    assert ["right" if c.endswith(":") else "left" for c in rule] == ["left", "right", "right"]
    tex = to_latex(table, caption="x")
    assert "\\begin{tabular}{lrr}" in tex and "0.3 $\\pm$ 0.1" in tex and "% x\n" in tex


def test_markdown_lists_failed_runs_with_overrides_and_error(sweep, tmp_path):
    runs = collect_runs(sweep)
    md = render_markdown(runs, pd.DataFrame({"method": ["x"]}), sweep, ["howdy"])
    assert md.startswith("# Results: task howdy, stage attribute\n")
    assert "9 runs: 8 ok, 1 failed." in md and "Sweep: `method=rise,bm25 seed=0,1`." in md
    assert failed_section(runs).endswith(
        "- `8` (method=rise method.kr=64 seed=2): **failed**: CUDA out of memory on rank 0"
    )
    assert failed_section(runs[runs["status"] == "ok"]).endswith("None: every run finished.")
