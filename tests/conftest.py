"""Shared fixtures: the tiny tokenizers, records and models every room's tests use; they need no network.

The plain functions behind them (the word list, the model builder, the tiny-run overrides, the command
line in a subprocess) are in ``tests/helpers.py``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import numpy as np
import pytest

from tests import helpers

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RISE_EXP_PROGRESS", "0")  # progress bars are for people, not test logs


def _sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(helpers.WORDS, k=rng.randint(5, 15))) for _ in range(n)]


def _records(n: int, seed: int) -> list:
    from rise_exp.data.records import Record

    rng = np.random.default_rng(seed)
    return [Record(id=f"r{i}", text=" ".join(rng.choice(helpers.WORDS, int(rng.integers(3, 9))))) for i in range(n)]


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    """200 seeded sentences of 5-15 random ``WORDS``."""
    return _sentences(200)


@pytest.fixture(scope="session")
def tiny_tokenizer(sentences):
    """A byte-level BPE of at most 300 tokens trained on ``sentences`` (the embedded models' tokenizer)."""
    from rise_exp.models.embedded import train_tokenizer

    return train_tokenizer(sentences, vocab_size=300)


@pytest.fixture(scope="module")
def word_tokenizer():
    """A word-level tokenizer over ``WORDS`` (one token a word; ``<pad>``, ``<eos>``, ``<unk>`` first)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<unk>", *helpers.WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


@pytest.fixture(scope="session")
def make_records() -> Callable[[int, int], list]:
    """``make_records(n, seed)``: n records of 3-8 random ``WORDS``, ids r0, r1, ..."""
    return _records


@pytest.fixture(scope="session")
def make_pool(sentences) -> Callable[[int, int], list]:
    """``make_pool(short, long)``: ``short`` instruction rows t0, t1, ... (a sentence's first 15 characters, then
    the sentence) and ``long`` text rows x0, x1, ... of three sentences each (longer than a short chunk)."""
    from rise_exp.data.records import Record

    def make(short: int, long: int) -> list:
        rows = [Record(id=f"t{i}", instruction=s[:15], output=s) for i, s in enumerate(sentences[:short])]
        return rows + [Record(id=f"x{i}", text=" ".join(sentences[i : i + 3])) for i in range(long)]

    return make


@pytest.fixture(scope="session")
def tiny_lm() -> Callable[..., object]:
    """The builder of seeded tiny causal LMs, :func:`tests.helpers.tiny_lm` (``tiny_lm(vocab, layers=..., ...)``)."""
    return helpers.tiny_lm


@pytest.fixture(scope="session")
def tiny_neox(tiny_tokenizer, tiny_lm):
    """A factory of fresh one-layer GPT-NeoX models (d = 32) on ``tiny_tokenizer``'s vocabulary, in eval mode."""
    facts = {k: v for k, v in helpers.TINY_MODEL_FACTS.items() if k != "vocab_size"}
    return lambda: tiny_lm(len(tiny_tokenizer), **facts)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models run fastest on one thread (thread start-up dominates; CI machines are shared)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
