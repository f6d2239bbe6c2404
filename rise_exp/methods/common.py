"""Plumbing shared by the model-based methods: encoding records, padding ids, logits of a batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rise_exp.data.encoding import EncodedRow, encode_record
from rise_exp.data.records import Record
from rise_exp.models.placement import model_device


def encode_all(records: Sequence[Record], ctx: Any) -> list[EncodedRow]:
    """Encode records with the context's tokenizer, prompt masking and length limit (row = position)."""
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


def forward_logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits of a collated batch on the model's device."""
    device = model_device(model)
    out = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
    return out.logits


def batch_row_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """Per-row loss ``[B]`` of a collated batch (moved to the model's device)."""
    from rise_exp.training.losses import row_loss

    device = model_device(model)
    return row_loss(
        forward_logits(model, batch), batch["input_ids"].to(device), batch["target_mask"].to(device), reduction
    )
