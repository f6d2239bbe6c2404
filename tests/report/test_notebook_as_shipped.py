"""The notebook runs as shipped: from notebooks/, with no REPORT_DIR, against the report of a real sweep made
the way it documents (here a small BM25 sweep), and says how to make one when there is none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from rise_exp.core.errors import DataError
from rise_exp.report import find_report

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "analysis.ipynb"


def test_find_report_resolves_from_the_notebooks_folder(tmp_path):
    (tmp_path / "notebooks").mkdir()
    old, new = tmp_path / "multirun" / "a" / "report", tmp_path / "multirun" / "b" / "report"
    for d in (old, new):
        d.mkdir(parents=True)
        (d / "report.json").write_text("{}")
    os.utime(old / "report.json", (1, 1))
    assert find_report(None, start=tmp_path / "notebooks") == new
    assert find_report("multirun/a/report", start=tmp_path / "notebooks") == old
    with pytest.raises(DataError, match=r"no report.json in multirun/c.*python -m rise_exp.report"):
        find_report("multirun/c", start=tmp_path / "notebooks")
    with pytest.raises(DataError, match=r"no report found under .*python -m rise_exp -m"):
        find_report(None, start=tmp_path.parent)


def test_the_notebook_runs_on_a_real_sweep_from_notebooks(tmp_path, monkeypatch):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RISE_EXP_PROGRESS": "0", "WANDB_MODE": "disabled"}
    env["RISE_EXP_CACHE"] = str(tmp_path / "cache")
    sweep = ["-m", "method=bm25", "task.n_train=60,120", "task.n_queries=4", "logger=csv", "hydra.sweep.dir=multirun/s"]
    for cmd in ([sys.executable, "-m", "rise_exp", *sweep], [sys.executable, "-m", "rise_exp.report", "multirun/s"]):
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        if "-m" in cmd[3:4]:  # the sweep says how to report it
            assert "sweep job 1 done; when all are: python -m rise_exp.report multirun/s" in done.stdout
    (tmp_path / "notebooks").mkdir()
    monkeypatch.delenv("RISE_REPORT_DIR", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    where = {"metadata": {"path": str(tmp_path / "notebooks")}}
    NotebookClient(nb, timeout=120, kernel_name="python3", resources=where).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "2 runs from" in text and "varied settings: ['task.n_train']" in text
