"""Shared fixtures: a tiny tokenizer and tiny models that need no network."""

from __future__ import annotations

import os
import random

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RISE_EXP_PROGRESS", "0")  # progress bars are for people, not test logs

WORDS = (
    "the a of to bank loan rate stock market interest patient doctor dose blood heart fever "
    "howdy question answer ship star galaxy robot space planet city river mountain"
).split()


def _sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(5, 15))) for _ in range(n)]


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    return _sentences(200)


@pytest.fixture(scope="session")
def tiny_tokenizer(sentences):
    from rise_exp.models.embedded import train_tokenizer

    return train_tokenizer(sentences, vocab_size=300)


@pytest.fixture(scope="session")
def tiny_neox(tiny_tokenizer):
    """A factory of fresh one-layer GPT-NeoX models (d = 32) on ``tiny_tokenizer``'s vocabulary, in eval mode."""
    from rise_exp.config.model import ModelConfig
    from rise_exp.models.embedded import build_tiny_model

    spec = ModelConfig(
        name="t",
        source="embedded",
        arch="gpt_neox",
        dtype="float32",
        layers=1,
        hidden_size=32,
        heads=2,
        vocab_size=300,
        max_position=128,
        intermediate_size=64,
    )
    return lambda: build_tiny_model(spec, vocab_size=len(tiny_tokenizer)).eval()


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models run fastest on one thread (thread start-up dominates; CI machines are shared)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
