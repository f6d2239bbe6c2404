"""Pack selected texts into fixed-length token blocks so every selector trains on the same token count.

Each text becomes its tokens followed by EOS. The texts of a selection are shuffled (seeded) and
concatenated into one stream; a selection shorter than the budget is cycled (re-shuffled every pass);
the stream is cut at exactly ``n_blocks * block_len`` tokens. Every token but the first of a block is a
training target (plain text: no prompt masking).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rise_exp.core.errors import ConfigError, DataError
from rise_exp.data.encoding import EncodedRow
from rise_exp.data.records import Record


def text_tokens(records: Sequence[Record], tokenizer: Any) -> list[np.ndarray]:
    """Token ids of every record's full text followed by EOS (the packing unit)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ConfigError("packing needs a tokenizer with an EOS token to separate texts")
    out = []
    for r in records:
        ids = tokenizer.encode(r.full_text, add_special_tokens=False)
        if not ids:
            raise DataError(f"record {r.id!r} has an empty text; it cannot be packed for training")
        out.append(np.asarray(list(ids) + [eos], dtype=np.int64))
    return out


def num_blocks(pool_tokens: int, budget: float, passes: float, block_len: int, train_tokens: int | None = None) -> int:
    """Blocks of the training token budget: ``passes * budget * pool_tokens`` tokens (or ``train_tokens``).

    Raises:
        ConfigError: for a non-positive pass count, block length or token budget.
    """
    if block_len < 2:
        raise ConfigError(f"stage.pack.block_len must be >= 2 tokens, got {block_len}")
    if train_tokens is not None:
        if int(train_tokens) < block_len:
            raise ConfigError(
                f"stage.pack.train_tokens ({train_tokens}) must be at least one block "
                f"(stage.pack.block_len = {block_len})"
            )
        total = float(train_tokens)
    else:
        if not passes > 0:
            raise ConfigError(f"stage.pack.passes must be > 0, got {passes}")
        total = passes * budget * pool_tokens
    return max(1, int(round(total / block_len)))


def pack_stream(token_lists: Sequence[np.ndarray], rows: Sequence[int], n_tokens: int, seed: int) -> np.ndarray:
    """``n_tokens`` tokens from the texts ``rows`` of ``token_lists``: shuffled, concatenated, cycled.

    Raises:
        DataError: if ``rows`` is empty.
    """
    if not rows:
        raise DataError("cannot pack an empty selection")
    rng = np.random.default_rng(int(seed))
    parts: list[np.ndarray] = []
    have = 0
    rows = np.asarray(rows, dtype=np.int64)
    while have < n_tokens:
        for i in rng.permutation(rows):
            parts.append(token_lists[int(i)])
            have += len(token_lists[int(i)])
            if have >= n_tokens:
                break
    return np.concatenate(parts)[:n_tokens]


def pack_blocks(
    token_lists: Sequence[np.ndarray], rows: Sequence[int], n_blocks: int, block_len: int, seed: int
) -> list[EncodedRow]:
    """``n_blocks`` training blocks of exactly ``block_len`` tokens from the selected texts."""
    stream = pack_stream(token_lists, rows, n_blocks * block_len, seed)
    mask = np.ones(block_len, dtype=bool)
    mask[0] = False
    return [
        EncodedRow(row=b, input_ids=stream[b * block_len : (b + 1) * block_len].copy(), target_mask=mask.copy())
        for b in range(n_blocks)
    ]
