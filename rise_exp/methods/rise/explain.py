"""RISE scores split into exact query-token and row-token shares.

A RISE signature is a weighted sum of per-token terms. For member ``e`` (``method.ensemble``), channel
``c = ab`` (``rh``: ``a = r^, b = h^``; ``gh``: ``a = g^, b = h^``) and target token ``t`` of chunk ``k``:

    phi_e = sum_k sum_{t in k} w_{e,k} [lam_c a_t (x) b_t]_c,
    w_{e,k} = 1 / (max(|S_{e,k}|, eps) sqrt(E)) * 1 / C * 1 / (max(|m_e|, eps) sqrt(E)),

with ``S_{e,k}`` the chunk's unnormalised signature, ``C`` the row's chunks and ``m_e`` the mean of the
normalised chunk signatures (:mod:`~rise_exp.methods.rise.chunking`; ``sqrt(E)`` only when ``E > 1``,
``w = 1 / C`` without ``normalize_signature``). The score ``<phi(q), phi(x)>`` is therefore linear in each
side's terms: row token ``t`` gets ``<phi(q), term_t>`` = ``sum_e w_{e,k} sum_c lam_c a_t^T M_{e,c}(q) b_t``
(``M_{e,c}(q)`` the ``[ka, kb]`` block of ``phi(q)``), query token ``s`` gets ``<term_s, phi(x)>``, and each
side sums to the score. A token inside two overlapping chunks gets both terms. The factors are recomputed
for the few rows asked (one forward pass each), never stored for the pool; they are kept in float64, so
the two sides agree to float64 rounding, and with the index's stored score up to its storage rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rise_exp.data.encoding import EncodedRow
from rise_exp.methods.explanation import PairExplanation, TokenShares, token_pieces
from rise_exp.methods.rise.chunking import collate_chunks, located_chunks
from rise_exp.methods.rise.config import RiseConfig
from rise_exp.methods.rise.head import RiseHead
from rise_exp.methods.rise.sketch import SketchTables
from rise_exp.methods.rise.trunk import hidden_states

_LAMBDA = {"rh": "lam_rh", "gh": "lam_gh", "rg": "lam_rg"}


@dataclass(frozen=True)
class TextFactors:
    """One text's signature as a weighted sum of per-token terms (float64).

    Attributes:
        ids: The text's token ids ``[L]``.
        positions: The token position of each term ``[T]`` (a token in two chunks has two terms).
        sketches: Per ensemble member, the per-term sketches ``{"r": [T, kr], "h": [T, kh], "g": [T, kg]}``.
        weights: ``[E, T]``: each term's chunk and row normalisers, per member.
        signature: ``phi`` ``[dim]``, the weighted sum of the terms.
    """

    ids: np.ndarray
    positions: np.ndarray
    sketches: list[dict[str, torch.Tensor]]
    weights: torch.Tensor
    signature: torch.Tensor

    @property
    def scored(self) -> np.ndarray:
        """``[L]`` bool: which tokens have a term (the target tokens of the text's chunks)."""
        out = np.zeros(len(self.ids), dtype=bool)
        out[self.positions] = True
        return out


class RiseExplainer:
    """Per-token factors and shares with the sketch tables of an index.

    Args:
        model: The HF causal LM the index was built with.
        cfg: The index's RISE settings.
        tables: Its sketch tables (one per ensemble member).
        pad_id: Padding id of the tokenizer.
        group: Texts per forward pass (their chunks padded together).
    """

    def __init__(
        self, model: Any, cfg: RiseConfig, tables: Sequence[SketchTables], pad_id: int, group: int = 16
    ) -> None:
        self.model, self.cfg, self.pad_id, self.group = model, cfg, pad_id, group
        self.head = RiseHead.from_model(model, cfg, list(tables))
        self.members = len(self.head.members)
        dims = cfg.block_dims(self.head.vocab_size, self.head.hidden_size)
        self.width = sum(dims.values())
        t = self.head.tables
        sizes = {"r": t.r.out_dim, "h": t.h.out_dim, "g": t.g.out_dim}
        self.blocks: list[tuple[str, int, int, int]] = []  # (channel, offset, ka, kb) within a member
        offset = 0
        for c in cfg.channels:
            self.blocks.append((c, offset, sizes[c[0]], sizes[c[1]]))
            offset += dims[c]

    def factors(self, row: EncodedRow) -> TextFactors:
        """The per-token terms of one text (its chunks in one forward pass)."""
        return self.factors_of([row])[0]

    @torch.inference_mode()
    def factors_of(self, rows: Sequence[EncodedRow]) -> list[TextFactors]:
        """The per-token terms of several texts, their chunks in one padded forward pass."""
        located = [located_chunks(r, self.cfg) for r in rows]
        owner = torch.tensor([i for i, chunks in enumerate(located) for _ in chunks])
        starts = torch.tensor([s for chunks in located for s, _ in chunks])
        batch = collate_chunks([c for chunks in located for _, c in chunks], self.cfg, self.pad_id)
        dev = self.head.weight.device
        ids, att = batch["input_ids"].to(dev), batch["attention_mask"].to(dev)
        if not self.head.verified:
            self.head.verify(self.model, ids, att)
        tm = batch["target_mask"].to(dev) & att.bool()
        tm[:, 0] = False
        hidden = hidden_states(self.model, ids, att)
        k_idx, t_idx = tm.nonzero(as_tuple=True)
        per_member = self.head.member_sketches(hidden[k_idx, t_idx - 1], ids[k_idx, t_idx])
        k_idx, t_idx = k_idx.cpu(), t_idx.cpu()
        out = []
        for i, row in enumerate(rows):
            mine = owner[k_idx] == i
            first = int((owner < i).sum())  # this text's first chunk in the batch
            sketches = [{k: v[mine.to(v.device)].double() for k, v in m.items()} for m in per_member]
            chunk = k_idx[mine] - first
            weights = self._weights(sketches, chunk.to(dev), len(located[i]))
            signature = torch.cat([self._member_signature(sk, weights[e]) for e, sk in enumerate(sketches)])
            positions = (starts[k_idx[mine]] + t_idx[mine]).numpy()
            out.append(TextFactors(row.input_ids, positions, sketches, weights, signature))
        return out

    def _member_signature(self, sk: dict[str, torch.Tensor], w: torch.Tensor) -> torch.Tensor:
        parts = []
        for c, _, _, _ in self.blocks:
            lam = getattr(self.cfg, _LAMBDA[c])
            parts.append(lam * ((sk[c[0]] * w[:, None]).t() @ sk[c[1]]).reshape(-1))
        return torch.cat(parts)

    def _weights(self, sketches: list[dict[str, torch.Tensor]], chunk: torch.Tensor, n_chunks: int) -> torch.Tensor:
        """``[E, T]`` term weights: the chunk normalisers, the chunk mean and the row normaliser."""
        eps, cfg = self.cfg.norm_eps, self.cfg
        scale = math.sqrt(self.members) if self.members > 1 else 1.0
        out = torch.zeros((self.members, chunk.numel()), dtype=torch.float64, device=chunk.device)
        for e, sk in enumerate(sketches):
            if not cfg.normalize_signature:
                out[e] = 1.0 / n_chunks
                continue
            chunk_w = torch.ones(n_chunks, dtype=torch.float64, device=chunk.device)
            for k in range(n_chunks):
                sel = (chunk == k).double()
                chunk_w[k] = 1.0 / (_divisor(self._member_signature(sk, sel), eps) * scale)
            mean = self._member_signature(sk, chunk_w[chunk] / n_chunks)
            out[e] = chunk_w[chunk] / n_chunks / (_divisor(mean, eps) * scale)
        return out

    def shares(self, text: TextFactors, other: torch.Tensor) -> np.ndarray:
        """``<term, other>`` summed per token of ``text`` ``[L]`` (0 where the token has no term)."""
        per_term = torch.zeros(text.positions.shape[0], dtype=torch.float64, device=other.device)
        for e, sk in enumerate(text.sketches):
            member = other[e * self.width : (e + 1) * self.width]
            acc = torch.zeros_like(per_term)
            for c, offset, ka, kb in self.blocks:
                m = member[offset : offset + ka * kb].reshape(ka, kb)
                acc += getattr(self.cfg, _LAMBDA[c]) * ((sk[c[0]] @ m) * sk[c[1]]).sum(dim=1)
            per_term += text.weights[e] * acc
        out = np.zeros(len(text.ids), dtype=np.float64)
        np.add.at(out, text.positions, per_term.cpu().numpy())
        return out

    def explain(
        self,
        tokenizer: Any,
        queries: Sequence[EncodedRow],
        rows: Sequence[Sequence[int]],
        row_of: Callable[[int], EncodedRow],
    ) -> list[list[PairExplanation]]:
        """The shares of every ``(queries[q], rows[q][j])`` score; ``row_of(i)`` is pool row ``i`` encoded as
        the index encoded it. Each distinct row is computed once and dropped when its pairs are done."""
        found = [f for part in _groups(queries, self.group) for f in self.factors_of(part)]
        query_pieces = [token_pieces(tokenizer, q.ids.tolist()) for q in found]
        out: list[list[PairExplanation | None]] = [[None] * len(r) for r in rows]
        where: dict[int, list[tuple[int, int]]] = {}
        for qi, line in enumerate(rows):
            for j, i in enumerate(line):
                where.setdefault(int(i), []).append((qi, j))
        for part in _groups(list(where), self.group):
            for i, row in zip(part, self.factors_of([row_of(i) for i in part])):
                pieces = token_pieces(tokenizer, row.ids.tolist())
                for qi, j in where[i]:
                    q = found[qi]
                    out[qi][j] = PairExplanation(
                        query=_token_shares(query_pieces[qi], q, self.shares(q, row.signature)),
                        row=_token_shares(pieces, row, self.shares(row, q.signature)),
                        explained=float(q.signature @ row.signature),
                    )
        return [[p for p in line if p is not None] for line in out]


def _groups(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _divisor(x: torch.Tensor, eps: float) -> float:
    """What :func:`~rise_exp.methods.rise.head.l2_normalize` divides ``x`` by."""
    norm = float(x.norm())
    return max(norm, eps) if norm > 0 else 1.0


def _token_shares(pieces: list[str], text: TextFactors, shares: np.ndarray) -> TokenShares:
    scored = text.scored
    return TokenShares(pieces, [float(s) if ok else None for s, ok in zip(shares, scored)])
