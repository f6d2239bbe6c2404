r"""TrackStar (Chang et al., arXiv 2410.17413) through bergson's gradient collection.

For every ``nn.Linear`` module ``m`` of the model's trunk (``model.base_model``, as bergson collects; the LM
head is not among them) and row ``x``: the weight gradient ``G_m(x)`` of the row's masked token loss,
divided elementwise by ``sqrt(V_m) + 1e-8`` (``normalizer: pool``: ``V_m`` the mean over the training pool
of the squared per-row gradients, standing in for the optimiser's second moments, which the finetunes do not
keep; ``none``: no division), projected to ``L_m G R_m^T`` (``k x k``, bergson's seeded Rademacher
matrices). With ``preconditioner: pool`` each module's projected gradient is multiplied by ``R_m^{-1/2}``,
``R_m`` the autocorrelation of those gradients over the training pool (damped, inverted by bergson's
``invert_psd_matrix``): TrackStar's preconditioner with the pool's statistics, not the paper's mix of pool
and evaluation-task statistics. The row's vector is the concatenation over modules, unit-normalised; the
score of row ``x`` for query ``q`` is the cosine ``<v(q), v(x)>``.

The training vectors are bergson's gradient store, cached in ``<cache>/indexes/<data>-trackstar-<key>/``
(the key hashes the model identity and dtype, the exact tokens and masks, and the settings), built in
``<dir>.part`` and renamed when complete: a killed build is rebuilt, never read.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from rise_exp.core import progress
from rise_exp.core.errors import ConfigError
from rise_exp.core.hashing import config_hash
from rise_exp.core.locks import cache_lock
from rise_exp.data.encoding import EncodedRow, collate, rows_hash
from rise_exp.data.records import Record
from rise_exp.methods.base import AttributionMethod, MethodContext
from rise_exp.methods.common import batch_row_loss, encode_all, pad_id
from rise_exp.methods.trackstar.config import TrackStarConfig
from rise_exp.models.placement import full_precision, model_device

log = logging.getLogger(__name__)

#: The pool's second moments (``normalizer: pool``), stored in the gradient store beside bergson's files.
MOMENTS = "second_moments.safetensors"
INSTALL = "pip install 'rise-exp[trackstar]' && pip install --no-deps bergson==2.5.1"


def require_bergson() -> Any:
    """The ``bergson`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import bergson
    except ImportError as exc:
        raise ConfigError(f"method=trackstar needs bergson ({exc}); install it with: {INSTALL}") from exc
    return bergson


def trunk_linear_modules(model: torch.nn.Module, pattern: str = "") -> list[str]:
    """Names (relative to ``model.base_model``, as bergson keys them) of the trunk's ``nn.Linear`` modules
    matching ``pattern`` (empty: all of them).

    Raises:
        ConfigError: if none matches.
    """
    linear = [n for n, m in model.base_model.named_modules() if isinstance(m, torch.nn.Linear)]
    names = [n for n in linear if re.search(pattern, n)]
    if not names:
        raise ConfigError(f"method.modules={pattern!r} matches no nn.Linear module of the model (some: {linear[:4]})")
    return names


@contextmanager
def trainable(model: torch.nn.Module, modules: Sequence[str]) -> Iterator[None]:
    """The weights of ``modules`` require gradients within the block (bergson needs them to; a PEFT adapter
    loads frozen), every flag restored on exit."""
    named = dict(model.base_model.named_modules())
    weights = [named[m].weight for m in modules]
    flags = [w.requires_grad for w in weights]
    try:
        for w in weights:
            w.requires_grad_(True)
        yield
    finally:
        for w, f in zip(weights, flags, strict=True):
            w.requires_grad_(f)


def pool_second_moments(
    model: torch.nn.Module, rows: Sequence[EncodedRow], pad: int, modules: Sequence[str], reduction: str
) -> dict[str, torch.Tensor]:
    """Mean over ``rows`` of each module's squared per-row weight gradient ``[out, in]`` (float32)."""
    named = dict(model.base_model.named_modules())
    weights = [named[m].weight for m in modules]
    sums = [torch.zeros_like(w, dtype=torch.float32) for w in weights]
    with trainable(model, modules):
        for row in progress.bar(len(rows), "trackstar second moments", iterable=rows):
            loss = batch_row_loss(model, collate([row], pad), reduction).sum()
            for s, g in zip(sums, torch.autograd.grad(loss, weights)):
                s += g.float() ** 2
    return {m: s / max(len(rows), 1) for m, s in zip(modules, sums)}


def load_moments(store: Path) -> dict[str, torch.Tensor] | None:
    """The pool's second moments stored with a gradient store, or None if it has none."""
    path = store / MOMENTS
    return load_file(str(path)) if path.is_file() else None


def module_sizes(store: Path) -> list[int]:
    """The column count of each module's block in a gradient store, in its column order (bergson's info)."""
    return [int(n) for n in json.loads((store / "info.json").read_text())["grad_sizes"].values()]


def pool_whiteners(vectors: np.ndarray, sizes: Sequence[int], damping: float) -> list[tuple[int, int, np.ndarray]]:
    """Per module block ``[lo, hi)`` of ``vectors [N, dim]``: ``R^{-1/2}``, ``R`` the block's autocorrelation
    ``X^T X / N``, eigenvalues damped by ``damping`` x their mean (bergson's ``invert_psd_matrix``)."""
    from bergson.hessians.inversion import invert_psd_matrix

    out, lo = [], 0
    for size in sizes:
        block = torch.from_numpy(np.ascontiguousarray(vectors[:, lo : lo + size], dtype=np.float64))
        gram = block.T @ block / max(len(vectors), 1)
        out.append((lo, lo + size, invert_psd_matrix(gram, damping_factor=damping, power=-0.5).float().numpy()))
        lo += size
    return out


def precondition(vectors: np.ndarray, whiteners: Sequence[tuple[int, int, np.ndarray]]) -> np.ndarray:
    """``vectors`` with each module block multiplied by its ``R^{-1/2}`` (no whiteners: unchanged)."""
    if not whiteners:
        return vectors
    return np.concatenate([vectors[:, lo:hi] @ w for lo, hi, w in whiteners], axis=1)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm (a zero row stays zero)."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


class TrackStar(AttributionMethod):
    """Unit-normalised, second-moment-normalised, projected per-module gradients; score = cosine."""

    name = "trackstar"

    def __init__(self, cfg: TrackStarConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        self.bergson = require_bergson()
        self.seed = int(ctx.seed if self.cfg.seed is None else self.cfg.seed)
        self.normalizers: dict[str, Any] = {}
        self.whiteners: list[tuple[int, int, np.ndarray]] = []
        self.train_vectors: np.ndarray | None = None
        self.store: Path | None = None
        self._queries_made = 0

    def identity(self) -> dict[str, Any]:
        """The settings the stored gradients depend on."""
        c = self.cfg
        return {
            "projection_dim": c.projection_dim,
            "normalizer": c.normalizer,
            "loss_reduction": c.loss_reduction,
            **({"modules": c.modules} if c.modules else {}),  # (absent when empty: earlier stores keep their key)
            "seed": self.seed,
            "bergson": self.bergson.__version__,
        }

    def cache_key(self, data_hash: str) -> dict[str, Any]:
        dtype = str(next(self.ctx.model.parameters()).dtype)
        return {"model": self.ctx.model_id, "model_dtype": dtype, "method": self.identity(), "data": data_hash}

    def store_dir(self, data_hash: str) -> Path:
        """``<cache>/indexes/<data>-trackstar-<key>`` (the run's work dir when there is no cache)."""
        root = Path(self.ctx.index_root if self.ctx.index_root is not None else self.ctx.work_dir)
        return root / f"{self.ctx.data_name}-{self.name}-{config_hash(self.cache_key(data_hash), n=12)}"

    def _collect(
        self, rows: Sequence[EncodedRow], path: Path, moments: dict[str, torch.Tensor] | None = None
    ) -> np.ndarray:
        """bergson's projected, normalised gradients of ``rows`` written to ``path`` -> ``[rows, dim]`` float32;
        ``moments`` (the pool's second moments) are stored with them, so a reused store needs no recomputation."""
        from bergson import GradientProcessor, IndexConfig, collect_gradients, load_gradients
        from datasets import Dataset

        data = Dataset.from_dict(
            {
                "input_ids": [r.input_ids.tolist() for r in rows],
                "labels": [np.where(r.target_mask, r.input_ids, -100).tolist() for r in rows],
            }
        )
        cfg = IndexConfig(
            run_path=str(path),
            projection_dim=self.cfg.projection_dim,
            projection_seed=self.seed,
            loss_reduction=self.cfg.loss_reduction,
        )
        processor = GradientProcessor(
            self.normalizers, projection_dim=self.cfg.projection_dim, projection_seed=self.seed
        )
        part = Path(cfg.partial_run_path)
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        batches = [
            list(range(i, min(i + self.cfg.batch_rows, len(rows)))) for i in range(0, len(rows), self.cfg.batch_rows)
        ]
        # outside autocast (trainer.precision=bf16-mixed): bergson clamps each gradient to the range of the weights'
        # dtype, which a bf16 gradient cannot hold when the weights are float32 (an overflow error)
        modules = trunk_linear_modules(self.ctx.model, self.cfg.modules)
        with full_precision(model_device(self.ctx.model)), trainable(self.ctx.model, modules):
            collect_gradients(  # (its hooks end with the call)
                self.ctx.model,
                data,
                processor,
                cfg,
                batches=batches,
                target_modules=set(modules) if self.cfg.modules else None,
            )
        if moments:
            save_file({m: v.contiguous() for m, v in moments.items()}, str(part / MOMENTS))
        part.rename(path)
        return np.asarray(load_gradients(path), dtype=np.float32)

    def build(self, train: Sequence[Record]) -> None:
        rows = encode_all(train, self.ctx)
        path = self.store_dir(rows_hash(rows))
        with cache_lock(path, f"the TrackStar gradients {path}"):
            reuse = path.is_dir() and self.cfg.reuse
            moments = load_moments(path) if reuse else None
            if self.cfg.normalizer == "pool" and moments is None:
                with full_precision(model_device(self.ctx.model)):  # the moments of the gradients bergson collects
                    moments = pool_second_moments(
                        self.ctx.model,
                        rows,
                        pad_id(self.ctx.tokenizer),
                        trunk_linear_modules(self.ctx.model, self.cfg.modules),
                        self.cfg.loss_reduction,
                    )
            self._set_normalizers(moments)
            if reuse:
                log.info("trackstar: reusing the gradients in %s", path)
            else:
                shutil.rmtree(path, ignore_errors=True)
                self._collect(rows, path, moments)
        self.store = path
        raw = np.asarray(self.bergson.load_gradients(path), dtype=np.float32)
        self.whiteners = []
        if self.cfg.preconditioner == "pool":
            self.whiteners = pool_whiteners(raw, module_sizes(path), self.cfg.preconditioner_damping)
        self.train_vectors = unit_rows(precondition(raw, self.whiteners))
        self.index_bytes = int((path / "gradients.bin").stat().st_size)

    def _set_normalizers(self, moments: dict[str, torch.Tensor] | None) -> None:
        from bergson.gradients import AdamNormalizer

        self.normalizers = {m: AdamNormalizer(weight_avg_sq=v) for m, v in (moments or {}).items()}

    def score(self, queries: Sequence[Record]) -> np.ndarray:
        if self.train_vectors is None:
            raise RuntimeError("TrackStar.score called before build")
        self._queries_made += 1
        path = Path(self.ctx.work_dir) / f"trackstar-queries-{self._queries_made}"
        try:
            q = unit_rows(precondition(self._collect(encode_all(queries, self.ctx), path), self.whiteners))
        finally:
            shutil.rmtree(path, ignore_errors=True)
        return (q @ self.train_vectors.T).astype(np.float32)
