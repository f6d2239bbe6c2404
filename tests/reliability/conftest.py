"""Fixtures of the fault suite: a tiny GPT-NeoX, a pool with long rows, and one clean RISE index."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.fault_kit import rise


@pytest.fixture(scope="session")
def model(tiny_neox):
    return tiny_neox()


@pytest.fixture(scope="session")
def pool(make_pool):
    return make_pool(40, 8)  # the 8 long rows are longer than a chunk


@pytest.fixture(scope="session")
def clean_index(tmp_path_factory, model, tiny_tokenizer, pool) -> Path:
    """A clean single-process build (never modified by a test: copy it first)."""
    path = tmp_path_factory.mktemp("clean") / "index"
    rise(model, tiny_tokenizer, path).build(pool)
    return path
