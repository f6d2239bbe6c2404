"""RapidIn (Lin et al., "Token-wise Influential Training Data Retrieval for Large Language Models", ACL 2024).

Per example ``x``: the gradient of its LM loss over the trainable parameters (all parameters, or only
the LoRA adapter's when ``lora: true``), each parameter tensor's gradient L2-normalised (layer-wise
normalisation), concatenated, and compressed by RapidGrad (:mod:`rise_exp.methods._rapidgrad`) to
``K = 2^16`` entries. The influence of training row ``n`` on query ``q`` is ``<C(g_q), C(g_n)>``.
Gradients are taken one row at a time (exact, no ``[N, P]`` matrix); the ``[N, K]`` compressed
vectors are kept in memory or in a memmap under ``ctx.work_dir``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rise_exp.data.encoding import EncodedRow, collate
from rise_exp.data.records import Record
from rise_exp.errors import ConfigError
from rise_exp.methods._baselines_common import (
    REDUCTIONS,
    cfg_get,
    choice,
    encode_all,
    forward_logits,
    masked_row_loss,
    model_device,
    pad_id,
    positive_int,
)
from rise_exp.methods._rapidgrad import RapidGrad
from rise_exp.methods.base import AttributionMethod, MethodContext


def select_params(model: torch.nn.Module, lora: bool) -> list[tuple[str, torch.nn.Parameter]]:
    """Parameters whose gradients RapidIn uses.

    Raises:
        ConfigError: if ``lora`` is requested but the model carries no LoRA adapter.
    """
    named = list(model.named_parameters())
    if not lora:
        return named
    lora_params = [(n, p) for n, p in named if "lora_" in n]
    if not hasattr(model, "peft_config") or not lora_params:
        raise ConfigError(
            "method.lora=true needs a model with a PEFT LoRA adapter, but the model has "
            + ("no peft_config" if not hasattr(model, "peft_config") else "no 'lora_' parameters")
            + "; finetune with a LoRA adapter (pip install 'rise-exp[lora]', LoRA enabled in the finetune "
            "stage) or set method.lora=false to use all parameters"
        )
    return lora_params


def per_example_grads(
    model: torch.nn.Module,
    rows: Sequence[EncodedRow],
    params: Sequence[torch.nn.Parameter],
    pad: int,
    reduction: str = "mean",
) -> Iterator[list[torch.Tensor]]:
    """Yield, row by row, the exact gradients of the row's loss w.r.t. ``params`` (detached copies)."""
    device = model_device(model)
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    try:
        for row in rows:
            batch = collate([row], pad)
            logits = forward_logits(model, batch)
            loss = masked_row_loss(logits, batch["input_ids"].to(device), batch["target_mask"].to(device), reduction)
            grads = torch.autograd.grad(loss.sum(), list(params), allow_unused=True)
            yield [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(params, grads)]
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)


def layer_normalised_flat(grads: Sequence[torch.Tensor], eps: float = 1e-12) -> torch.Tensor:
    """Concatenate per-parameter gradients, each divided by its own L2 norm (zero stays zero)."""
    parts = []
    for g in grads:
        flat = g.reshape(-1).float()
        parts.append(flat / flat.norm().clamp_min(eps))
    return torch.cat(parts)


class RapidIn(AttributionMethod):
    """Layer-normalised per-example gradients compressed by RapidGrad; influence = inner product."""

    name = "rapidin"

    def __init__(self, cfg: Any, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        self.k = positive_int(cfg, "rapidin", "k", 65536)
        self.shuffle_lambda = positive_int(cfg, "rapidin", "shuffle_lambda", 20, minimum=0)
        self.lora = bool(cfg_get(cfg, "lora", False))
        self.reduction = choice(cfg, "rapidin", "loss_reduction", "mean", REDUCTIONS)
        self.storage = choice(cfg, "rapidin", "storage", "memmap", ("memmap", "memory"))
        self.dtype = np.dtype(choice(cfg, "rapidin", "dtype", "float32", ("float32", "float16")))
        self.batch_rows = positive_int(cfg, "rapidin", "compress_batch", 16)
        seed = cfg_get(cfg, "seed", None)
        self.seed = int(ctx.seed if seed is None else seed)
        self._params: list[torch.nn.Parameter] | None = None
        self._compressor: RapidGrad | None = None
        self.train_vectors: np.ndarray | None = None

    def _setup(self) -> None:
        if self._compressor is not None:
            return
        named = select_params(self.ctx.model, self.lora)
        self._params = [p for _, p in named]
        dim = sum(p.numel() for p in self._params)
        self._compressor = RapidGrad(dim, self.k, self.shuffle_lambda, self.seed, device=model_device(self.ctx.model))

    def compress_rows(self, rows: Sequence[EncodedRow], out: np.ndarray) -> None:
        """Write the compressed layer-normalised gradient of every row into ``out[i]``."""
        self._setup()
        assert self._params is not None and self._compressor is not None
        pending: list[torch.Tensor] = []
        start = 0
        grads_iter = per_example_grads(self.ctx.model, rows, self._params, pad_id(self.ctx.tokenizer), self.reduction)
        for i, grads in enumerate(grads_iter):
            pending.append(layer_normalised_flat(grads))
            if len(pending) == self.batch_rows or i == len(rows) - 1:
                comp = self._compressor(torch.stack(pending)).cpu().numpy()
                out[start : start + len(pending)] = comp.astype(out.dtype, copy=False)
                start += len(pending)
                pending = []

    def build(self, train: Sequence[Record]) -> None:
        rows = encode_all(train, self.ctx)
        shape = (len(rows), self.k)
        if self.storage == "memmap":
            path = Path(self.ctx.work_dir) / "rapidin_grads.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            store = np.lib.format.open_memmap(path, mode="w+", dtype=self.dtype, shape=shape)
        else:
            store = np.zeros(shape, dtype=self.dtype)
        was_training = self.ctx.model.training
        self.ctx.model.eval()
        try:
            self.compress_rows(rows, store)
        finally:
            self.ctx.model.train(was_training)
        if isinstance(store, np.memmap):
            store.flush()
        self.train_vectors = store
        self.index_bytes = int(store.size * store.itemsize)

    def score(self, queries: Sequence[Record]) -> np.ndarray:
        if self.train_vectors is None:
            raise RuntimeError("RapidIn.score called before build")
        rows = encode_all(queries, self.ctx)
        q = np.zeros((len(rows), self.k), dtype=np.float32)
        self.ctx.model.eval()
        self.compress_rows(rows, q)
        out = np.empty((len(rows), self.train_vectors.shape[0]), dtype=np.float32)
        block = 4096
        for s in range(0, self.train_vectors.shape[0], block):
            out[:, s : s + block] = q @ np.asarray(self.train_vectors[s : s + block], dtype=np.float32).T
        return out
