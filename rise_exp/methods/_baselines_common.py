"""Shared plumbing of the gradient/loss baselines (RapidIn, ZO-Inf, STRIDE).

Config access that accepts an omegaconf node or a plain dict, record encoding through the shared
:func:`rise_exp.data.encoding.encode_record`, and the masked per-row language-model loss: the loss of a
row is the sum (or mean) of ``-log p(y_t)`` over its target tokens, where ``target_mask[t]`` marks token
``t`` as predicted from position ``t - 1``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from rise_exp.data.encoding import EncodedRow, collate, encode_record, token_budget_batches
from rise_exp.data.records import Record
from rise_exp.errors import ConfigError, allowed

REDUCTIONS = ("mean", "sum")


def cfg_get(cfg: Any, key: str, default: Any = None) -> Any:
    """Read ``key`` from a DictConfig, a mapping or an attribute object, else ``default``."""
    if cfg is None:
        return default
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    getter = getattr(cfg, "get", None)
    if callable(getter):
        return getter(key, default)
    return getattr(cfg, key, default)


def positive_int(cfg: Any, method: str, key: str, default: int, minimum: int = 1) -> int:
    """An integer setting ``method.key`` that must be at least ``minimum``."""
    value = cfg_get(cfg, key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{method}.{key} must be an integer >= {minimum}, got {value!r}")
    return value


def nonneg_float(cfg: Any, method: str, key: str, default: float) -> float:
    """A float setting ``method.key`` that must be >= 0."""
    value = cfg_get(cfg, key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{method}.{key} must be a number >= 0, got {value!r}")
    return float(value)


def choice(cfg: Any, method: str, key: str, default: str, choices: Sequence[str]) -> str:
    """A string setting ``method.key`` restricted to ``choices``."""
    value = cfg_get(cfg, key, default)
    if value not in choices:
        raise allowed(f"{method}.{key}", value, list(choices))
    return str(value)


def encode_all(records: Sequence[Record], ctx: Any) -> list[EncodedRow]:
    """Encode records with the context's tokenizer, prompt masking and length limit."""
    return [
        encode_record(r, ctx.tokenizer, i, mask_prompt=ctx.mask_prompt, max_length=ctx.max_length)
        for i, r in enumerate(records)
    ]


def pad_id(tokenizer: Any) -> int:
    """The padding id: the tokenizer's pad, else eos, else 0 (padding is always masked out)."""
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    return 0


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of the model's first parameter."""
    return next(model.parameters()).device


def masked_row_loss(
    logits: torch.Tensor, input_ids: torch.Tensor, target_mask: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Per-row LM loss ``[B]`` over target tokens.

    Args:
        logits: ``[B, L, V]`` next-token logits (position ``t`` predicts token ``t + 1``).
        input_ids: ``[B, L]`` token ids.
        target_mask: ``[B, L]`` bool, True where token ``t`` is a target.
        reduction: ``mean`` (average over the row's targets) or ``sum``.
    """
    if reduction not in REDUCTIONS:
        raise allowed("loss reduction", reduction, REDUCTIONS)
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    tgt = input_ids[:, 1:]
    mask = target_mask[:, 1:].to(logp.dtype)
    nll = -logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1) * mask
    total = nll.sum(dim=1)
    if reduction == "sum":
        return total
    return total / mask.sum(dim=1).clamp_min(1.0)


def forward_logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits of a collated batch on the model's device."""
    device = model_device(model)
    out = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
    return out.logits


@torch.no_grad()
def row_losses(
    model: torch.nn.Module,
    rows: Sequence[EncodedRow],
    pad: int,
    *,
    max_tokens: int = 8192,
    reduction: str = "mean",
) -> torch.Tensor:
    """Loss of every row, float64 ``[len(rows)]`` on CPU, in the order of ``rows``."""
    device = model_device(model)
    out = torch.zeros(len(rows), dtype=torch.float64)
    for idx in token_budget_batches(rows, max_tokens):
        batch = collate([rows[i] for i in idx], pad)
        logits = forward_logits(model, batch)
        loss = masked_row_loss(logits, batch["input_ids"].to(device), batch["target_mask"].to(device), reduction)
        out[torch.tensor(idx)] = loss.double().cpu()
    return out
