"""rise_exp.report.runs: finding run dirs, status rules, varied settings, and corrupt runs as failed rows."""

from __future__ import annotations

import math

import pytest

from rise_exp.core.errors import DataError
from rise_exp.report import collect_runs, find_run_dirs, write_report


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


def test_status_rules_and_tree_of_runs(tmp_path, write_job, metrics_for):
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


def test_empty_and_missing_inputs_fail_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no runs found under .*empty"):
        collect_runs(tmp_path / "empty")
    with pytest.raises(DataError, match="not a directory"):
        collect_runs(tmp_path / "absent")


def test_corrupt_metrics_json_is_a_failed_run_and_the_others_are_still_reported(sweep, tmp_path):
    (sweep / "4" / "metrics.json").write_text('{"auprc@10": 0.4,')  # rise kr=32 seed 0, cut off mid-write
    df = collect_runs(sweep)
    assert len(df) == 9
    assert list(df["status"]) == ["ok"] * 4 + ["failed"] + ["ok"] * 3 + ["failed"]
    err = df.loc[4, "error"]
    assert err.startswith("metrics.json: not valid JSON (") and "line 1" in err
    assert df.loc[4, "method"] == "rise" and df.loc[4, "kr"] == 32  # its config still places it in its group
    assert math.isnan(df.loc[4, "auprc@10"]) and df.loc[5, "auprc@10"] == pytest.approx(0.50)

    rep = write_report(sweep, tmp_path / "out", use_wandb=False)
    kr32 = rep.summary[rep.summary["kr"] == 32].iloc[0]
    assert (kr32["n_seeds"], kr32["n_failed"]) == (1, 1)
    assert kr32["auprc@10_mean"] == pytest.approx(0.50) and math.isnan(kr32["auprc@10_std"])
    rise128 = rep.summary[rep.summary["kr"] == 128].iloc[0]
    assert rise128["auprc@10_mean"] == pytest.approx(0.75) and rise128["n_failed"] == 0
    assert "9 runs: 7 ok, 2 failed" in rep.markdown
    failed = rep.markdown.split("## Failed runs", 1)[1]
    assert "- `4` (method=rise method.kr=32 seed=0): **failed**: metrics.json: not valid JSON" in failed
    assert "`8`" in failed


@pytest.mark.parametrize(
    ("name", "text", "expect"),
    [
        ("status.json", "not json at all", "status.json: not valid JSON ("),
        ("status.json", '{"error": "no status key"}', "status.json: expected a JSON object with a 'status' key"),
        ("metrics.json", "[1, 2]", "metrics.json: expected a JSON object of metrics, got list"),
        ("config.yaml", "method: [unclosed", "config.yaml: not valid YAML ("),
        (".hydra/overrides.yaml", "{a: 1}", ".hydra/overrides.yaml: expected a list, got dict"),
    ],
)
def test_each_unparseable_run_file_names_itself_in_the_error(sweep, name, text, expect):
    (sweep / "2" / name).write_text(text)
    df = collect_runs(sweep)
    assert len(df) == 9 and df.loc[2, "status"] == "failed" and df.loc[2, "error"].startswith(expect)
    assert (df.drop(index=[2, 8])["status"] == "ok").all()


def test_config_without_a_group_name_is_a_failed_run(sweep):
    cfg = sweep / "0" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("name: tiny-pythia", "size: tiny"))
    df = collect_runs(sweep)
    assert df.loc[0, "status"] == "failed" and df.loc[0, "error"] == "config.yaml: missing setting model.name"
    assert df.loc[1, "status"] == "ok"


def test_report_folders_are_not_searched_for_runs(sweep, write_job, metrics_for):
    # a run-like folder inside report/ (e.g. a W&B run's files/config.yaml) or inside a custom --out folder
    write_job(sweep / "report" / "files", "x", ["method=bm25"], metrics_for(0.1, 1.0), None)
    write_job(sweep / "tables" / "files", "y", ["method=bm25"], metrics_for(0.1, 1.0), None)
    found = [p.relative_to(sweep).as_posix() for p in find_run_dirs(sweep)]
    assert found == [*map(str, range(9)), "tables/files/y"]  # report/ is skipped; tables/ until it holds a report
    (sweep / "tables" / "report.json").write_text("{}")
    assert [p.name for p in find_run_dirs(sweep)] == [str(i) for i in range(9)]
