"""Turn records into token ids with a target mask, and batch them by a token budget."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rise_exp.core.errors import DataError
from rise_exp.data.records import Record


@dataclass(frozen=True)
class EncodedRow:
    """Token ids of one record and which of them are prediction targets.

    ``target_mask[t]`` is True when token ``t`` counts in the loss, i.e. it is predicted from the
    hidden state at position ``t - 1``. ``target_mask[0]`` is always False.
    """

    row: int
    input_ids: np.ndarray  # int64 [L]
    target_mask: np.ndarray  # bool [L]

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def encode_record(
    record: Record,
    tokenizer,
    row: int,
    *,
    mask_prompt: bool = True,
    max_length: int | None = None,
    add_eos: bool = True,
) -> EncodedRow:
    """Tokenize a record; prompt tokens are targets only when ``mask_prompt`` is False.

    Raises:
        DataError: if the record has no target token left (empty text or empty answer).
    """
    prompt_ids: list[int] = tokenizer.encode(record.prompt, add_special_tokens=False) if record.prompt else []
    resp_ids: list[int] = tokenizer.encode(record.response, add_special_tokens=False) if record.response else []
    if add_eos and tokenizer.eos_token_id is not None and resp_ids:
        resp_ids = resp_ids + [tokenizer.eos_token_id]
    bos = getattr(tokenizer, "bos_token_id", None)
    head = [bos] if bos is not None else ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])
    ids = head + prompt_ids + resp_ids
    mask = [False] * len(head) + [not mask_prompt] * len(prompt_ids) + [True] * len(resp_ids)
    if max_length is not None and len(ids) > max_length:
        ids, mask = ids[:max_length], mask[:max_length]
    if len(ids) > 0:
        mask[0] = False
    if not any(mask):
        raise DataError(f"record {record.id!r} has no target tokens (empty text or empty answer after masking)")
    return EncodedRow(row=row, input_ids=np.asarray(ids, dtype=np.int64), target_mask=np.asarray(mask, dtype=bool))


def encode_records(records: Sequence[Record], tokenizer, **kwargs) -> list[EncodedRow]:
    """Encode many records, keeping their positions as ``row``."""
    return [encode_record(r, tokenizer, i, **kwargs) for i, r in enumerate(records)]


class EncodedPool(Sequence[EncodedRow]):
    """The encoded rows of a pool, tokenised on access (``pool[i].row == i``) and never all held at once.

    What an index build of a large pool reads: every pass (hash, batch plan) and every DataLoader batch
    encodes the rows it needs from ``records`` (e.g. an :class:`~rise_exp.data.arrow_pool.ArrowPool`).
    """

    def __init__(self, records: Sequence[Record], tokenizer: Any, **kwargs: Any) -> None:
        self.records, self.tokenizer, self.kwargs = records, tokenizer, kwargs

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int | slice) -> EncodedRow | list[EncodedRow]:  # type: ignore[override]
        if isinstance(i, slice):  # encoded now, each keeping its pool position as ``row``
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        return encode_record(self.records[i], self.tokenizer, i if i >= 0 else i + len(self), **self.kwargs)

    def __iter__(self) -> Iterator[EncodedRow]:
        for i, r in enumerate(self.records):
            yield encode_record(r, self.tokenizer, i, **self.kwargs)


def token_budget_batches(rows: Sequence[EncodedRow], max_tokens: int, max_batch: int = 256) -> list[list[int]]:
    """Indices of ``rows`` grouped into length-sorted batches of at most ``max_tokens`` padded tokens."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = len(rows[i])  # sorted ascending: the newcomer is the longest
        if cur and (longest * (len(cur) + 1) > max_tokens or len(cur) >= max_batch):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


def collate(rows: Sequence[EncodedRow], pad_id: int, length: int | None = None) -> dict[str, torch.Tensor]:
    """Right-pad rows into ``input_ids``, ``attention_mask``, ``target_mask`` and ``row`` tensors.

    ``length`` pads to at least that many positions (e.g. a bucketed length: fewer distinct shapes).
    """
    n, length = len(rows), max([len(r) for r in rows] + [length or 0])
    ids = torch.full((n, length), pad_id, dtype=torch.long)
    att = torch.zeros((n, length), dtype=torch.long)
    tgt = torch.zeros((n, length), dtype=torch.bool)
    for i, r in enumerate(rows):
        m = len(r)
        ids[i, :m] = torch.from_numpy(r.input_ids)
        att[i, :m] = 1
        tgt[i, :m] = torch.from_numpy(r.target_mask)
    return {"input_ids": ids, "attention_mask": att, "target_mask": tgt, "row": torch.tensor([r.row for r in rows])}


def rows_hash(rows: Sequence[EncodedRow], *, masks: bool = True) -> str:
    """Hash of the exact token ids (and, with ``masks``, target masks) a computation depends on (an index,
    cached losses; per-token losses, which every token rule shares, hash the ids alone)."""
    h = hashlib.sha256()
    for r in rows:
        h.update(r.input_ids.tobytes())
        if masks:
            h.update(np.packbits(r.target_mask).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]
