"""The closed loop after a LoRA finetune: its fresh copies train every weight of the adapted model."""

from __future__ import annotations

import numpy as np
import torch

from rise_exp.closed_loop.training import continued_pretraining
from rise_exp.data.encoding import EncodedRow
from rise_exp.models.loading import load_pretrained
from rise_exp.run.config import RunConfig, compose
from rise_exp.stages.closed_loop import fresh_start_model
from tests.helpers import tiny_lm


def lora_finetune_dir(tmp_path, tokenizer) -> str:
    """A base model directory and a LoRA adapter on it (non-zero B, so it changes the function)."""
    from peft import LoraConfig, get_peft_model

    base = tmp_path / "base"
    tiny_lm(len(tokenizer), layers=1, heads=2, intermediate_size=32, max_position=64).save_pretrained(base)
    tokenizer.save_pretrained(base)
    peft = get_peft_model(
        tiny_lm(len(tokenizer), layers=1, heads=2, intermediate_size=32, max_position=64),
        LoraConfig(r=4, target_modules="all-linear"),
    )
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    peft.peft_config["default"].base_model_name_or_path = str(base)
    peft.save_pretrained(tmp_path / "adapter")
    return str(tmp_path / "adapter")


def test_a_lora_start_is_merged_and_every_weight_trains(tmp_path, tiny_tokenizer) -> None:
    adapter = lora_finetune_dir(tmp_path, tiny_tokenizer)
    frozen, _ = load_pretrained(adapter)  # as a stage serving the finetune loads it: adapters frozen
    assert not any(p.requires_grad for p in frozen.parameters())
    run = RunConfig.from_cfg(compose(["stage=closed_loop", "logger=none", "trainer.threads=1"]))
    model = fresh_start_model(run, adapter, None)
    assert all(p.requires_grad for p in model.parameters())
    assert not any("lora_" in n for n, _ in model.named_parameters())  # merged into the weights
    ids = torch.tensor([[5, 9, 17, 3, 8, 21]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, frozen(ids).logits, rtol=1e-5, atol=1e-5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    rng = np.random.default_rng(0)
    blocks = [
        EncodedRow(row=i, input_ids=rng.integers(3, 100, 16), target_mask=np.r_[False, np.ones(15, bool)])
        for i in range(8)
    ]
    continued_pretraining(
        model, blocks, 0, train_cfg=run.stage.train, trainer_cfg=run.trainer, root_dir=tmp_path / "train", seed=0
    )
    moved = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert len(moved) == len(before)  # every weight of the adapted model, not the adapter alone
