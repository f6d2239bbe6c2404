"""rise_exp.report.cli: ``python -m rise_exp.report`` prints the table, reports user errors in one line."""

from __future__ import annotations

import pytest

from rise_exp.report import main
from tests.helpers import run_cli


def test_main_prints_table_and_reports_errors(sweep, tmp_path, capsys):
    assert main([str(sweep), "--out", str(tmp_path / "cli"), "--no-wandb"]) == 0
    printed = capsys.readouterr().out
    assert " kr |" in next(line for line in printed.splitlines() if line.startswith("| model"))
    assert "0.4500 ± 0.0707" in printed and "## Failed runs" in printed
    assert (tmp_path / "cli" / "report.md").read_text().strip() in printed
    (tmp_path / "nothing").mkdir()
    assert main([str(tmp_path / "nothing"), "--out", str(tmp_path / "x"), "--no-wandb"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no runs found") and len(err.strip().splitlines()) == 1


def test_main_without_out_writes_into_the_swept_folder(sweep, capsys):
    assert main([str(sweep), "--no-wandb"]) == 0
    assert (sweep / "report" / "report.md").is_file() and (sweep / "report" / "summary.csv").is_file()
    assert capsys.readouterr().err.strip().endswith(f"to {sweep / 'report'}")


def test_pool_averages_a_setting_with_the_seed_and_names_one_that_does_not_vary(sweep, tmp_path, capsys):
    assert main([str(sweep), "--out", str(tmp_path), "--pool", "kr", "--pool", "finetune.seed", "--no-wandb"]) == 0
    report = (tmp_path / "report.md").read_text()
    # RISE over kr 128 / 32 / 64 x seeds 0 and 1: 0.70, 0.80, 0.40, 0.50, 0.60, 0.66
    assert "0.6100 ± 0.1435" in report and "over seeds and kr;" in report
    assert "nothing pooled over: `finetune.seed`" in report
    header = next(line for line in report.splitlines() if line.startswith("| model"))
    assert " kr |" not in header  # one RISE row, no kr column
    assert sum(line.startswith("| tiny-pythia | rise") for line in report.splitlines()) == 1
    assert "over seeds and kr" in (tmp_path / "report.tex").read_text()


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(opt in out for opt in ("--out", "--metric", "--pool", "--no-wandb", "--allow-mixed-tasks", "p@10%"))
    assert "<path>/report" in out


def test_module_entry_point_subprocess(tmp_path):
    (tmp_path / "nothing").mkdir()
    res = run_cli(str(tmp_path / "nothing"), "--no-wandb", module="rise_exp.report", cwd=tmp_path, timeout=120)
    assert res.returncode == 2 and res.stderr.startswith("error: no runs found"), res.stderr
    assert "Traceback" not in res.stderr
