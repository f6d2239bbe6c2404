"""Fixtures of the fault suite: a tiny GPT-NeoX, a pool with long rows, and one clean RISE index."""

from __future__ import annotations

from pathlib import Path

import pytest

from rise_exp.data.records import Record
from tests.reliability.fault_kit import rise


@pytest.fixture(scope="session")
def model(tiny_neox):
    return tiny_neox()


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
