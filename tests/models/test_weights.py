"""models/weights.py: embedded tiny models are built, cached and reloaded; bad model settings are named; an unknown
model is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rise_exp.core.errors import ConfigError
from rise_exp.models.embedded import prepare_embedded
from rise_exp.models.loading import load_pretrained
from rise_exp.models.weights import load_base_model
from tests.helpers import TINY_MODEL_FACTS, model_config


@pytest.mark.parametrize("name", ["tiny-pythia", "tiny-olmo"])
def test_embedded_model_builds_caches_and_reloads(tmp_path, sentences, name):
    spec = model_config(name, **TINY_MODEL_FACTS)
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
