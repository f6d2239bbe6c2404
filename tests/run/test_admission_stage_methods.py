"""Admission estimates every method a stage builds (``stage.methods`` of lds and removal, the closed loop's method
selectors), each with the settings the stage merges for it, and its one-line remedy names the setting the user
types for that method (``++stage.method_overrides.<m>.*``, ``stage.methods=[...]``), not ``method.*``."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from rise_exp.config.model import ModelConfig
from rise_exp.core.errors import ConfigError
from rise_exp.run.admission import admit, needs
from rise_exp.run.config import RunConfig, compose
from rise_exp.run.stage_methods import stage_methods

GB = 1e9
LDS_7B = ["model=olmo-7b", "finetune=lora", "stage=lds"]


def run_config(*overrides: str) -> RunConfig:
    return RunConfig.from_cfg(compose(list(overrides)))


def test_lds_naming_ekfac_on_olmo_7b_is_refused_with_the_stage_settings_for_ekfac():
    run = run_config(*LDS_7B, "stage.methods=[rise,ekfac]")  # the run's own method is rise
    with pytest.raises(ConfigError) as err:
        admit(run, capacity=("GPU", 80 * GB))
    line = str(err.value)
    assert "\n" not in line and "does not fit: ekfac (in stage=lds's methods) needs ~" in line
    assert "++stage.method_overrides.ekfac.query_batch=1" in line and "stage.methods=[rise] (without ekfac)" in line
    assert " method.query_batch" not in line  # not the run's own method node: rise does not read it


def test_lds_with_only_rise_is_admitted():
    admit(run_config(*LDS_7B, "stage.methods=[rise]"), capacity=("GPU", 80 * GB))
    # the run's own method is not built by lds: an EK-FAC method node that does not fit is not estimated
    admit(run_config(*LDS_7B, "method=ekfac", "stage.methods=[rise,bm25]"), capacity=("GPU", 80 * GB))


def test_a_stage_that_builds_no_method_estimates_none():
    """``stage=finetune`` only trains: the run's method node (here EK-FAC, which does not fit) is not estimated."""
    run = run_config("model=olmo-7b", "finetune=lora", "method=ekfac", "stage=finetune")
    assert stage_methods(run) == [] and [n.what for n in needs(run)] == ["finetune (LoRA)"]
    admit(run, capacity=("GPU", 80 * GB))
    with pytest.raises(ConfigError, match="method=ekfac needs"):  # the attribute stage builds it
        admit(run_config("model=olmo-7b", "finetune=lora", "method=ekfac"), capacity=("GPU", 80 * GB))


def test_the_stage_overrides_are_what_is_estimated():
    """EK-FAC's query gradients shrink with ``query_low_rank`` set in the stage's per-method settings."""
    full = run_config(*LDS_7B, "stage.methods=[ekfac]")
    low = run_config(*LDS_7B, "stage.methods=[ekfac]", "+stage.method_overrides.ekfac.query_low_rank=8")
    assert needs(low)[-1].total < needs(full)[-1].total
    assert needs(low)[-1].settings.query_low_rank == 8


def test_the_closed_loop_estimates_its_method_selectors():
    run = run_config("model=pythia-1b", "finetune=none", "stage=closed_loop", "stage.selectors=[rise,random,ekfac,all]")
    assert [(m.name, m.prefix, m.listed_in) for m in stage_methods(run)] == [
        ("rise", "stage.methods.rise", "stage.selectors"),
        ("ekfac", "stage.methods.ekfac", "stage.selectors"),
    ]
    with pytest.raises(ConfigError) as err:
        admit(run, capacity=("GPU", 80 * GB))
    line = str(err.value)
    assert "ekfac (in stage=closed_loop's selectors)" in line and " method.query_batch" not in line
    assert "++stage.methods.ekfac.query_batch=1" in line and "stage.selectors=[rise,random,all] (without ekfac)" in line


def test_the_need_reported_is_the_largest_method_over():
    """Hand-computed on GPT-NeoX, L = 1, d = 4, f = 8, V = 10, float32 (P = 260 parameters, w = 4 P = 1040; an
    inference pass holds 4 (4 d + 2 f) = 128 bytes per token):
    ZO-Inf, T = 100: w + 128 T + (4 + 8) T V = 1040 + 12800 + 12000 = 25840;
    RISE, T = 64, T_h = 8, kg = 16: w + 128 T + (4 + 4) T_h V + 4 V kg + 4 T d = 1040 + 8192 + 640 + 640 + 1024
    = 11536; the LoRA finetune of 8 tokens: weights 4 P = 1040 and 17 x 4 x 4 x 8 + (2 x 4 + 8) x 8 x 10 = 3456.
    """
    hand = ModelConfig(
        name="hand", source="embedded", arch="gpt_neox", layers=1, hidden_size=4, heads=2, intermediate_size=8,
        vocab_size=10, max_position=8,
    )  # fmt: skip
    run = run_config(
        "stage=lds",
        "stage.methods=[rise,zo_inf,bm25]",
        "finetune=lora",
        "finetune.max_tokens_per_batch=8",
        "+stage.method_overrides.rise={kg: 16, max_tokens_per_batch: 8, index: {batch_tokens: 64}}",
        "+stage.method_overrides.zo_inf.max_tokens=100",
    )
    run = dataclasses.replace(run, model=hand)
    assert [(n.what, n.total) for n in needs(run)] == [
        ("finetune (LoRA)", 1040 + 3456),
        ("rise (in stage=lds's methods)", 11536),
        ("zo_inf (in stage=lds's methods)", 25840),
    ]
    with pytest.raises(ConfigError) as err:  # 90% of 10,000 bytes: the finetune fits, both methods do not
        admit(run, capacity=("GPU", 10_000))
    line = str(err.value)
    assert "does not fit: zo_inf (in stage=lds's methods) needs ~0.0 GB" in line
    assert "(also over: rise (in stage=lds's methods) ~0.0 GB)" in line
    assert "++stage.method_overrides.zo_inf.max_tokens=25" in line and "model.device_map=auto" in line
    admit(run, capacity=("GPU", 25840 / 0.9 + 1))


def test_the_cli_refuses_lds_with_ekfac_on_olmo_7b_before_anything_loads(tmp_path):
    cmd = [sys.executable, "-m", "rise_exp", *LDS_7B, "stage.methods=[rise,ekfac]", "trainer.accelerator=cpu"]
    cmd += [f"paths.cache_dir={tmp_path}/c", f"hydra.run.dir={tmp_path}/r"]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 2, out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ekfac (in stage=lds's methods)" in errors[0], errors
    assert not (tmp_path / "c").exists()  # no tokenizer, model or finetune was built


def test_the_closed_loops_continued_pretraining_is_estimated():
    """Hand-computed on the GPT-NeoX of L = 1, d = 4, V = 10, float32 (P = 260): 10 tokens a batch take two blocks
    of 4, 8 tokens: every weight with AdamW, 16 P = 4160, and 17 x 4 x 4 x 8 + (2 x 4 + 8) x 8 x 10 = 3456."""
    hand = ModelConfig(
        name="hand", source="embedded", arch="gpt_neox", layers=1, hidden_size=4, heads=2, intermediate_size=8,
        vocab_size=10, max_position=8,
    )  # fmt: skip
    loop = ["stage=closed_loop", "stage.selectors=[random,all]", "finetune=none"]
    run = run_config(*loop, "stage.pack.block_len=4", "stage.train.max_tokens_per_batch=10")
    assert [(n.what, n.total, n.batch) for n in needs(dataclasses.replace(run, model=hand))] == [
        ("continued pretraining (full)", 4160 + 3456, "stage.train.max_tokens_per_batch=4")  # a block at least
    ]
    with pytest.raises(ConfigError) as err:  # OLMo 7B's copies do not fit one 80 GB GPU whole: shard them
        admit(run_config("model=olmo-7b", *loop), capacity=("GPU", 80 * GB))
    line = str(err.value)
    assert "does not fit: continued pretraining (full) needs ~" in line and "finetune=none" not in line
    assert "trainer=fsdp trainer.devices=" in line and "trainer.activation_checkpointing=true" in line
    admit(run_config("model=olmo-7b", *loop, "trainer=fsdp", "trainer.devices=8"), capacity=("GPU", 80 * GB))
