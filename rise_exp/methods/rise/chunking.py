"""Fixed-size token chunks of long rows, batches that keep a row's chunks together, row averaging.

Chunking follows the RISE code (``rise/text.py::explode``): a row of at most ``chunk_len`` tokens
is one chunk; a longer one gives windows of ``chunk_len`` tokens starting every
``chunk_len - chunk_overlap`` tokens until a window reaches the row's end (unlike the RISE code,
no window lying wholly inside the previous one is added). Each chunk is scored on its own: its first
token is context only, and with ``overlap_targets=True`` (RISE behaviour) every other target of
the window counts, so overlap tokens count in both chunks; with ``False`` they are context only in
the later chunk. Chunks left without targets (e.g. all prompt after masking) are dropped. A row's
signature is the mean of its chunk signatures, L2-normalised again (``normalize_signature``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from rise_exp.core.errors import DataError
from rise_exp.data.encoding import EncodedRow, collate
from rise_exp.methods.rise.config import RiseConfig
from rise_exp.methods.rise.head import l2_normalize


def chunk_spans(length: int, chunk_len: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, end)`` token windows covering ``length`` tokens."""
    if length <= chunk_len:
        return [(0, length)]
    step = chunk_len - overlap
    spans = []
    start = 0
    while True:
        end = min(start + chunk_len, length)
        spans.append((start, end))
        if end == length:
            return spans
        start += step


def chunk_row(row: EncodedRow, cfg: RiseConfig) -> list[EncodedRow]:
    """The chunks of one row (each keeps ``row.row``), without target-less chunks.

    Raises:
        DataError: if the row has no target token at all.
    """
    return [chunk for _, chunk in located_chunks(row, cfg)]


def located_chunks(row: EncodedRow, cfg: RiseConfig) -> list[tuple[int, EncodedRow]]:
    """:func:`chunk_row` with each chunk's first token position in the row (``(start, chunk)``).

    Raises:
        DataError: if the row has no target token at all.
    """
    out = []
    for start, end in chunk_spans(len(row), cfg.chunk_len, cfg.chunk_overlap):
        mask = row.target_mask[start:end].copy()
        mask[0] = False
        if start > 0 and not cfg.overlap_targets:
            mask[: cfg.chunk_overlap] = False
        if mask.any():
            out.append((start, EncodedRow(row=row.row, input_ids=row.input_ids[start:end], target_mask=mask)))
    if not out:
        raise DataError(f"row {row.row} has no target tokens (empty text, or only prompt after masking)")
    return out


def padded_length(longest: int, cfg: RiseConfig, pad_multiple: int = 1) -> int:
    """Positions a batch whose longest chunk has ``longest`` tokens is padded to: rounded up to a
    multiple of ``pad_multiple``, but never past ``cfg.chunk_len`` (no chunk is longer)."""
    return max(longest, min(-(-longest // pad_multiple) * pad_multiple, cfg.chunk_len))


def plan_batches(
    rows: Sequence[EncodedRow],
    cfg: RiseConfig,
    max_tokens: int,
    max_chunks: int | None = None,
    pad_multiple: int = 1,
) -> list[list[int]]:
    """Row ids (``EncodedRow.row``) per batch of at most ``max_tokens`` padded tokens and at most
    ``max_chunks`` chunks (None: no cap), a row's chunks in one batch.

    Rows are length-sorted (by their longest chunk, bucketed by :func:`padded_length`; ties keep
    pool order) to limit padding; a row whose chunks alone exceed a budget gets its own batch. The
    chunk cap bounds the ``[chunks, dim]`` signature buffers of a batch, which a token budget alone
    lets grow with the shortest rows of a pool (and so, by order statistics, with its size). Bucketing
    bounds the number of distinct batch shapes whatever the pool size: every new shape leaves freed
    buffers of other sizes in the heap, and a pool with many distinct lengths otherwise fragments the
    allocator's heap for as long as the build runs (peak memory growing with the pool). The result
    depends only on the rows and the settings, so it is the batch plan of an index build.
    """
    n = len(rows)
    ids, counts, longest = (np.empty(n, dtype=np.int64) for _ in range(3))
    for i, r in enumerate(rows):  # one streamed pass: only three numbers per row are kept
        chunks = chunk_row(r, cfg)
        ids[i], counts[i] = r.row, len(chunks)
        longest[i] = padded_length(max(len(c) for c in chunks), cfg, pad_multiple)
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_chunks, cur_longest = 0, 0
    for i in np.argsort(longest, kind="stable").tolist():
        new_longest = max(cur_longest, int(longest[i]))
        more = cur_chunks + int(counts[i])
        if cur and (new_longest * more > max_tokens or (max_chunks is not None and more > max_chunks)):
            batches.append(cur)
            cur, cur_chunks, new_longest = [], 0, int(longest[i])
        cur.append(int(ids[i]))
        cur_chunks += int(counts[i])
        cur_longest = new_longest
    if cur:
        batches.append(cur)
    return batches


def chunks_of_batch(rows_by_id: Mapping[int, EncodedRow], batch: Sequence[int], cfg: RiseConfig) -> list[EncodedRow]:
    """The chunks of one planned batch, row after row."""
    return [c for r in batch for c in chunk_row(rows_by_id[int(r)], cfg)]


def chunk_batches(
    rows: Sequence[EncodedRow],
    cfg: RiseConfig,
    max_tokens: int,
    max_chunks: int | None = None,
    pad_multiple: int = 1,
) -> list[list[EncodedRow]]:
    """The chunks of every batch of :func:`plan_batches`."""
    by_id = {r.row: r for r in rows}
    return [chunks_of_batch(by_id, b, cfg) for b in plan_batches(rows, cfg, max_tokens, max_chunks, pad_multiple)]


def collate_chunks(
    chunks: Sequence[EncodedRow], cfg: RiseConfig, pad_id: int, pad_multiple: int = 1
) -> dict[str, torch.Tensor]:
    """A batch of chunks collated to its :func:`padded_length`."""
    return collate(chunks, pad_id, padded_length(max(len(c) for c in chunks), cfg, pad_multiple))


def mean_by_row(
    signatures: torch.Tensor, chunk_rows: torch.Tensor, normalize: bool, eps: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Average chunk signatures ``[n, dim]`` per row id ``chunk_rows`` ``[n]`` (then normalise, floor ``eps``).

    Returns:
        ``(rows [m]`` sorted unique ids, ``signatures [m, dim])``.
    """
    rows, inverse = torch.unique(chunk_rows, sorted=True, return_inverse=True)
    acc = torch.zeros((rows.numel(), signatures.shape[1]), dtype=signatures.dtype, device=signatures.device)
    acc.index_add_(0, inverse, signatures)
    cnt = torch.zeros(rows.numel(), dtype=signatures.dtype, device=signatures.device)
    cnt.index_add_(0, inverse, torch.ones_like(inverse, dtype=signatures.dtype))
    out = acc / cnt.unsqueeze(1)
    return rows, (l2_normalize(out, eps) if normalize else out)


def row_ids(rows: Sequence[EncodedRow]) -> np.ndarray:
    """The ``row`` field of each encoded row."""
    return np.asarray([r.row for r in rows], dtype=np.int64)
