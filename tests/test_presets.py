"""A paper preset runs as a real Hydra multirun and the report turns it into tables and plots."""

from __future__ import annotations

import pandas as pd

from rise_exp.report import write_report
from tests.helpers import run_cli, tiny_run

TINY = tiny_run("task.n_train=40", "task.n_queries=4", "logger=csv")


def test_ablation_preset_multirun_and_report(tmp_path):
    sweep = tmp_path / "sweep"
    res = run_cli(
        "-m",
        "experiment=ablate_sketch_dims",
        "ablation=base,kr32,gh_only",
        "seed=1,2",
        f"hydra.sweep.dir={sweep}",
        *TINY,
        cache=tmp_path / "cache",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert len([p for p in sweep.iterdir() if p.is_dir()]) == 6
    report = write_report(sweep, tmp_path / "report", use_wandb=False)
    summary = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert set(summary["ablation"]) == {"base", "kr32", "gh_only"}
    assert (summary["n_seeds"] == 2).all()
    assert set(summary.loc[summary["ablation"] == "kr32", "kr"]) == {32}
    assert set(summary.loc[summary["ablation"] == "gh_only", "fusion"]) == {"gh"}
    assert (tmp_path / "report" / "ablation_kr.png").stat().st_size > 1000
    assert "kr32" in (tmp_path / "report" / "report.md").read_text()
    assert report is not None
