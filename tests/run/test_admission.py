"""Admission before work: a model that does not fit is refused before any download or load, with one line
naming the settings that would make it fit; a config that fits is admitted."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from rise_exp.core.errors import ConfigError
from rise_exp.run.admission import admit
from rise_exp.run.config import RunConfig, compose

GB = 1e9


def run_config(*overrides: str) -> RunConfig:
    return RunConfig.from_cfg(compose(list(overrides)))


def test_the_default_run_is_admitted_on_this_machine():
    admit(run_config())


def test_olmo_32b_on_24_gb_is_refused_with_the_settings_that_fit():
    with pytest.raises(ConfigError) as err:
        admit(run_config("model=olmo-32b", "finetune=none"), capacity=("host RAM", 24 * GB))
    line = str(err.value)
    assert "\n" not in line and "model=olmo-32b" in line and "32.2B parameters" in line
    assert "model.device_map=auto" in line  # RISE is forward-only: split it


def test_a_split_32b_index_is_admitted_on_one_24_gb_gpu():
    admit(run_config("model=olmo-32b", "finetune=none", "model.device_map=auto"), capacity=("GPU", 24 * GB))


def test_a_full_finetune_is_admitted_with_the_fsdp_devices_it_names():
    with pytest.raises(ConfigError, match=r"trainer=fsdp trainer.devices=(\d+)") as err:
        admit(run_config("model=olmo3-7b", "finetune=full", "method=bm25"), capacity=("GPU", 80 * GB))
    shards = re.search(r"trainer.devices=(\d+)", str(err.value)).group(1)
    fsdp = ("trainer=fsdp", f"trainer.devices={shards}", "finetune.max_tokens_per_batch=2048")
    admit(run_config("model=olmo3-7b", "finetune=full", "method=bm25", *fsdp), capacity=("GPU", 80 * GB))


def test_rapidin_names_its_compression_batch():
    with pytest.raises(ConfigError, match=r"method=rapidin needs .*method.compress_batch=1"):
        admit(run_config("model=pythia-1b", "finetune=none", "method=rapidin"), capacity=("GPU", 80 * GB))


def test_the_default_finetune_of_32b_names_no_finetune_fsdp_and_lora():
    with pytest.raises(ConfigError, match=r"finetune \(full\).*finetune=none.*trainer=fsdp.*finetune=lora"):
        admit(run_config("model=olmo-32b"), capacity=("host RAM", 24 * GB))


def test_a_full_finetune_names_lora_and_fsdp():
    with pytest.raises(ConfigError, match=r"finetune \(full\).*trainer=fsdp.*finetune=lora"):
        admit(run_config("model=pythia-6.9b", "finetune=full"), capacity=("GPU", 40 * GB))


def test_the_cli_refuses_32b_before_any_download_or_load(tmp_path):
    """On this machine (host RAM well under 64 GB): exit 2, one ``error:`` line, and no weights touched
    (HF_HUB_OFFLINE would turn a download attempt into a different error)."""
    import psutil

    if psutil.virtual_memory().total > 60 * GB:
        pytest.skip("this machine has the RAM to hold OLMo 2 32B")
    cmd = [sys.executable, "-m", "rise_exp", "model=olmo-32b", "finetune=none"]
    cmd += [f"paths.cache_dir={tmp_path}/c", f"hydra.run.dir={tmp_path}/r"]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 2, out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "does not fit" in errors[0] and "model.device_map=auto" in errors[0]
    assert not (tmp_path / "c").exists()  # nothing was downloaded, built or cached


def test_a_finetune_counts_its_batch_logits_over_the_vocabulary():
    """Hand-computed for SmolLM2 (fp32, d 576, 30 blocks, vocab 49,152) at 8,192 tokens: activations
    17 x 4 x 576 x 8,192 x 30 plus logits (2 x 4 + 8) x 8,192 x 49,152."""
    from rise_exp.run.admission import finetune_need

    need = finetune_need(run_config("model=smollm2-135m", "finetune.max_tokens_per_batch=8192"))
    assert need.work == pytest.approx(17 * 4 * 576 * 8192 * 30 + 16 * 8192 * 49152)
    lora = run_config("model=smollm2-135m").finetune  # the LoRA preset's micro-batch fits a laptop
    assert lora.lora and lora.max_tokens_per_batch * lora.grad_accum == 4096
