"""STRIDE (Dagli et al., "STRIDE: Training Data Attribution via Sparse Recovery from Subset
Perturbations", arXiv 2606.05165, 2026).

1. Design: ``S`` random subsets of the training pool, each example in exactly ``subsets_per_example``
   of them (membership ``M [S, N]``, :mod:`rise_exp.methods._sparse_recovery`).
2. Operators: one low-rank steering operator per subset at block ``layer``
   (``h <- h + B_k A h``, :mod:`rise_exp.methods._steering`), trained with the base model frozen on
   ``fidelity + stability_weight * stability (+ weight_decay ||B_k||^2)``: fidelity is the LM loss of the
   subset's members under operator ``k`` (mimicking training on the subset), stability the token KL
   ``KL(p_base || p_k)`` on non-members. Operators are trained jointly, a random group per step.
3. Measurements: ``y[k, q] = loss_q(base) - loss_q(operator k)`` (loss reduction).
4. Recovery: per query, Lasso of ``y[:, q]`` on ``M`` with ``alpha_q = lasso_alpha_ratio * alpha_max_q``;
   the coefficient of example ``n`` is its influence on ``q`` (higher = training on it helps ``q`` more).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rise_exp.core import progress
from rise_exp.core.errors import ConfigError
from rise_exp.core.hashing import config_hash
from rise_exp.core.names import safe_component
from rise_exp.data.encoding import EncodedRow, collate, rows_hash, token_budget_batches
from rise_exp.data.records import Record
from rise_exp.methods.base import AttributionMethod, MethodContext
from rise_exp.methods.common import encode_all, forward_logits, pad_id
from rise_exp.methods.stride.config import StrideConfig
from rise_exp.methods.stride.operator_store import StoredOperators, load_operators, save_operators
from rise_exp.methods.stride.prefix import PrefixReplay
from rise_exp.methods.stride.sparse_recovery import balanced_membership, lasso_recover
from rise_exp.methods.stride.steering import SteeringBank
from rise_exp.models.layers import decoder_layers
from rise_exp.models.placement import model_device
from rise_exp.training.losses import row_loss
from rise_exp.training.model_losses import row_losses

log = logging.getLogger(__name__)

#: Settings that do not shape the trained operators (the Lasso's, and whether stored ones are reused): left out
#: of the key of the stored operators.
UNKEYED_SETTINGS = ("lasso_alpha_ratio", "lasso_max_iter", "reuse_operators")


def auto_layer(num_layers: int) -> int:
    """Block steered by default: about two thirds of the depth (the paper's layer 8 of 12)."""
    return min(num_layers - 1, max(0, round(2 * num_layers / 3)))


class Stride(AttributionMethod):
    """Steering operators on random subsets, influences recovered by Lasso."""

    name = "stride"

    def __init__(self, cfg: StrideConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        cfg = self.cfg
        self.n_subsets_cfg = cfg.n_subsets
        self.max_subsets = cfg.max_subsets
        self.per_example = cfg.subsets_per_example
        self.rank = cfg.rank
        self.layer_cfg = cfg.layer
        self.steps = cfg.steps
        self.ops_per_step = cfg.operators_per_step
        self.member_batch = cfg.member_batch
        self.nonmember_batch = cfg.nonmember_batch
        self.lr = cfg.lr
        self.stability_weight = cfg.stability_weight
        self.weight_decay = cfg.weight_decay
        self.alpha_ratio = cfg.lasso_alpha_ratio
        self.lasso_iter = cfg.lasso_max_iter
        self.max_tokens = cfg.max_tokens
        self.replay_prefix = cfg.replay_prefix
        self.seed: int = cfg.seed
        self.membership: np.ndarray | None = None
        self.bank: SteeringBank | None = None
        self.layer: int | None = None
        self.train_log: list[float] = []
        self._prefix: PrefixReplay | None = None
        self._hidden: list[torch.Tensor] | None = None  # stored block outputs of the rows being steered

    # ----------------------------------------------------------------- settings
    def _n_subsets(self, n: int) -> int:
        if self.n_subsets_cfg is None:
            return max(self.per_example, min(self.max_subsets, n))
        return self.n_subsets_cfg

    def _layer(self, num_layers: int) -> int:
        if self.layer_cfg is None:
            return auto_layer(num_layers)
        value = self.layer_cfg
        if not -num_layers <= value < num_layers:
            raise ConfigError(f"method.layer must be null (auto) or a block index in [0, {num_layers}), got {value!r}")
        return value % num_layers

    # ----------------------------------------------------------------- training
    def _steered_logits(
        self, rows: Sequence[EncodedRow], ops: Sequence[int]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert self.bank is not None
        batch = collate(rows, pad_id(self.ctx.tokenizer))
        self.bank.op_ids = torch.tensor(list(ops), dtype=torch.long)
        self._load_prefix(rows, batch)
        return forward_logits(self.ctx.model, batch), batch

    def _load_prefix(self, rows: Sequence[EncodedRow], batch: dict[str, torch.Tensor]) -> None:
        """When replaying, hand the stand-in block the stored outputs of ``rows`` (row id = position)."""
        if self._prefix is not None and self._hidden is not None:
            self._prefix.load([self._hidden[r.row] for r in rows], batch["input_ids"].shape[1])

    @contextmanager
    def _steering(self, rows: Sequence[EncodedRow]) -> Iterator[None]:
        """The operators hooked on the steered block; with ``replay_prefix`` the blocks up to it are computed
        once for ``rows`` and replayed (full passes when a block's output is not a plain tensor)."""
        assert self.bank is not None and self.layer is not None
        model = self.ctx.model
        layers = decoder_layers(model)
        hidden = None
        if self.replay_prefix:
            prefix = PrefixReplay(layers, self.layer)
            hidden = prefix.block_outputs(model, rows, pad_id(self.ctx.tokenizer), self.max_tokens)
        if hidden is None:
            with self.bank.attached(layers[self.layer]):
                yield
            return
        self._prefix, self._hidden = prefix, hidden
        try:
            with prefix.replaying() as stand_in, self.bank.attached(stand_in):
                yield
        finally:
            self._prefix = self._hidden = None

    def _train_operators(self, rows: Sequence[EncodedRow], rng: np.random.Generator) -> None:
        assert self.bank is not None and self.membership is not None
        members = [np.flatnonzero(m) for m in self.membership]
        n = len(rows)
        opt = torch.optim.Adam(self.bank.parameters(), lr=self.lr)
        n_ops = self.membership.shape[0]
        for _ in progress.bar(self.steps, "stride operators", unit="step", iterable=range(self.steps)):
            ops = rng.choice(n_ops, size=min(self.ops_per_step, n_ops), replace=False)
            fid_rows, fid_ops, stab_rows, stab_ops = [], [], [], []
            for k in ops:
                mem = members[k]
                for i in rng.choice(mem, size=min(self.member_batch, len(mem)), replace=False):
                    fid_rows.append(rows[i])
                    fid_ops.append(int(k))
                outside = rng.integers(0, n, size=4 * self.nonmember_batch)
                outside = [i for i in outside if not self.membership[k, i]][: self.nonmember_batch]
                for i in outside:
                    stab_rows.append(rows[i])
                    stab_ops.append(int(k))
            opt.zero_grad(set_to_none=True)
            loss = self._fidelity(fid_rows, fid_ops)
            if stab_rows and self.stability_weight > 0:
                loss += self.stability_weight * self._stability(stab_rows, stab_ops)
            if self.weight_decay > 0:
                decay = self.weight_decay * self.bank.write[torch.as_tensor(ops)].pow(2).sum() / len(ops)
                decay.backward()
                loss += float(decay.detach())
            opt.step()
            self.train_log.append(loss)

    def _micro_batches(self, rows: Sequence[EncodedRow]) -> list[list[int]]:
        """Token-budget groups of a step's rows (``max_tokens``), so a step's ``[tokens, V]`` tensors stay bounded."""
        return token_budget_batches(rows, self.max_tokens)

    def _fidelity(self, rows: Sequence[EncodedRow], ops: Sequence[int]) -> float:
        """Backpropagate the mean over ``rows`` of their LM loss under their operators; returns its value."""
        device, total = model_device(self.ctx.model), 0.0
        for idx in self._micro_batches(rows):
            logits, batch = self._steered_logits([rows[i] for i in idx], [ops[i] for i in idx])
            part = row_loss(logits, batch["input_ids"].to(device), batch["target_mask"].to(device)).sum() / len(rows)
            part.backward()
            total += float(part.detach())
        return total

    def _stability(self, rows: Sequence[EncodedRow], ops: Sequence[int]) -> float:
        """Backpropagate ``stability_weight`` x the mean over ``rows``' target tokens of ``KL(p_base || p_steered)``;
        returns the (unweighted) mean."""
        device, total = model_device(self.ctx.model), 0.0
        tokens = max(1, sum(int(r.target_mask[1:].sum()) for r in rows))
        for idx in self._micro_batches(rows):
            part_rows, part_ops = [rows[i] for i in idx], [ops[i] for i in idx]
            with torch.no_grad():
                base_logits, _ = self._steered_logits(part_rows, [-1] * len(idx))
                base_logp = F.log_softmax(base_logits[:, :-1].float(), dim=-1)
                del base_logits
            logits, batch = self._steered_logits(part_rows, part_ops)
            mask = batch["target_mask"][:, 1:].to(device)
            logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
            kl = (base_logp.exp() * (base_logp - logp)).sum(-1)
            part = (kl * mask).sum() / tokens
            (self.stability_weight * part).backward()
            total += float(part.detach())
        return total

    # ----------------------------------------------------------------- stored operators
    def operator_file(self, rows: Sequence[EncodedRow]) -> Path | None:
        """Where the operators trained on ``rows`` are stored (``<cache>/indexes/stride-operators``), keyed by
        the model, its dtype, the exact tokens and target masks, the seed and every setting that shapes
        training; None outside a pipeline (no index cache, no model identity)."""
        if self.ctx.index_root is None or not self.ctx.model_id:
            return None
        settings = {k: v for k, v in self.cfg.to_dict().items() if k not in UNKEYED_SETTINGS}
        settings["seed"] = None  # keyed once, as "seed" (resolved); the slot keeps the keys of null-seed runs
        key = {
            "model": self.ctx.model_id,
            "dtype": str(next(self.ctx.model.parameters()).dtype),
            "data": rows_hash(rows),
            "seed": self.seed,
            "settings": settings,
        }
        return (
            Path(self.ctx.index_root)
            / "stride-operators"
            / f"{safe_component(self.ctx.data_name)}-{config_hash(key, n=16)}.safetensors"
        )

    def _restore(self, path: Path | None, n_rows: int, n_ops: int, hidden: int) -> bool:
        """Load stored operators into the built bank; False when there are none to use."""
        assert self.bank is not None
        if path is None or not self.cfg.reuse_operators:
            return False
        state = load_operators(path, n_ops=n_ops, n_rows=n_rows, hidden=hidden, rank=self.bank.read.shape[0])
        if state is None:
            return False
        with torch.no_grad():
            self.bank.read.copy_(state.read)
            self.bank.write.copy_(state.write)
        self.membership, self.layer, self.train_log = state.membership, state.layer, state.train_log
        log.info("stride: reusing the operators stored in %s (method.reuse_operators=false retrains)", path)
        return True

    def _store(self, path: Path) -> None:
        """Save the trained operators; a failed write (disk full, a concurrent identical run) only warns, as
        the operators in memory are still used by this run."""
        assert self.bank is not None and self.membership is not None and self.layer is not None
        try:
            save_operators(
                path, StoredOperators(self.bank.read, self.bank.write, self.membership, self.layer, self.train_log)
            )
        except OSError as exc:
            log.warning("stride: could not store the operators in %s (%s); this run goes on without", path, exc)

    # ----------------------------------------------------------------- API
    def build(self, train: Sequence[Record]) -> None:
        rows = encode_all(train, self.ctx)
        model = self.ctx.model
        layers = decoder_layers(model)
        self.layer = self._layer(len(layers))
        rng = np.random.default_rng(self.seed)
        n_ops = self._n_subsets(len(rows))
        self.membership = balanced_membership(len(rows), n_ops, self.per_example, rng)
        hidden = int(model.config.hidden_size)
        gen = torch.Generator().manual_seed(self.seed)
        self.bank = SteeringBank(n_ops, hidden, min(self.rank, hidden), gen).to(model_device(model))
        self.train_log = []
        path = self.operator_file(rows)
        if not self._restore(path, len(rows), n_ops, hidden):
            self._train(rows, rng)
            if path is not None:
                self._store(path)
        state = sum(p.numel() * p.element_size() for p in self.bank.parameters())
        self.index_bytes = int(state + self.membership.nbytes)

    def _train(self, rows: Sequence[EncodedRow], rng: np.random.Generator) -> None:
        """Train the operators with the base model frozen (its flags and mode restored after)."""
        model = self.ctx.model
        flags = [p.requires_grad for p in model.parameters()]
        was_training = model.training
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        try:
            with self._steering(rows):
                self._train_operators(rows, rng)
        finally:
            for p, f in zip(model.parameters(), flags):
                p.requires_grad_(f)
            model.train(was_training)

    @torch.no_grad()
    def measure(self, queries: Sequence[Record]) -> np.ndarray:
        """Loss reduction ``[S, Q]`` of every query under every operator."""
        if self.bank is None or self.membership is None or self.layer is None:
            raise RuntimeError("Stride.score called before build")
        rows = encode_all(queries, self.ctx)
        model, device = self.ctx.model, model_device(self.ctx.model)
        model.eval()
        pad = pad_id(self.ctx.tokenizer)
        n_ops = self.membership.shape[0]
        base = row_losses(model, rows, pad, max_tokens=self.max_tokens).numpy()
        with self._steering(rows):
            out = np.zeros((n_ops, len(rows)), dtype=np.float64)
            pairs = [(k, q) for q in range(len(rows)) for k in range(n_ops)]
            paired = [rows[q] for _, q in pairs]
            batches = token_budget_batches(paired, self.max_tokens)
            for idx in progress.bar(len(batches), "stride measurements", unit="batch", iterable=batches):
                batch = collate([paired[i] for i in idx], pad)
                self.bank.op_ids = torch.tensor([pairs[i][0] for i in idx], dtype=torch.long)
                self._load_prefix([paired[i] for i in idx], batch)
                logits = forward_logits(model, batch)
                loss = row_loss(logits, batch["input_ids"].to(device), batch["target_mask"].to(device))
                for i, value in zip(idx, loss.double().cpu().numpy()):
                    k, q = pairs[i]
                    out[k, q] = base[q] - value
        return out

    def score(self, queries: Sequence[Record]) -> np.ndarray:
        y = self.measure(queries)
        assert self.membership is not None
        beta = lasso_recover(self.membership.astype(np.float64), y, self.alpha_ratio, max_iter=self.lasso_iter)
        return beta.T.astype(np.float32)
