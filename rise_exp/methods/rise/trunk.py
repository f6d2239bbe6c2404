"""The trunk side of RISE: final-norm hidden states of any HF causal LM, and its unembedding."""

from __future__ import annotations

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


def hidden_states(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Final-norm hidden states ``[B, L, D]`` (no full-vocabulary logits are computed)."""
    out = base_model(model)(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    return out.last_hidden_state


def model_logits(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The model's own logits ``[B, L, V]`` (used once, to verify the head)."""
    return model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
