"""The masked token loss every part of rise-exp shares (finetuning, evaluation, the gradient baselines).

``target_mask[b, t]`` marks token ``t`` of row ``b`` as a target, predicted from position ``t - 1``; the
loss of a row is the sum (or mean) of ``-log p(y_t)`` over its targets. Padding and masked prompts
are simply not targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rise_exp.config.settings import LOSS_REDUCTIONS as REDUCTIONS
from rise_exp.core.errors import allowed


def next_token_nll(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """``[B, L - 1]`` float32 NLL of token ``t + 1`` under the logits at position ``t``, every position
    (padding included: callers mask)."""
    flat = logits[:, :-1].float()
    nll = F.cross_entropy(flat.reshape(-1, flat.shape[-1]), input_ids[:, 1:].reshape(-1), reduction="none")
    return nll.view(input_ids.shape[0], -1)


def masked_token_nll(
    logits: torch.Tensor, input_ids: torch.Tensor, target_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row summed target NLL ``[B]`` and per-row target count ``[B]`` (float32).

    Args:
        logits: ``[B, L, V]`` next-token logits (position ``t`` predicts token ``t + 1``).
        input_ids: ``[B, L]`` token ids.
        target_mask: ``[B, L]`` bool, True where token ``t`` is a target.
    """
    nll = next_token_nll(logits, input_ids)
    mask = target_mask[:, 1:].to(nll.dtype)
    nll = nll * mask
    return nll.sum(1), mask.sum(1)


def row_loss(
    logits: torch.Tensor, input_ids: torch.Tensor, target_mask: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Per-row loss ``[B]``: the mean (or sum) of target NLL (a row without targets has loss 0)."""
    if reduction not in REDUCTIONS:
        raise allowed("loss reduction", reduction, REDUCTIONS)
    total, count = masked_token_nll(logits, input_ids, target_mask)
    return total if reduction == "sum" else total / count.clamp_min(1.0)


def batch_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`masked_token_nll` of a collated batch run through ``model`` (tensors already on its device)."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return masked_token_nll(out.logits, batch["input_ids"], batch["target_mask"])
