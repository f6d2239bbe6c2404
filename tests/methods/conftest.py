"""Shared fixtures for the method tests: a word-level tokenizer, records over its vocabulary, tiny GPT-NeoX
models."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

from rise_exp.data.records import Record

WORDS = "the a bank loan rate stock market patient doctor dose blood heart star ship robot river".split()


def _tiny_gpt_neox(
    vocab: int = 500,
    seed: int = 0,
    hidden_size: int = 32,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    intermediate_size: int = 128,
    max_position_embeddings: int = 128,
) -> GPTNeoXForCausalLM:
    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(
        vocab_size=vocab,
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
    )
    return GPTNeoXForCausalLM(cfg).eval()


def _records(n: int, seed: int) -> list[Record]:
    rng = np.random.default_rng(seed)
    return [Record(id=f"r{i}", text=" ".join(rng.choice(WORDS, int(rng.integers(3, 9))))) for i in range(n)]


@pytest.fixture(scope="session")
def tiny_gpt_neox() -> Callable[..., GPTNeoXForCausalLM]:
    """Builder `(vocab=500, seed=0, hidden_size=32, ...)` of a seeded, randomly initialised GPT-NeoX in eval mode."""
    return _tiny_gpt_neox


@pytest.fixture(scope="session")
def make_records() -> Callable[[int, int], list[Record]]:
    """`make_records(n, seed)`: n records of 3-8 random `WORDS`, ids r0, r1, ..."""
    return _records


@pytest.fixture(scope="module")
def word_tokenizer() -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<unk>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
