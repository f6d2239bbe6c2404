"""Methods that need the gradients of the model's own weights (RapidIn, EK-FAC, TrackStar) never run on a split
model: admission refuses ``model.device_map`` for them in one line before anything loads (docs/gpus.md says why;
tests/models/test_offload.py shows what a split does to them, and that STRIDE keeps its scores)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rise_exp.core.errors import ConfigError
from rise_exp.run.admission import GRADIENT_METHODS, admit
from rise_exp.run.config import RunConfig, compose

GB = 1e9


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_a_gradient_method_on_a_split_model_is_refused_in_one_line(method):
    run = RunConfig.from_cfg(compose([f"method={method}", "model=pythia-1b", "finetune=none", "model.device_map=auto"]))
    with pytest.raises(ConfigError) as err:
        admit(run, capacity=("GPU", 80 * GB))  # it would fit: the split itself is what is refused
    line = str(err.value)
    assert "\n" not in line and f"method={method}" in line and "drop model.device_map" in line


def test_forward_only_methods_keep_the_split():
    for method in ("rise", "zo_inf", "stride"):
        run = RunConfig.from_cfg(
            compose([f"method={method}", "model=pythia-1b", "finetune=none", "model.device_map=auto"])
        )
        admit(run, capacity=("GPU", 80 * GB))


def test_a_counterfactual_stage_scoring_a_gradient_method_on_a_split_model_is_refused():
    over = ["stage=lds", "stage.methods=[rise,trackstar]", "model=pythia-1b", "model.device_map=auto"]
    with pytest.raises(ConfigError, match=r"trackstar \(in stage=lds's methods\) needs the gradients"):
        admit(RunConfig.from_cfg(compose(over)), capacity=("GPU", 800 * GB))
    admit(RunConfig.from_cfg(compose([*over[:1], "stage.methods=[rise,bm25]", *over[2:]])), capacity=("GPU", 800 * GB))


def test_the_cli_refuses_before_anything_is_built(tmp_path):
    cmd = [sys.executable, "-m", "rise_exp", "method=rapidin", "model.device_map=auto"]
    cmd += [f"paths.cache_dir={tmp_path}/c", f"hydra.run.dir={tmp_path}/r"]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 2, out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "method=rapidin" in errors[0] and "model.device_map" in errors[0]
    assert not (tmp_path / "c").exists()  # no tokenizer, model or finetune was built
