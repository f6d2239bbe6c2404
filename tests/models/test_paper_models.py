"""The paper's models in the catalogue: OLMo 3 7B / 32B (architecture accepted by transformers, exact
parameter counts for the memory model) and Pythia training-step revisions."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from rise_exp.config.model import ModelConfig
from rise_exp.models.catalogue import parameter_count
from rise_exp.run.config import RunConfig, compose


def model_config(*overrides: str) -> ModelConfig:
    return ModelConfig.from_mapping(OmegaConf.to_container(compose(list(overrides)).model, resolve=True))


@pytest.mark.parametrize("name, billions", [("olmo3-7b", (7.0, 7.6)), ("olmo3-32b", (31.5, 33.0))])
def test_olmo3_configs_build_as_olmo3_and_their_count_is_exact(name, billions):
    from transformers import Olmo3Config, Olmo3ForCausalLM

    m = model_config(f"model={name}")
    assert m.arch == "olmo3" and m.hub_id.startswith("allenai/Olmo-3-") and m.dtype == "bfloat16"
    cfg = Olmo3Config(
        vocab_size=m.vocab_size,
        hidden_size=m.hidden_size,
        intermediate_size=m.intermediate_size,
        num_hidden_layers=m.layers,
        num_attention_heads=m.heads,
        num_key_value_heads=m.kv_heads,
        max_position_embeddings=m.max_position,
    )
    with torch.device("meta"):  # the shape only: no memory
        model = Olmo3ForCausalLM(cfg)
    assert sum(p.numel() for p in model.parameters()) == parameter_count(m)
    assert billions[0] < parameter_count(m) / 1e9 < billions[1]


def test_pythia_training_step_revisions_are_selectable():
    run = RunConfig.from_cfg(compose(["model=pythia-1b", "model.revision=step71000"]))
    assert run.model.revision == "step71000" and run.model.hub_id == "EleutherAI/pythia-1b"
