"""Model loading: embedded tiny models, tokenizer training, caching, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from rise_exp.config.model import ModelConfig
from rise_exp.core.errors import ConfigError
from rise_exp.models.catalogue import parameter_count
from rise_exp.models.embedded import prepare_embedded
from rise_exp.models.loading import load_pretrained
from rise_exp.models.weights import load_base_model
from rise_exp.run.config import compose


def model_config(name: str, **over) -> ModelConfig:
    """The typed settings of conf/model/<name>.yaml (composed through Hydra), with overrides."""
    node = compose([f"model={name}"]).model
    return ModelConfig.from_mapping({**OmegaConf.to_container(node, resolve=True), **over})


CONF = Path(__file__).resolve().parent.parent / "conf" / "model"


@pytest.mark.parametrize("name", ["tiny-pythia", "tiny-olmo"])
def test_embedded_model_builds_caches_and_reloads(tmp_path, sentences, name):
    spec = model_config(name, layers=1, hidden_size=32, heads=2, intermediate_size=64, vocab_size=300)
    model, tok, path = load_base_model(spec, sentences, tmp_path)
    assert len(tok) <= 300 and tok.pad_token_id is not None and tok.eos_token_id is not None
    ids = torch.tensor([tok.encode("the bank rate")])
    assert model(ids).logits.shape == (1, ids.shape[1], model.config.vocab_size)
    # cached: the same directory, untouched, on a second call
    stamp = (Path(path) / "SEALED.json").stat().st_mtime_ns
    assert prepare_embedded(spec, sentences, tmp_path) == Path(path)
    assert (Path(path) / "SEALED.json").stat().st_mtime_ns == stamp
    # another text -> another cache entry
    assert prepare_embedded(spec, sentences[:50], tmp_path) != Path(path)


def test_every_model_config_states_its_architecture():
    for f in sorted(CONF.glob("*.yaml")):
        spec = model_config(f.stem)
        assert spec.layers > 0 and spec.hidden_size > 0 and spec.vocab_size > 0
        if spec.source == "hub":
            assert spec.hub_id.startswith(("EleutherAI/pythia-", "allenai/OLMo-2-")) and spec.revision
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


@pytest.mark.parametrize(
    "bad, word",
    [
        ({"arch": "llama"}, "model.arch"),
        ({"source": "ftp"}, "model.source"),
        ({"hidden_size": 0}, "model.hidden_size"),
        ({"colour": 1}, "colour"),
    ],
)
def test_bad_model_settings_are_named(bad, word):
    with pytest.raises(ConfigError, match=word):
        model_config("tiny-pythia", **bad)


def test_unknown_hub_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="cannot load model"):
        load_pretrained(str(tmp_path / "no-such-model"))
