"""Exact per-example gradients by autograd, split into parameter groups (embeddings, blocks, norm, LM head).

The loss of a row is the summed NLL of its target tokens (``training/losses.py``), the same tokens and the
same sum that RISE's exact LM-head kernel uses, so the LM-head block of these gradients is
``sum_t r_t h_t^T`` at tau = 1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from rise_exp.core import progress
from rise_exp.data.encoding import EncodedRow, collate
from rise_exp.models.placement import model_device
from rise_exp.training.losses import batch_loss

HEAD = "LM head"
EMBEDDINGS = "embeddings"
FINAL_NORM = "final norm"
_BLOCK = re.compile(r"\.(?:layers|h|blocks)\.(\d+)\.")


def parameter_groups(model: torch.nn.Module) -> dict[str, list[str]]:
    """Parameter names by group, in model order: embeddings, block 0..L-1, final norm, LM head.

    A parameter shared by the input and output embeddings (tied weights) is one group,
    ``embeddings + LM head (tied)``; anything else outside the blocks is ``final norm`` when its name
    says norm, else ``other``.
    """
    params = dict(model.named_parameters())
    ids = {id(p): n for n, p in params.items()}
    head = model.get_output_embeddings()
    emb = model.get_input_embeddings()
    head_ids = {id(p) for p in head.parameters()} if head is not None else set()
    emb_ids = {id(p) for p in emb.parameters()} if emb is not None else set()
    groups: dict[str, list[str]] = {}
    blocks: dict[int, list[str]] = {}
    for name, p in params.items():
        if id(p) in head_ids and id(p) in emb_ids:
            key = f"{EMBEDDINGS} + {HEAD} (tied)"
        elif id(p) in head_ids:
            key = HEAD
        elif id(p) in emb_ids:
            key = EMBEDDINGS
        elif m := _BLOCK.search(f".{name}"):
            blocks.setdefault(int(m.group(1)), []).append(name)
            continue
        else:
            key = FINAL_NORM if "norm" in name.lower() else "other"
        groups.setdefault(key, []).append(ids[id(p)])
    order = [EMBEDDINGS, *(f"block {i}" for i in sorted(blocks)), FINAL_NORM, "other", HEAD]
    groups.update({f"block {i}": names for i, names in blocks.items()})
    return {k: groups[k] for k in order if k in groups} | {k: v for k, v in groups.items() if k not in order}


def is_tied(model: torch.nn.Module) -> bool:
    """Whether the LM head's weight is the input embedding matrix (tied embeddings, e.g. SmolLM2)."""
    head, emb = model.get_output_embeddings(), model.get_input_embeddings()
    return head is not None and emb is not None and head.weight is emb.weight


@contextmanager
def untied_head(model: torch.nn.Module) -> Iterator[bool]:
    """Within the block a tied LM head computes with its own copy of the weight; yields whether it was tied.

    The function is unchanged (same values), and autograd then returns the tied matrix's gradient in its two
    parts: the output projection's ``sum_t r_t h_t^T`` (group ``LM head``: what RISE sketches) and the
    input embedding's (group ``embeddings``); they sum to the tied gradient. The tie is restored on exit.
    """
    if not is_tied(model):
        yield False
        return
    head, emb = model.get_output_embeddings(), model.get_input_embeddings()
    shared = emb.weight
    head.weight = torch.nn.Parameter(shared.detach().clone(), requires_grad=shared.requires_grad)
    try:
        yield True
    finally:
        head.weight = shared


def example_gradients(
    model: torch.nn.Module, rows: Sequence[EncodedRow], pad_id: int, groups: dict[str, list[str]]
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield, row by row, ``{group: flat float32 gradient}`` of the row's summed target NLL (4 P bytes a row)."""
    params = dict(model.named_parameters())
    names = [n for ns in groups.values() for n in ns]
    flags = {n: params[n].requires_grad for n in names}
    dev = model_device(model)
    was_training = model.training
    model.eval()
    try:
        for n in names:
            params[n].requires_grad_(True)
        for row in rows:
            batch = {k: v.to(dev) for k, v in collate([row], pad_id).items() if k != "row"}
            total, _ = batch_loss(model, batch)
            grads = torch.autograd.grad(total.sum(), [params[n] for n in names], allow_unused=True)
            by_name = {n: (torch.zeros_like(params[n]) if g is None else g) for n, g in zip(names, grads)}
            yield {k: torch.cat([by_name[n].reshape(-1).float() for n in ns]) for k, ns in groups.items()}
            progress.advance()  # one row's gradient, for the diagnostic's bar
    finally:
        for n, f in flags.items():
            params[n].requires_grad_(f)
        model.train(was_training)


def group_sizes(model: Any, groups: dict[str, list[str]]) -> dict[str, int]:
    """Number of parameters in each group."""
    params = dict(model.named_parameters())
    return {k: sum(params[n].numel() for n in ns) for k, ns in groups.items()}
