"""The analysis notebook runs end to end on a report made from a fabricated multirun."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

from rise_exp.report import write_report
from tests.helpers import ROOT

NOTEBOOK = ROOT / "notebooks" / "analysis.ipynb"


def fabricate_multirun(root: Path) -> Path:
    """bm25 and rise (kr 32/64) x seeds 0/1, and one failed rise job."""
    jobs = [
        ("bm25", None, 0, 0.30),
        ("bm25", None, 1, 0.34),
        ("rise", 32, 0, 0.40),
        ("rise", 32, 1, 0.50),
        ("rise", 64, 0, 0.60),
        ("rise", 64, 1, 0.66),
        ("rise", 64, 2, None),
    ]
    (root).mkdir(parents=True)
    (root / "multirun.yaml").write_text("hydra: {}\n")
    for i, (method, kr, seed, auprc) in enumerate(jobs):
        d = root / str(i)
        (d / ".hydra").mkdir(parents=True)
        method_cfg = {"name": method, **({"kr": kr, "kh": 128, "kg": 64} if kr else {})}
        cfg = {
            "seed": seed,
            "stage": {"name": "attribute"},
            "task": {"name": "howdy"},
            "model": {"name": "tiny-pythia"},
            "method": method_cfg,
        }
        overrides = [f"method={method}", *([f"method.kr={kr}"] if kr else []), f"seed={seed}"]
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
        (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        if auprc is None:
            (d / "status.json").write_text(json.dumps({"status": "failed", "error": "out of memory"}))
            continue
        (d / "status.json").write_text(json.dumps({"status": "ok"}))
        nbytes = 800.0 if kr is None else 8.0 * kr
        (d / "metrics.json").write_text(json.dumps({"auprc@10": auprc, "auroc@10": 0.8, "index_bytes_per_row": nbytes}))
    return root


def test_notebook_file_is_clean_nbformat_v4():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "outputs must be cleared"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "REPORT_DIR" in params[0].source and "RISE_REPORT_DIR" in params[0].source


def test_notebook_executes_against_a_fabricated_report(tmp_path, monkeypatch):
    report = tmp_path / "report"
    write_report(fabricate_multirun(tmp_path / "multirun" / "x"), report, use_wandb=False)
    monkeypatch.setenv("RISE_REPORT_DIR", str(report))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend renders PNG outputs
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "7 runs from" in text and "varied settings: ['kr']" in text
    assert "0.4500 ± 0.0707" in text  # the kr=32 row of the summary table
    assert "out of memory" in text  # the failed job is listed
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == 2  # auPRC vs. bytes, and the kr ablation


def test_notebook_fails_on_a_missing_report(tmp_path, monkeypatch):
    monkeypatch.setenv("RISE_REPORT_DIR", str(tmp_path / "absent"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    from nbclient.exceptions import CellExecutionError

    with pytest.raises(CellExecutionError, match="report.json"):
        NotebookClient(nb, timeout=60, kernel_name="python3").execute()
