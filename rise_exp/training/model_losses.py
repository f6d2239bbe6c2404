"""Loss evaluation over encoded rows: per-row losses, per-token NLL, the mean token loss, perplexity."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from rise_exp.core.errors import allowed
from rise_exp.data.encoding import EncodedRow, collate, token_budget_batches
from rise_exp.models.placement import model_device
from rise_exp.training.losses import REDUCTIONS, masked_token_nll, next_token_nll


def _batches(rows: Sequence[EncodedRow], pad_id: int, max_tokens: int):
    for idx in token_budget_batches(rows, max_tokens):
        yield idx, collate([rows[i] for i in idx], pad_id)


@torch.no_grad()
def row_losses(
    model: torch.nn.Module, rows: Sequence[EncodedRow], pad_id: int, *, max_tokens: int = 8192, reduction: str = "mean"
) -> torch.Tensor:
    """Loss of every row (mean or sum of its target NLL), float64 ``[len(rows)]`` on CPU, in row order."""
    device = model_device(model)
    out = torch.zeros(len(rows), dtype=torch.float64)
    for idx, batch in _batches(rows, pad_id, max_tokens):
        ids, att, tgt = (batch[k].to(device) for k in ("input_ids", "attention_mask", "target_mask"))
        total, count = masked_token_nll(model(input_ids=ids, attention_mask=att).logits, ids, tgt)
        loss = total if reduction == "sum" else total / count.clamp_min(1.0)
        out[torch.tensor(idx)] = loss.double().cpu()
    return out


@torch.no_grad()
def token_nll(
    model: torch.nn.Module, rows: Sequence[EncodedRow], pad_id: int, *, max_tokens: int = 8192
) -> list[np.ndarray]:
    """Next-token NLL of every token of every row, float32 ``[len(row)]`` per row, in row order.

    Entry ``t`` is the NLL of token ``t`` given tokens ``< t``; entry 0 (no prefix) is 0. Target masks are
    not used, so one pass serves every token rule: :func:`masked_row_losses` reduces it to row losses.
    """
    device = model_device(model)
    out: list[np.ndarray] = [np.zeros(0, dtype=np.float32)] * len(rows)
    for idx, batch in _batches(rows, pad_id, max_tokens):
        ids, att = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        nll = next_token_nll(model(input_ids=ids, attention_mask=att).logits, ids).cpu().numpy()
        for b, i in enumerate(idx):
            out[i] = np.concatenate([[0.0], nll[b, : len(rows[i]) - 1]]).astype(np.float32)
    return out


def masked_row_losses(nll: Sequence[np.ndarray], rows: Sequence[EncodedRow], reduction: str = "mean") -> np.ndarray:
    """Row losses from :func:`token_nll`: the mean (or sum) of each row's target tokens' NLL, float64
    ``[len(rows)]`` (0 for a row without targets), equal to :func:`row_losses` up to summation order."""
    if reduction not in REDUCTIONS:
        raise allowed("loss reduction", reduction, REDUCTIONS)
    out = np.zeros(len(rows), dtype=np.float64)
    for i, (values, row) in enumerate(zip(nll, rows)):
        if len(values) != len(row):
            raise ValueError(f"row {i}: {len(values)} token losses for {len(row)} tokens")
        picked = values[row.target_mask].astype(np.float64)
        out[i] = picked.sum() if reduction == "sum" else picked.sum() / max(len(picked), 1)
    return out


@torch.no_grad()
def mean_token_loss(model: torch.nn.Module, rows: Sequence[EncodedRow], pad_id: int, max_tokens: int = 4096) -> float:
    """Mean target-token cross-entropy of ``model`` on ``rows`` (evaluated in eval mode)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0.0
    device = model_device(model)
    for _, batch in _batches(rows, pad_id, max_tokens):
        ids, att, tgt = (batch[k].to(device) for k in ("input_ids", "attention_mask", "target_mask"))
        s, c = masked_token_nll(model(input_ids=ids, attention_mask=att).logits, ids, tgt)
        total, count = total + float(s.sum()), count + float(c.sum())
    model.train(was_training)
    return total / max(count, 1.0)


def perplexity(model: torch.nn.Module, rows: Sequence[EncodedRow], pad_id: int, max_tokens: int = 4096) -> float:
    """``exp`` of :func:`mean_token_loss`."""
    return math.exp(mean_token_loss(model, rows, pad_id, max_tokens))
