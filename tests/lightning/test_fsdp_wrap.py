"""FSDP wraps each transformer block of the model it trains (not the whole model as one unit), found from
the model's own ``_no_split_modules``: GPT-NeoX, Llama and a LoRA-wrapped model. FSDP itself needs CUDA
(docs/gpus.md), so the strategy object is checked, not a sharded run."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.gpt_neox.modeling_gpt_neox import GPTNeoXLayer
from transformers.models.llama.modeling_llama import LlamaDecoderLayer

from rise_exp.lightning.fsdp import block_classes, fsdp_strategy


def test_blocks_of_gpt_neox_and_llama(tiny_lm):
    assert block_classes(tiny_lm(64)) == {GPTNeoXLayer}
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2)
    assert block_classes(LlamaForCausalLM(cfg)) == {LlamaDecoderLayer}


def test_the_strategy_wraps_each_block_and_keeps_lora_trainable(tiny_lm):
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(tiny_lm(64), peft.LoraConfig(r=2, target_modules=["query_key_value"]))
    strategy = fsdp_strategy(model)
    assert strategy.kwargs["use_orig_params"]
    wrapped = strategy.kwargs["auto_wrap_policy"]._run_policy(model, ignored_modules=set(), root_kwargs={})
    layers = [m for m in model.modules() if isinstance(m, GPTNeoXLayer)]
    assert len(layers) == 2 and set(wrapped) == set(layers)  # each block its own unit (the root is wrapped anyway)
    assert str(strategy.sharding_strategy).endswith("FULL_SHARD")
    assert str(fsdp_strategy(model, "fsdp:SHARD_GRAD_OP").sharding_strategy).endswith("SHARD_GRAD_OP")


def test_a_model_without_blocks_is_refused():
    with pytest.raises(ValueError, match="names no transformer blocks"):
        fsdp_strategy(torch.nn.Linear(2, 2))
