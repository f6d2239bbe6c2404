"""rise_exp.report.write: the files of a report, their tables, the default output folder, and W&B."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest

from rise_exp.core.errors import ConfigError
from rise_exp.report import collect_runs, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_write_report_files_table_and_failed_section(sweep, tmp_path):
    out = tmp_path / "report"
    rep = write_report(sweep, out, use_wandb=False)
    names = {p.name for p in rep.files}
    assert {
        "report.md",
        "report.tex",
        "runs.csv",
        "summary.csv",
        "report.json",
        "auprc_vs_bytes.png",
        "ablation_kr.png",
    } <= names
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


def test_default_output_is_the_swept_folder_and_a_second_read_is_unchanged(sweep):
    rep = write_report(sweep, use_wandb=False)
    assert rep.out == sweep / "report"
    assert {p.parent for p in rep.files} == {sweep / "report"} and (sweep / "report" / "report.md").is_file()
    first = (sweep / "report" / "runs.csv").read_text()
    again = write_report(sweep, use_wandb=False)  # the sweep now holds report/: it is not a run
    assert list(again.runs["job"]) == [str(i) for i in range(9)]
    assert (sweep / "report" / "runs.csv").read_text() == first
    assert len(collect_runs(sweep)) == 9


def test_metric_choice_names_plots_and_unknown_metric_fails(sweep, tmp_path):
    out = tmp_path / "r"
    write_report(sweep, out, metric="auroc@10", use_wandb=False)
    assert (out / "auroc_vs_bytes.png").is_file() and not (out / "auprc_vs_bytes.png").exists()
    first_row = [line for line in (out / "report.md").read_text().splitlines() if line.startswith("|")][0]
    assert [c.strip() for c in first_row.split("|")][6] == "auroc@10"
    with pytest.raises(ConfigError, match=r"--metric 'auprc@7'.*available: .*auprc@10"):
        write_report(sweep, out, metric="auprc@7", use_wandb=False)


def test_plots_only_when_their_data_exist(tmp_path, write_job, metrics_for):
    root = tmp_path / "m"
    for i, method in enumerate(("bm25", "rise")):
        m = metrics_for(0.5, 100.0)
        del m["index_bytes_per_row"]
        write_job(root, str(i), [f"method={method}", "seed=0"], m, {"status": "ok"})
    rep = write_report(root, tmp_path / "out", use_wandb=False)
    assert not [p for p in rep.files if p.suffix == ".png"]
    assert not list((tmp_path / "out").glob("*.png"))


def test_mixed_tasks_error_names_them_unless_allowed(sweep, tmp_path, write_job, metrics_for):
    write_job(sweep, "9", ["method=bm25", "seed=0"], metrics_for(0.2, 800.0), {"status": "ok"}, task="tofu")
    with pytest.raises(ConfigError, match=r"different tasks.*howdy \(9 runs\), tofu \(1 runs\).*--allow-mixed"):
        write_report(sweep, tmp_path / "out", use_wandb=False)
    rep = write_report(sweep, tmp_path / "out", allow_mixed_tasks=True, use_wandb=False)
    header = next(line for line in rep.markdown.splitlines() if line.startswith("|"))
    assert [c.strip() for c in header.split("|")][1:4] == ["task", "model", "method"]
    assert set(rep.summary["task"]) == {"howdy", "tofu"} and len(rep.summary) == 5


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
