"""Fixtures of the fault suite: a tiny GPT-NeoX, a pool with long rows, and one clean RISE index."""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_kit import rise

from rise_exp.config.model import ModelConfig
from rise_exp.data.records import Record
from rise_exp.models import build_tiny_model


@pytest.fixture(scope="session")
def model(tiny_tokenizer):
    spec = ModelConfig(
        name="t",
        arch="gpt_neox",
        layers=1,
        hidden_size=32,
        heads=2,
        vocab_size=300,
        max_position=128,
        intermediate_size=64,
    )
    return build_tiny_model(spec, vocab_size=len(tiny_tokenizer)).eval()


@pytest.fixture(scope="session")
def pool(sentences):
    rows = [Record(id=f"t{i}", instruction=s[:15], output=s) for i, s in enumerate(sentences[:40])]
    rows += [Record(id=f"x{i}", text=" ".join(sentences[i : i + 3])) for i in range(8)]  # longer than a chunk
    return rows


@pytest.fixture(scope="session")
def clean_index(tmp_path_factory, model, tiny_tokenizer, pool) -> Path:
    """A clean single-process build (never modified by a test: copy it first)."""
    path = tmp_path_factory.mktemp("clean") / "index"
    rise(model, tiny_tokenizer, path).build(pool)
    return path
