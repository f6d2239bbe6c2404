"""A sanity line for your own data: how far the method's ranking agrees with BM25's on the same queries.

On a pool nobody has labelled, a method that ranks by noise looks like one that ranks by meaning;
BM25 (lexical, no model) is a cheap reference. The attribute stage of ``task=custom`` prints the mean
overlap of the two top-K lists and, with labels, both methods' P@K (``stage.bm25_check``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from rise_exp.data.records import Record
from rise_exp.methods.base import MethodContext
from rise_exp.methods.registry import build_method, config_class

log = logging.getLogger(__name__)


def top_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over queries of ``|a_q ∩ b_q| / K`` for two ``[queries, K]`` arrays of row ids."""
    k = a.shape[1]
    return float(np.mean([len(set(x.tolist()) & set(y.tolist())) / k for x, y in zip(a, b)])) if len(a) else 0.0


def precision(top: np.ndarray, labels: np.ndarray) -> float:
    """Mean P@K of ``[queries, K]`` row ids under 0/1 ``labels`` (``[rows]`` or ``[queries, rows]``)."""
    hits = labels[top] if labels.ndim == 1 else np.take_along_axis(labels, top, axis=1)
    return float(np.mean(hits))


def bm25_top(ctx: MethodContext, train: Sequence[Record], queries: Sequence[Record], k: int) -> np.ndarray:
    """BM25's top-``k`` rows per query (its index built, or reused, in the index cache)."""
    method = build_method(config_class("bm25")(), dataclasses.replace(ctx, model=None, tokenizer=None))
    method.build(train)
    scores = np.asarray(method.score(queries), dtype=np.float32)
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def bm25_agreement(
    name: str,
    top: np.ndarray,
    ctx: MethodContext,
    train: Sequence[Record],
    queries: Sequence[Record],
    labels: np.ndarray | None,
) -> dict[str, Any]:
    """``bm25_overlap@K`` (and with labels ``bm25_p@K`` beside ``<name>``'s P@K), logged as one line."""
    k = min(top.shape[1], len(train))
    ref = bm25_top(ctx, train, queries, k)
    out: dict[str, Any] = {f"bm25_overlap@{k}": top_overlap(top[:, :k], ref)}
    line = f"sanity: {name}'s top-{k} shares {out[f'bm25_overlap@{k}']:.0%} of its rows with BM25's"
    if labels is not None:
        mine, theirs = precision(top[:, :k], labels), precision(ref, labels)
        out[f"bm25_p@{k}"] = theirs
        line += f"; P@{k}: {name} {mine:.2f}, BM25 {theirs:.2f}"
    log.info("%s (mean over %d queries)", line, len(queries))
    return out
