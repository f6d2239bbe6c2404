"""``trainer.activation_checkpointing`` recomputes activations in backward: same weights after training,
and ``trainer=fsdp`` on the CPU is refused in one line (Lightning's FSDP needs CUDA)."""

from __future__ import annotations

import pytest
import torch

from rise_exp.config.finetune import FinetuneConfig
from rise_exp.config.trainer import TrainerConfig
from rise_exp.core.errors import ConfigError
from rise_exp.data.encoding import encode_records
from rise_exp.data.records import Record
from rise_exp.run.config import RunConfig, compose
from rise_exp.training.recipe import fit_rows


def test_activation_checkpointing_trains_to_the_same_weights(tiny_neox, tiny_tokenizer, sentences, tmp_path):
    rows = encode_records([Record(id=f"t{i}", text=s) for i, s in enumerate(sentences[:12])], tiny_tokenizer)
    cfg = FinetuneConfig(epochs=1, max_steps=3, max_tokens_per_batch=96, seed=0)
    weights = []
    for ckpt in (False, True):
        model = tiny_neox()
        model.load_state_dict(tiny_neox().state_dict())  # the same start: tiny_neox builds from one seed
        trainer = TrainerConfig(accelerator="cpu", devices=1, activation_checkpointing=ckpt)
        fit_rows(model, rows, tiny_tokenizer.pad_token_id, cfg=cfg, trainer=trainer, root_dir=tmp_path / str(ckpt))
        assert model.is_gradient_checkpointing == ckpt
        weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    for k in weights[0]:
        torch.testing.assert_close(weights[0][k], weights[1][k], rtol=1e-5, atol=1e-6)


def test_fsdp_on_the_cpu_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^trainer.strategy fsdp needs GPUs: Lightning's FSDP .*CPU") as err:
        TrainerConfig(accelerator="cpu", strategy="fsdp")
    assert "\n" not in str(err.value)
    run = RunConfig.from_cfg(compose(["trainer=fsdp"]))  # the GPU preset itself is a valid config
    assert run.trainer.strategy == "fsdp" and run.trainer.activation_checkpointing
