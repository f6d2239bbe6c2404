"""FSDP that shards layer by layer: each transformer block its own FSDP unit.

``strategy="fsdp"`` given to Lightning as a string wraps the whole model as one unit: its parameters are
sharded at rest but all gathered for every forward and backward, so the peak is the full model on each
GPU. Wrapping each block (the classes the model names in ``_no_split_modules``, the same ones accelerate
keeps whole in a ``device_map``) gathers one block at a time, which is what lets a model larger than one
device train.
"""

from __future__ import annotations

from typing import Any

import torch


def block_classes(model: torch.nn.Module) -> set[type[torch.nn.Module]]:
    """The module classes of ``model`` named in its ``_no_split_modules`` (its transformer blocks)."""
    names: set[str] = set()
    for m in model.modules():
        names.update(getattr(m, "_no_split_modules", None) or [])
    return {type(m) for m in model.modules() if type(m).__name__ in names}


def fsdp_strategy(model: torch.nn.Module, strategy: str = "fsdp", **kwargs: Any) -> Any:
    """Lightning's FSDP strategy wrapping each block of ``model`` as its own unit.

    ``strategy`` may name a sharding strategy after a colon, as Lightning's strings do
    (``fsdp`` = FULL_SHARD; e.g. ``fsdp:SHARD_GRAD_OP``).
    """
    from lightning.pytorch.strategies import FSDPStrategy

    classes = block_classes(model)
    if not classes:
        raise ValueError(f"{type(model).__name__} names no transformer blocks (_no_split_modules) to wrap for FSDP")
    _, _, sharding = strategy.partition(":")
    # use_orig_params: a LoRA block holds frozen and trainable parameters in one unit
    kwargs.setdefault("use_orig_params", True)
    return FSDPStrategy(auto_wrap_policy=classes, sharding_strategy=sharding or "FULL_SHARD", **kwargs)
