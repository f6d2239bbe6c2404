"""The results report: per-job table, seed statistics checked by hand, files, plots, errors and the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from rise_exp.errors import ConfigError, DataError
from rise_exp.report import collect_runs, main, summarize, tex_escape, write_report

ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RISE = {"name": "rise", "kr": 128, "kh": 128, "kg": 64, "fusion": "rh+gh", "lam_rh": 1.0, "lam_gh": 0.3,
        "lam_rg": 0.0, "tau": 0.1, "rho": 0.92, "seed": 42}
BM25 = {"name": "bm25", "k1": 1.5, "b": 0.75}


def write_job(root: Path, job: str, overrides: list[str], metrics: dict[str, Any] | None,
              status: dict[str, Any] | None, task: str = "howdy") -> Path:
    """One Hydra job dir as the CLI leaves it: resolved config, .hydra/overrides.yaml, status/metrics."""
    d = root / job
    (d / ".hydra").mkdir(parents=True)
    cfg: dict[str, Any] = {"seed": 42, "stage": {"name": "attribute", "ks": [5, 10, 50]},
                           "task": {"name": task}, "model": {"name": "tiny-pythia"}, "method": dict(BM25)}
    for o in overrides:
        key, value = o.split("=", 1)
        if key == "method":
            cfg["method"] = dict(RISE if value == "rise" else BM25)
        elif key == "seed":
            cfg["seed"] = int(value)
        elif key.startswith("method."):
            cfg["method"][key.split(".", 1)[1]] = yaml.safe_load(value)
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        (d / "metrics.json").write_text(json.dumps(metrics))
    if status is not None:
        (d / "status.json").write_text(json.dumps(status))
    return d


def metrics_for(auprc10: float, bytes_per_row: float, auroc10: float | None = 0.8) -> dict[str, Any]:
    return {"auprc@5": auprc10 + 0.1, "auprc@10": auprc10, "auprc@50": auprc10 - 0.1, "auroc@10": auroc10,
            "p@10": 0.5, "num_train": 100, "num_queries": 6, "index_seconds": 1.0, "query_seconds": 0.5,
            "index_bytes": bytes_per_row * 100, "index_bytes_per_row": bytes_per_row, "peak_rss_mb": 512.0}


# (overrides, auprc@10, bytes/row, auroc@10); the last job failed.
JOBS: list[tuple[list[str], float, float, float | None]] = [
    (["method=bm25", "seed=0"], 0.30, 800.0, 0.8),
    (["method=bm25", "seed=1"], 0.34, 800.0, 0.8),
    (["method=rise", "seed=0"], 0.70, 1024.0, 0.9),
    (["method=rise", "seed=1"], 0.80, 1024.0, 0.7),
    (["method=rise", "method.kr=32", "seed=0"], 0.40, 256.0, 0.8),
    (["method=rise", "method.kr=32", "seed=1"], 0.50, 256.0, 0.8),
    (["method=rise", "method.kr=64", "seed=0"], 0.60, 512.0, 0.6),
    (["method=rise", "method.kr=64", "seed=1"], 0.66, 512.0, None),
]
FAILED = ["method=rise", "method.kr=64", "seed=2"]


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "multirun" / "2025-01-01_00-00-00"
    root.mkdir(parents=True)
    (root / "multirun.yaml").write_text(yaml.safe_dump(
        {"hydra": {"overrides": {"task": ["method=rise,bm25", "seed=0,1"]}}}))
    for i, (ov, a10, nbytes, auroc) in enumerate(JOBS):
        write_job(root, str(i), ov, metrics_for(a10, nbytes, auroc), {"status": "ok"})
    write_job(root, str(len(JOBS)), FAILED, None, {"status": "failed", "error": "CUDA out of memory\non rank 0"})
    return root


def test_collect_runs_one_row_per_job_with_varied_settings(sweep):
    df = collect_runs(sweep)
    assert list(df["job"]) == [str(i) for i in range(9)]
    assert df.attrs["settings"] == ["kr"]  # seed varies too but is not a setting; method is its own column
    assert list(df.columns[:8]) == ["job", "status", "error", "task", "stage", "model", "method", "seed"]
    assert list(df["method"]) == ["bm25"] * 2 + ["rise"] * 7
    assert list(df["seed"]) == [0, 1, 0, 1, 0, 1, 0, 1, 2]
    assert math.isnan(df.loc[0, "kr"]) and list(df["kr"][2:]) == [128, 128, 32, 32, 64, 64, 64]
    assert list(df["status"]) == ["ok"] * 8 + ["failed"]
    assert df.loc[8, "error"].startswith("CUDA out of memory")
    assert df.loc[8, "overrides"] == "method=rise method.kr=64 seed=2"
    assert df.loc[4, "auprc@10"] == pytest.approx(0.40)
    assert math.isnan(df.loc[7, "auroc@10"]) and math.isnan(df.loc[8, "auprc@10"])
    assert df.attrs["sweep"] == ["method=rise,bm25", "seed=0,1"]


def test_summary_mean_and_std_match_hand_computation(sweep):
    s = summarize(collect_runs(sweep)).set_index(["method", "kr"], drop=False)
    assert len(s) == 4
    sd2 = math.sqrt(2 * 0.05**2)  # sample std of two values 0.1 apart
    expect = {("bm25", math.nan): (0.32, math.sqrt(2 * 0.02**2)), ("rise", 32): (0.45, sd2),
              ("rise", 64): (0.63, math.sqrt(2 * 0.03**2)), ("rise", 128): (0.75, sd2)}
    for (method, kr), (mean, std) in expect.items():
        row = s[(s["method"] == method) & ((s["kr"] == kr) | (s["kr"].isna() & math.isnan(kr)))].iloc[0]
        assert row["auprc@10_mean"] == pytest.approx(mean), (method, kr)
        assert row["auprc@10_std"] == pytest.approx(std), (method, kr)
        assert row["n_seeds"] == 2
    kr64 = s[s["kr"] == 64].iloc[0]
    assert kr64["n_failed"] == 1 and s["n_failed"].sum() == 1
    assert kr64["auroc@10_mean"] == pytest.approx(0.6) and math.isnan(kr64["auroc@10_std"])  # null skipped
    assert (s["task"] == "howdy").all() and (s["model"] == "tiny-pythia").all()
    # sorted by method, then kr ascending
    assert list(zip(s["method"], s["kr"].fillna(-1))) == [("bm25", -1), ("rise", 32), ("rise", 64), ("rise", 128)]


def test_summary_pools_an_extra_setting(sweep):
    s = summarize(collect_runs(sweep), pool=["kr"])
    rise = s[s["method"] == "rise"].iloc[0]
    assert len(s) == 2 and rise["n_seeds"] == 6 and rise["n_failed"] == 1
    assert rise["auprc@10_mean"] == pytest.approx((0.7 + 0.8 + 0.4 + 0.5 + 0.6 + 0.66) / 6)
    with pytest.raises(ConfigError, match="unknown column"):
        summarize(collect_runs(sweep), metrics=["nope"])


def test_write_report_files_table_and_failed_section(sweep, tmp_path):
    out = tmp_path / "report"
    rep = write_report(sweep, out, use_wandb=False)
    names = {p.name for p in rep.files}
    assert {"report.md", "report.tex", "runs.csv", "summary.csv", "report.json", "auprc_vs_bytes.png",
            "ablation_kr.png"} <= names
    assert not (out / "ablation_kh.png").exists()
    for png in ("auprc_vs_bytes.png", "ablation_kr.png"):
        data = (out / png).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    md = (out / "report.md").read_text()
    assert md == rep.markdown
    assert "# Results: task howdy, stage attribute" in md
    assert "9 runs: 8 ok, 1 failed" in md
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 4  # header, rule, four groups
    assert [c.strip() for c in table[0].split("|")[1:7]] == ["model", "method", "kr", "seeds", "failed", "auprc@10"]
    rows = {cells[3]: cells for cells in ([c.strip() for c in line.split("|")] for line in table[2:])}
    assert list(rows) == ["–", "32", "64", "128"]
    assert rows["32"][6] == "0.4500 ± 0.0707"  # auprc@10 is the headline column
    assert rows["–"][1:7] == ["tiny-pythia", "bm25", "–", "2", "0", "0.3200 ± 0.0283"]
    assert rows["64"][4:6] == ["2", "1"] and "0.6000" in rows["64"]  # auroc@10 with one value: no ± part
    assert "800.0 ± 0.0" in rows["–"]  # bytes per row: the std has the mean's precision
    failed = md.split("## Failed runs", 1)[1]
    assert "`8`" in failed and "method=rise method.kr=64 seed=2" in failed
    assert "CUDA out of memory on rank 0" in failed and "**failed**" in failed
    tex = (out / "report.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and "\\begin{tabular}" in tex
    assert "0.4500 $\\pm$ 0.0707" in tex
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 9 and list(runs["status"]).count("failed") == 1
    summary = pd.read_csv(out / "summary.csv")
    assert summary["auprc@10_mean"].tolist() == pytest.approx([0.32, 0.45, 0.63, 0.75])
    meta = json.loads((out / "report.json").read_text())
    assert meta["metric"] == "auprc@10" and meta["settings"] == ["kr"]
    assert sorted(meta["plots"]) == ["ablation_kr.png", "auprc_vs_bytes.png"]


def test_metric_choice_names_plots_and_unknown_metric_fails(sweep, tmp_path):
    out = tmp_path / "r"
    write_report(sweep, out, metric="auroc@10", use_wandb=False)
    assert (out / "auroc_vs_bytes.png").is_file() and not (out / "auprc_vs_bytes.png").exists()
    first_row = [line for line in (out / "report.md").read_text().splitlines() if line.startswith("|")][0]
    assert [c.strip() for c in first_row.split("|")][6] == "auroc@10"
    with pytest.raises(ConfigError, match=r"--metric 'auprc@7'.*available: .*auprc@10"):
        write_report(sweep, out, metric="auprc@7", use_wandb=False)


def test_plots_only_when_their_data_exist(tmp_path):
    root = tmp_path / "m"
    for i, method in enumerate(("bm25", "rise")):
        m = metrics_for(0.5, 100.0)
        del m["index_bytes_per_row"]
        write_job(root, str(i), [f"method={method}", "seed=0"], m, {"status": "ok"})
    rep = write_report(root, tmp_path / "out", use_wandb=False)
    assert not [p for p in rep.files if p.suffix == ".png"]
    assert not list((tmp_path / "out").glob("*.png"))


def test_status_rules_and_tree_of_runs(tmp_path):
    tree = tmp_path / "tree"
    a = tree / "a"
    a.mkdir(parents=True)
    (a / "multirun.yaml").write_text("hydra: {}\n")
    write_job(a, "0", ["method=bm25"], metrics_for(0.5, 10.0), None)  # metrics only -> ok
    write_job(a, "1", ["method=bm25"], None, None)  # neither -> incomplete
    (a / "2").mkdir()  # a job Hydra never got to
    write_job(tree / "b" / "outputs", "run", ["method=rise"], None, {"status": "ok"})  # ok without metrics
    df = collect_runs(tree)
    assert list(df["job"]) == ["a/0", "a/1", "a/2", "b/outputs/run"]
    assert list(df["status"]) == ["ok", "incomplete", "incomplete", "incomplete"]
    assert "metrics.json is missing" in df.loc[3, "error"]
    single = collect_runs(a / "0")
    assert list(single["job"]) == ["0"] and single.loc[0, "auprc@10"] == pytest.approx(0.5)
    rep = write_report(tree, tmp_path / "out", use_wandb=False)
    failed = rep.markdown.split("## Failed runs", 1)[1]
    assert all(f"`{j}`" in failed for j in ("a/1", "a/2", "b/outputs/run"))


def test_empty_missing_and_malformed_inputs_fail_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no runs found under .*empty"):
        collect_runs(tmp_path / "empty")
    with pytest.raises(DataError, match="not a directory"):
        collect_runs(tmp_path / "absent")
    d = write_job(tmp_path / "bad", "0", ["method=bm25"], None, None)
    (d / "metrics.json").write_text("{not json")
    with pytest.raises(DataError, match=r"metrics\.json"):
        collect_runs(tmp_path / "bad")


def test_mixed_tasks_error_names_them_unless_allowed(sweep, tmp_path):
    write_job(sweep, "9", ["method=bm25", "seed=0"], metrics_for(0.2, 800.0), {"status": "ok"}, task="tofu")
    with pytest.raises(ConfigError, match=r"different tasks.*howdy \(9 runs\), tofu \(1 runs\).*--allow-mixed"):
        write_report(sweep, tmp_path / "out", use_wandb=False)
    rep = write_report(sweep, tmp_path / "out", allow_mixed_tasks=True, use_wandb=False)
    header = next(line for line in rep.markdown.splitlines() if line.startswith("|"))
    assert [c.strip() for c in header.split("|")][1:4] == ["task", "model", "method"]
    assert set(rep.summary["task"]) == {"howdy", "tofu"} and len(rep.summary) == 5


def test_main_prints_table_and_reports_errors(sweep, tmp_path, capsys):
    assert main([str(sweep), "--out", str(tmp_path / "cli"), "--no-wandb"]) == 0
    printed = capsys.readouterr().out
    assert "0.4500 ± 0.0707" in printed and "## Failed runs" in printed
    assert (tmp_path / "cli" / "report.md").read_text().strip() in printed
    (tmp_path / "nothing").mkdir()
    assert main([str(tmp_path / "nothing"), "--out", str(tmp_path / "x"), "--no-wandb"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no runs found") and len(err.strip().splitlines()) == 1


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(opt in out for opt in ("--out", "--metric", "--no-wandb", "--allow-mixed-tasks", "p@10%"))


def test_module_entry_point_subprocess(tmp_path):
    (tmp_path / "nothing").mkdir()
    res = subprocess.run([sys.executable, "-m", "rise_exp.report", str(tmp_path / "nothing"), "--no-wandb"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.startswith("error: no runs found"), res.stderr
    assert "Traceback" not in res.stderr


def test_wandb_offline_run_and_missing_wandb(sweep, tmp_path, monkeypatch):
    out = tmp_path / "wb"
    write_report(sweep, out, use_wandb=True)
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    media = runs[0] / "files" / "media"
    (table_file,) = media.glob("table/summary_*.table.json")
    logged = json.loads(table_file.read_text())
    col = logged["columns"].index("auprc@10_mean")
    assert [row[col] for row in logged["data"]] == pytest.approx([0.32, 0.45, 0.63, 0.75])
    assert {p.name.split("_0_")[0] for p in media.glob("images/*.png")} == {"auprc_vs_bytes", "ablation_kr"}
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` raise ImportError
    with pytest.warns(UserWarning, match="wandb is not importable"):
        rep = write_report(sweep, tmp_path / "nowb", use_wandb=True)
    assert (tmp_path / "nowb" / "report.md").is_file() and rep.metric == "auprc@10"


def test_tex_escape():
    assert tex_escape("p@10% a_b & 1 ± 2 –") == r"p@10\% a\_b \& 1 $\pm$ 2 --"
