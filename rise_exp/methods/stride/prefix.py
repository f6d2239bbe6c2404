"""Replaying the frozen blocks below STRIDE's steered block.

STRIDE never changes the base model, so the output of blocks ``0..layer`` for a row is the same in every
operator pass. :class:`PrefixReplay` computes it once per row (the forward stops at block ``layer``) and,
inside :meth:`PrefixReplay.replaying`, stands in for those blocks: the blocks below ``layer`` pass their
input through and block ``layer`` returns the batch's stored outputs, so each pass runs only the blocks
above the steered one and the head. Rows are right-padded (``collate``), so a row's stored positions do
not depend on the batch it was computed in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from rise_exp.data.encoding import EncodedRow, collate, token_budget_batches
from rise_exp.methods.common import forward_logits


class _PassThrough(nn.Module):
    """A skipped block: returns its hidden-state input."""

    def forward(self, hidden_states: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        return hidden_states


class _StoredOutput(nn.Module):
    """Stands in for the steered block: returns the stored outputs of the batch's rows (``batch``)."""

    def __init__(self) -> None:
        super().__init__()
        self.batch: torch.Tensor | None = None

    def forward(self, hidden_states: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        if self.batch is None or self.batch.shape != hidden_states.shape:
            got = None if self.batch is None else tuple(self.batch.shape)
            raise RuntimeError(f"stride prefix replay: stored batch {got} does not match {tuple(hidden_states.shape)}")
        return self.batch.to(device=hidden_states.device, dtype=hidden_states.dtype)


class _Stop(Exception):
    """Raised by the capture hook to end a forward pass at the steered block."""


class PrefixReplay:
    """Stored outputs of blocks ``0..layer`` per row, and a context that replays them.

    Args:
        layers: The model's decoder blocks (:func:`~rise_exp.models.layers.decoder_layers`).
        layer: The steered block.
    """

    def __init__(self, layers: nn.ModuleList, layer: int) -> None:
        self.layers, self.layer = layers, layer
        self.stand_in = _StoredOutput()

    @torch.no_grad()
    def block_outputs(
        self, model: nn.Module, rows: Sequence[EncodedRow], pad: int, max_tokens: int
    ) -> list[torch.Tensor] | None:
        """Each row's output of block ``layer``, ``[len(row), d]`` in row order; None when the block does not
        return a plain tensor (the caller then runs full passes)."""
        out: list[torch.Tensor] = [torch.empty(0)] * len(rows)  # every row is filled: batches cover them all

        def stop(module: nn.Module, inputs: tuple, output: object) -> None:
            raise _Stop(output)

        handle = self.layers[self.layer].register_forward_hook(stop)
        try:
            for idx in token_budget_batches(rows, max_tokens):
                try:
                    forward_logits(model, collate([rows[i] for i in idx], pad))
                    raise RuntimeError("stride prefix replay: the forward pass did not reach the steered block")
                except _Stop as reached:
                    hidden = reached.args[0]
                if not torch.is_tensor(hidden):
                    return None
                for j, i in enumerate(idx):
                    out[i] = hidden[j, : len(rows[i])].detach().cpu().clone()
        finally:
            handle.remove()
        return out

    def load(self, hidden: Sequence[torch.Tensor], length: int) -> None:
        """Set the batch the stand-in returns: ``hidden`` right-padded with zeros to ``length`` positions."""
        first = hidden[0]
        batch = first.new_zeros((len(hidden), length, first.shape[-1]))
        for j, h in enumerate(hidden):
            batch[j, : h.shape[0]] = h
        self.stand_in.batch = batch

    @contextmanager
    def replaying(self) -> Iterator[nn.Module]:
        """Blocks below ``layer`` pass through and block ``layer`` is the stand-in (yielded, to hook the
        steering on); the model's blocks are restored on exit."""
        originals = [self.layers[i] for i in range(self.layer + 1)]
        try:
            for i in range(self.layer):
                self.layers[i] = _PassThrough()
            self.layers[self.layer] = self.stand_in
            yield self.stand_in
        finally:
            for i, block in enumerate(originals):
                self.layers[i] = block
            self.stand_in.batch = None
