"""models/catalogue.py: every model option states its architecture; parameter counts from the architecture facts
order the Pythia suite, land near the published sizes and equal the built models'."""

from __future__ import annotations

import pytest

from rise_exp.config.model import ModelConfig
from rise_exp.models.catalogue import parameter_count
from rise_exp.models.embedded import build_tiny_model
from tests.helpers import ROOT, model_config

CONF = ROOT / "conf" / "model"


def test_every_model_config_states_its_architecture():
    for f in sorted(CONF.glob("*.yaml")):
        spec = model_config(f.stem)
        assert spec.layers > 0 and spec.hidden_size > 0 and spec.vocab_size > 0
        if spec.source == "hub":
            assert (
                spec.hub_id.startswith(("EleutherAI/pythia-", "allenai/OLMo-2-", "allenai/Olmo-3-")) and spec.revision
            )
    sizes = {f.stem: parameter_count(model_config(f.stem)) for f in CONF.glob("pythia-*.yaml")}
    # the count orders the suite correctly and lands near the published sizes
    assert sorted(sizes, key=sizes.get) == [
        "pythia-14m",
        "pythia-31m",
        "pythia-70m",
        "pythia-160m",
        "pythia-410m",
        "pythia-1b",
        "pythia-1.4b",
        "pythia-2.8b",
        "pythia-6.9b",
    ]
    assert 0.8e9 < sizes["pythia-1b"] < 1.2e9 and 6.0e9 < sizes["pythia-6.9b"] < 7.5e9


@pytest.mark.parametrize("arch,kv,ffn", [("gpt_neox", None, None), ("olmo2", 2, 96), ("olmo2", None, None)])
def test_parameter_count_from_architecture_facts_equals_the_built_model(arch, kv, ffn) -> None:
    m = ModelConfig(
        arch=arch,
        layers=2,
        hidden_size=32,
        heads=4,
        kv_heads=kv,
        intermediate_size=ffn,
        vocab_size=300,
        max_position=64,
    )
    assert parameter_count(m) == sum(p.numel() for p in build_tiny_model(m, 300).parameters())
