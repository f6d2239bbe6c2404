"""Low-rank steering operators for STRIDE, applied through a forward hook on one decoder block.

Operator ``k`` maps the block's output ``h`` to ``h + B_k (A h)``: ``A [r, d]`` is a read shared by all
operators, ``B_k [d, r]`` the subset's own output map (zero-initialised, so every operator starts as
the identity). Each batch row carries the id of the operator steering it (``-1``: none).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class SteeringBank(nn.Module):
    """A shared read ``A`` and one output map ``B_k`` per subset.

    Args:
        n_ops: Number of operators (subsets).
        hidden: Residual width ``d``.
        rank: Operator rank ``r``.
        generator: Seeded generator for the initial read.
    """

    def __init__(self, n_ops: int, hidden: int, rank: int, generator: torch.Generator) -> None:
        super().__init__()
        self.read = nn.Parameter(torch.randn(rank, hidden, generator=generator) / hidden**0.5)
        self.write = nn.Parameter(torch.zeros(n_ops, hidden, rank))
        self.op_ids: torch.Tensor | None = None

    def delta(self, hidden: torch.Tensor, op_ids: torch.Tensor) -> torch.Tensor:
        """Steering added to ``hidden [B, L, d]`` for rows steered by ``op_ids [B]`` (``-1``: zero)."""
        active = (op_ids >= 0).to(hidden.dtype)[:, None, None]
        maps = self.write[op_ids.clamp_min(0)].to(hidden.dtype)  # [B, d, r]
        low = hidden @ self.read.to(hidden.dtype).T  # [B, L, r]
        return torch.einsum("blr,bdr->bld", low, maps) * active

    def hook(self, module: nn.Module, inputs: tuple, output: object) -> object:
        """Forward hook: add the steering to the block's hidden-state output."""
        if self.op_ids is None:
            return output
        if torch.is_tensor(output):
            return output + self.delta(output, self.op_ids.to(output.device))
        if isinstance(output, (tuple, list)) and output and torch.is_tensor(output[0]):
            h = output[0]
            steered = h + self.delta(h, self.op_ids.to(h.device))
            return type(output)([steered, *output[1:]]) if isinstance(output, list) else (steered, *output[1:])
        raise TypeError(f"stride: unsupported decoder block output type {type(output).__name__}")

    @contextmanager
    def attached(self, layer: nn.Module) -> Iterator[SteeringBank]:
        """Register the hook on ``layer`` for the duration of the context."""
        handle = layer.register_forward_hook(self.hook)
        try:
            yield self
        finally:
            handle.remove()
            self.op_ids = None
