"""Loss evaluation over encoded rows: per-row losses, the mean token loss, perplexity."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from rise_exp.data.encoding import EncodedRow, collate, token_budget_batches
from rise_exp.training.losses import masked_token_nll


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of the model's first parameter."""
    return next(model.parameters()).device


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
