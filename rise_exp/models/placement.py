"""Where a model computes."""

from __future__ import annotations

import torch


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of the model's first parameter."""
    return next(model.parameters()).device
