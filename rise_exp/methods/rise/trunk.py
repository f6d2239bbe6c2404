"""The trunk side of RISE: final-norm hidden states of any HF causal LM, and its unembedding."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rise_exp.core.errors import ConfigError


def unembedding(model: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The LM head's weight ``W`` ``[V, D]`` and bias ``b`` ``[V]`` (or None), detached.

    Raises:
        ConfigError: if the output embedding is missing or not a plain ``nn.Linear``.
    """
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    if not isinstance(head, nn.Linear):
        raise ConfigError(
            f"RISE needs an nn.Linear LM head (model.get_output_embeddings()); got {type(head).__name__} "
            f"in {type(model).__name__}"
        )
    bias = head.bias.detach() if head.bias is not None else None
    return head.weight.detach(), bias


def base_model(model: Any) -> nn.Module:
    """The model without its LM head (``model.base_model``), whose output is the final-norm hidden state."""
    base = getattr(model, "base_model", None)
    if not isinstance(base, nn.Module) or base is model:
        raise ConfigError(f"{type(model).__name__} exposes no base_model without its LM head; RISE cannot run it")
    return base


@dataclass
class _Memo:
    """Hidden states already computed in a :func:`remembering_hidden_states` block, and their bytes."""

    limit_bytes: int
    held_bytes: int = 0
    states: dict[tuple, torch.Tensor] = field(default_factory=dict)
    hits: int = 0


_MEMO: ContextVar[_Memo | None] = ContextVar("rise_exp_trunk_memo", default=None)


@contextmanager
def remembering_hidden_states(limit_bytes: int = 2 << 30) -> Iterator[_Memo]:
    """Within the block, the trunk runs once per (model, batch): a repeated batch is served from memory.

    For work that passes over the same rows many times with the same model, e.g. one RISE sketch per seed
    and width in the diagnostics: only the head and its sketches are recomputed. Calls with gradients
    enabled are never remembered; past ``limit_bytes`` of stored states, new batches are computed as usual.
    """
    token = _MEMO.set(_Memo(limit_bytes))
    try:
        yield _MEMO.get()
    finally:
        _MEMO.reset(token)


def _memo_key(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple:
    digest = hashlib.blake2b(digest_size=16)
    for t in (input_ids, attention_mask):
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    kind = input_ids.device.type
    dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None
    return id(model), str(input_ids.device), str(dtype), digest.hexdigest()


def hidden_states(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Final-norm hidden states ``[B, L, D]`` (no full-vocabulary logits are computed)."""
    memo = _MEMO.get()
    key = _memo_key(model, input_ids, attention_mask) if memo is not None and not torch.is_grad_enabled() else None
    if key is not None and key in memo.states:
        memo.hits += 1
        return memo.states[key]
    out = base_model(model)(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    size = out.numel() * out.element_size()
    if key is not None and memo.held_bytes + size <= memo.limit_bytes:
        memo.states[key] = out
        memo.held_bytes += size
    return out


def model_logits(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The model's own logits ``[B, L, V]`` (used once, to verify the head)."""
    return model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
