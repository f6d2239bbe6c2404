"""RapidIn (Lin et al., "Token-wise Influential Training Data Retrieval for Large Language Models", ACL 2024).

Per example ``x``: the gradient of its LM loss over the trainable parameters (all parameters, or only
the LoRA adapter's when ``lora: true``), each parameter tensor's gradient L2-normalised (layer-wise
normalisation), concatenated, and compressed by RapidGrad (:mod:`rise_exp.methods.rapidin.rapidgrad`)
to ``K = 2^16`` entries. The influence of training row ``n`` on query ``q`` is ``<C(g_q), C(g_n)>``.
Gradients are taken one row at a time (exact, no ``[N, P]`` matrix); the ``[N, K]`` compressed vectors
go into the method's on-disk index (:class:`~rise_exp.methods.vectors.VectorIndexMethod`).

``ensemble: E`` compresses each gradient with E independently seeded RapidGrads (member ``e``: seed
``seed + 1000 e``) and stores ``[C_1(g), .., C_E(g)] / sqrt(E)``: the score is the members' mean, and
each member's own score (the single compression of its seed) is ``E`` times its slice's inner product,
so E compression seeds cost one gradient pass (``stage.members=true``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from rise_exp.core import progress
from rise_exp.core.errors import ConfigError
from rise_exp.data.encoding import EncodedRow, collate
from rise_exp.data.records import Record
from rise_exp.index import IndexWriter
from rise_exp.methods.base import MethodContext
from rise_exp.methods.common import batch_row_loss, encode_all, pad_id
from rise_exp.methods.explanation import PairExplanation
from rise_exp.methods.rapidin.config import RapidInConfig
from rise_exp.methods.rapidin.rapidgrad import RapidGrad
from rise_exp.methods.vectors import PendingBlocks, VectorIndexMethod, stores_tokens
from rise_exp.models.placement import model_device


def select_params(model: torch.nn.Module, lora: bool) -> list[tuple[str, torch.nn.Parameter]]:
    """Parameters whose gradients RapidIn uses.

    Raises:
        ConfigError: if ``lora`` is requested but the model carries no LoRA adapter.
    """
    named = list(model.named_parameters())
    if not lora:
        return named
    lora_params = [(n, p) for n, p in named if "lora_" in n]
    if not lora_params:
        raise ConfigError(
            "method.lora=true needs a model with LoRA adapter layers, but the model has no 'lora_' parameters; "
            "finetune with finetune=lora (pip install 'rise-exp[lora]') or set method.lora=false to use all "
            "parameters"
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
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    try:
        for row in rows:
            loss = batch_row_loss(model, collate([row], pad), reduction)
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


class RapidIn(VectorIndexMethod):
    """Layer-normalised per-example gradients compressed by RapidGrad; influence = inner product."""

    name = "rapidin"

    def __init__(self, cfg: RapidInConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        self.seed: int = self.cfg.seed
        self.dtype = self.cfg.dtype
        self._params: list[torch.nn.Parameter] | None = None
        self._compressors: list[RapidGrad] = []

    @property
    def dim(self) -> int:
        return self.cfg.k * self.cfg.ensemble

    def member_scale(self) -> float:
        return float(self.cfg.ensemble)

    def identity(self) -> dict[str, Any]:
        c = self.cfg
        return {
            "k": c.k,
            "shuffle_lambda": c.shuffle_lambda,
            "lora": c.lora,
            "loss_reduction": c.loss_reduction,
            "dtype": c.dtype,
            "seed": self.seed,
            "max_length": self.ctx.max_length,
            # only when set, so indexes built before the setting existed keep their keys
            **({"ensemble": c.ensemble} if c.ensemble > 1 else {}),
        }

    def index_settings(self) -> RapidInConfig:
        return self.cfg

    def plan_batches(self, rows: Sequence[EncodedRow]) -> list[list[int]]:
        """Rows in pool order, ``compress_batch`` per batch (RapidGrad compresses a batch together)."""
        ids, step = [r.row for r in rows], self.cfg.compress_batch
        return [ids[i : i + step] for i in range(0, len(ids), step)]

    def plan_params(self) -> dict[str, Any]:
        return {"compress_batch": self.cfg.compress_batch}

    def encode(self, records: Sequence[Record], role: str) -> list[EncodedRow]:
        return encode_all(records, self.ctx)

    def _setup(self) -> None:
        if self._compressors:
            return
        named = select_params(self.ctx.model, self.cfg.lora)
        self._params = [p for _, p in named]
        dim, device = sum(p.numel() for p in self._params), model_device(self.ctx.model)
        seeds = self.member_seeds() or [self.seed]
        self._compressors = [RapidGrad(dim, self.cfg.k, self.cfg.shuffle_lambda, s, device=device) for s in seeds]

    def _compress(self, flat: torch.Tensor) -> torch.Tensor:
        """``[B, P]`` layer-normalised gradients -> ``[B, E * K]``: the members side by side, over sqrt(E)."""
        if len(self._compressors) == 1:
            return self._compressors[0](flat)
        parts = [c(flat) for c in self._compressors]
        return torch.cat(parts, dim=1) / float(len(parts)) ** 0.5

    def compressed(self, rows: Sequence[EncodedRow], bar: Any = None) -> Iterator[np.ndarray]:
        """Compressed layer-normalised gradients, float32 ``[<= compress_batch, K]`` per yielded chunk
        (``bar``: a progress bar to advance by one per row; default: a bar of its own over ``rows``)."""
        self._setup()
        assert self._params is not None
        model = self.ctx.model
        was_training = model.training
        model.eval()
        pending: list[torch.Tensor] = []
        own_bar = bar is None
        bar = progress.bar(len(rows), "rapidin gradients", unit="row") if own_bar else bar
        try:
            grads = per_example_grads(model, rows, self._params, pad_id(self.ctx.tokenizer), self.cfg.loss_reduction)
            for i, g in enumerate(grads):
                pending.append(layer_normalised_flat(g))
                bar.update(1)
                if len(pending) == self.cfg.compress_batch or i == len(rows) - 1:
                    yield self._compress(torch.stack(pending)).cpu().numpy()
                    pending = []
        finally:
            if own_bar:
                bar.close()
            model.train(was_training)

    def compute_blocks(self, work: PendingBlocks) -> None:
        writer = IndexWriter(work.path, resume=True, **work.writer_args)
        by_id = {r.row: r for r in work.rows}
        keep_tokens = stores_tokens(work.writer_args["num_rows"], self.cfg.store_tokens)
        bar = progress.bar(work.num_rows, "rapidin gradients", unit="row")
        try:
            for block in work.blocks:
                batches = work.plan.block_batches(block)
                vecs = [v for batch in batches for v in self.compressed([by_id[i] for i in batch], bar)]
                ids = work.plan.block_rows(block)
                rows = [by_id[int(i)] for i in ids] if keep_tokens else None
                writer.write_block(
                    block,
                    ids,
                    np.concatenate(vecs),
                    tokens=None if rows is None else [r.input_ids for r in rows],
                    masks=None if rows is None else [r.target_mask for r in rows],
                    meta=[self.row_meta[int(i)] for i in ids],
                )
        finally:
            bar.close()

    def query_vectors(self, records: Sequence[Record]) -> np.ndarray:
        rows = self.encode(records, "query")
        chunks = list(self.compressed(rows))
        return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, self.dim), np.float32)

    def explain_unavailable(self) -> str | None:
        if self.cfg.lora:
            return None
        return (
            "RapidIn on every parameter: a token's share needs one backward pass and a gradient of all parameters "
            "per token, not computed here (method.lora=true splits the adapter's gradients by token)"
        )

    def explain(
        self, queries: Sequence[Record], rows: Sequence[Sequence[int]], pool: Sequence[Record] | None = None
    ) -> list[list[PairExplanation]]:
        """Per-token gradient shares on the adapter (:mod:`~rise_exp.methods.rapidin.explain`); the rows are
        the tokens stored in the index (else encoded from ``pool``)."""
        from rise_exp.methods.rapidin.explain import explain_pairs, token_gradients

        reason = self.explain_unavailable()
        if reason:
            raise NotImplementedError(reason)
        self._setup()
        assert self._params is not None
        model, pad, params = self.ctx.model, pad_id(self.ctx.tokenizer), self._params
        was_training = model.training
        model.eval()

        def gradients(row: EncodedRow, per_token: bool) -> Any:
            return token_gradients(model, params, self._compress, row, pad, self.cfg.loss_reduction, per_token)

        try:
            return explain_pairs(
                self.ctx.tokenizer,
                gradients,
                self.encode(queries, "query"),
                rows,
                lambda i: self.stored_row(i, pool),
            )
        finally:
            model.train(was_training)
