"""``make gpu-check`` as a dry run on the CPU (``GPU_CHECK_DEVICE=cpu``): every method (EK-FAC and TrackStar
too: their libraries are in the venv), every stage and the three mission shapes (tiny) run through the GPU
check's code, and every comparison is within its tolerance."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_dry_run_passes_on_the_cpu():
    env = {**os.environ, "GPU_CHECK_DEVICE": "cpu", "PYTHON": os.environ.get("PYTHON", "python")}
    import sys

    env["PYTHON"] = sys.executable
    out = subprocess.run(
        [str(ROOT / "experiments" / "gpu_check.sh")], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    methods = ("rise", "rapidin", "zo_inf", "stride", "bm25", "ekfac", "trackstar")
    stages = ("attribute", "query", "valuate", "select", "explain", "probe", "lds", "removal", "closed_loop")
    for name in (*methods, *stages, "pythia-1b-tiny", "pythia-6.9b-tiny", "olmo-32b-tiny"):
        assert f"| {name} |" in out.stdout
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ")]
    assert not [r for r in rows if "skipped" in r or "ERROR" in r], "a case was skipped or failed"
    assert "all comparisons within tolerance" in out.stdout
