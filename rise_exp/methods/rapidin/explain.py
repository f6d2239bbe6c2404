"""RapidIn scores on a LoRA adapter split into per-token gradient shares.

A row's loss is ``c sum_t l_t`` over its target tokens (``c = 1 / n`` for the mean), so its gradient is the
sum of per-token gradients, and layer-normalising divides each parameter tensor's part by the norm of the
*row's* gradient, a constant of the row. RapidGrad is linear, so the stored vector is
``v = sum_t C([c grad_p l_t / |grad_p L|]_p)`` = ``sum_t v_t`` and the score ``<v(q), v(x)>`` splits exactly:
row token ``t`` gets ``<v(q), v_t(x)>``, query token ``s`` gets ``<v_s(q), v(x)>``. Each token costs one
backward pass (the graph of the row's one forward pass is kept) and a compressed vector of ``E * K`` floats;
on an adapter the per-token gradient is small, on every parameter of the model it is not (the method says so
instead of computing it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rise_exp.data.encoding import EncodedRow, collate
from rise_exp.methods.explanation import PairExplanation, TokenShares, token_pieces
from rise_exp.models.placement import model_device


@dataclass(frozen=True)
class TokenGradients:
    """One text's compressed gradient as a sum of per-token parts (float64).

    Attributes:
        ids: Token ids ``[L]``.
        positions: The target positions ``[T]``.
        parts: ``[T, E * K]``: each target token's compressed, layer-normalised gradient.
        vector: ``[E * K]``: their sum (the text's RapidIn vector).
    """

    ids: np.ndarray
    positions: np.ndarray
    parts: torch.Tensor
    vector: torch.Tensor


def token_gradients(
    model: torch.nn.Module,
    params: Sequence[torch.nn.Parameter],
    compress: Callable[[torch.Tensor], torch.Tensor],
    row: EncodedRow,
    pad: int,
    reduction: str,
    per_token: bool = True,
    eps: float = 1e-12,
) -> TokenGradients:
    """Per-token parts of ``row``'s RapidIn vector (``compress``: ``[B, P]`` -> ``[B, E * K]``); with
    ``per_token=False`` only the vector (one backward pass; ``parts`` is empty)."""
    batch = collate([row], pad)
    dev = model_device(model)
    ids = batch["input_ids"].to(dev)
    targets = torch.nonzero(batch["target_mask"][0, 1:]).flatten() + 1
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    try:
        logits = model(input_ids=ids, attention_mask=batch["attention_mask"].to(dev)).logits
        nll = F.cross_entropy(logits[0, targets - 1].float(), ids[0, targets], reduction="none")
        scale = 1.0 / max(1, targets.numel()) if reduction == "mean" else 1.0
        full = torch.autograd.grad(nll.sum() * scale, list(params), retain_graph=True, allow_unused=True)
        norms = [(g.reshape(-1).float().norm().clamp_min(eps) if g is not None else None) for g in full]
        if not per_token:
            flat = [torch.zeros(p.numel(), device=dev) if g is None else g.reshape(-1).float() / n
                    for p, g, n in zip(params, full, norms)]  # fmt: skip
            vector = compress(torch.cat(flat)[None]).double().cpu()[0]
            return TokenGradients(row.input_ids, targets.cpu().numpy(), vector[None, :0], vector)
        parts = []
        for i in range(targets.numel()):
            grads = torch.autograd.grad(nll[i] * scale, list(params), retain_graph=True, allow_unused=True)
            flat = [
                torch.zeros(p.numel(), device=dev) if g is None or n is None else g.reshape(-1).float() / n
                for p, g, n in zip(params, grads, norms)
            ]
            parts.append(compress(torch.cat(flat)[None]).double())
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
    stacked = torch.cat(parts).cpu() if parts else torch.zeros((0, 1), dtype=torch.float64)
    return TokenGradients(row.input_ids, targets.cpu().numpy(), stacked, stacked.sum(0))


def explain_pairs(
    tokenizer: Any,
    gradients: Callable[[EncodedRow, bool], TokenGradients],
    queries: Sequence[EncodedRow],
    rows: Sequence[Sequence[int]],
    row_of: Callable[[int], EncodedRow],
) -> list[list[PairExplanation]]:
    """The shares of every ``(queries[q], rows[q][j])`` score (``gradients(text, per_token)``).

    Memory stays at one text's per-token parts plus one vector per query and per distinct row: the query
    vectors first (one backward pass each), then each distinct row's parts (its row shares against every
    query that ranked it), then each query's parts (its shares against the row vectors).
    """
    q_vectors = [gradients(q, False).vector for q in queries]
    where: dict[int, list[tuple[int, int]]] = {}
    for qi, line in enumerate(rows):
        for j, i in enumerate(line):
            where.setdefault(int(i), []).append((qi, j))
    row_side: dict[tuple[int, int], TokenShares] = {}
    r_vectors: dict[int, torch.Tensor] = {}
    for i, pairs in where.items():
        g = gradients(row_of(i), True)
        pieces = token_pieces(tokenizer, g.ids.tolist())
        r_vectors[i] = g.vector
        for qi, j in pairs:
            row_side[(qi, j)] = _shares(pieces, g, g.parts @ q_vectors[qi])
    out = []
    for qi, (q, line) in enumerate(zip(queries, rows)):
        g = gradients(q, True)
        pieces = token_pieces(tokenizer, g.ids.tolist())
        out.append(
            [
                PairExplanation(
                    query=_shares(pieces, g, g.parts @ r_vectors[int(i)]),
                    row=row_side[(qi, j)],
                    explained=float(q_vectors[qi] @ r_vectors[int(i)]),
                )
                for j, i in enumerate(line)
            ]
        )
    return out


def _shares(pieces: list[str], text: TokenGradients, per_target: torch.Tensor) -> TokenShares:
    shares: list[float | None] = [None] * len(pieces)
    for p, s in zip(text.positions.tolist(), per_target.tolist()):
        shares[p] = s
    return TokenShares(pieces, shares)
