r"""EK-FAC influence functions through kronfluence (Grosse et al., arXiv 2308.03296; George et al., "Fast
Approximate Natural Gradient Descent in a Kronecker-factored Eigenbasis", NeurIPS 2018).

For every tracked ``nn.Linear`` module ``m`` (weight gradient ``G_m`` of a row's loss, the bias as a last
column), kronfluence fits on the training pool the activation and pre-activation-gradient covariances
``A_m = Q_A diag(.) Q_A^T`` and ``S_m = Q_S diag(.) Q_S^T`` and, for EK-FAC, the corrected eigenvalues
``Lambda_m = E[(Q_S^T G_m Q_A)^2]``. The influence of training row ``x`` on query ``q`` is

    I(q, x) = sum_m <Q_S ((Q_S^T G_m(q) Q_A) / (Lambda_m + lambda)) Q_A^T, G_m(x)>
            = sum_m vec G_m(q)^T (F_m + lambda I)^{-1} vec G_m(x),   F_m = (Q_S (x) Q_A) diag(Lambda_m) (Q_S (x) Q_A)^T,

the damped inverse-Fisher inner product of the two loss gradients (block-diagonal over modules), "higher =
training on x lowers q's loss". ``strategy: kfac`` uses ``Lambda = outer(eig S, eig A)``; ``diagonal`` the
diagonal Fisher. The Fisher is taken with tokens sampled from the model (the true Fisher, kronfluence's
default) or with the observed tokens (``empirical_fisher: true``). Losses are the project's masked token
loss (``training/losses.py``) under the run's token rule.

The fitted factors are cached in ``<cache>/indexes/<data>-ekfac-<key>/`` (the key hashes the model identity
and dtype, the exact tokens and masks, and every setting the factors depend on; damping, the query rank and
batch sizes of scoring are not part of it), written by kronfluence and sealed by ``COMPLETE.json``: a
directory without it (a killed fit) is refitted, never read.
"""

from __future__ import annotations

import copy
import gc
import logging
import os
import re
import shutil
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rise_exp.core import progress
from rise_exp.core.errors import ConfigError
from rise_exp.core.files import save_json
from rise_exp.core.hashing import config_hash
from rise_exp.core.locks import cache_lock
from rise_exp.data.encoding import EncodedRow, collate, rows_hash
from rise_exp.data.records import Record
from rise_exp.methods.base import AttributionMethod, MethodContext
from rise_exp.methods.common import encode_all, pad_id
from rise_exp.methods.ekfac.config import EKFACConfig
from rise_exp.models.placement import model_device
from rise_exp.training.losses import row_loss

log = logging.getLogger(__name__)

INSTALL = "pip install 'rise-exp[ekfac]' && pip install --no-deps kronfluence==1.0.1"
MARKER = "COMPLETE.json"
FACTORS = "factors"


@contextmanager
def quiet_amp() -> Iterator[None]:
    """Hide kronfluence's deprecation warning about ``torch.cuda.amp.GradScaler`` (it never scales here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*GradScaler.*", category=FutureWarning)
        yield


@contextmanager
def frozen_gc() -> Iterator[None]:
    """Keep the objects alive before the call out of the garbage collector's walks: kronfluence runs a full
    ``gc.collect()`` before and after each of its passes (ten per fit), which otherwise walks every object of
    the loaded libraries (0.5-0.7 s each on the embedded default); what kronfluence creates is still collected."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def require_kronfluence() -> Any:
    """The ``kronfluence`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import kronfluence
    except ImportError as exc:
        raise ConfigError(f"method=ekfac needs kronfluence ({exc}); install it with: {INSTALL}") from exc
    return kronfluence


def tracked_modules(model: torch.nn.Module, pattern: str) -> list[str]:
    """Names of the ``nn.Linear`` modules of ``model`` whose name matches ``pattern`` (empty: all of them).

    Raises:
        ConfigError: if none matches.
    """
    regex = re.compile(pattern)
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and regex.search(n)]
    if not names:
        linear = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][:4]
        raise ConfigError(f"method.modules={pattern!r} matches no nn.Linear module of the model (some: {linear})")
    return names


def sampled_targets(logits: torch.Tensor, input_ids: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``input_ids`` with every token after the first replaced by one drawn from the model's prediction
    (the true Fisher's labels); masked tokens are drawn too and then ignored by the loss."""
    with torch.no_grad():
        probs = torch.softmax(logits[:, :-1].detach().double(), dim=-1)
        flat = probs.reshape(-1, probs.shape[-1]).cpu()
        drawn = torch.multinomial(flat, 1, generator=generator).view(input_ids.shape[0], -1)
    return torch.cat([input_ids[:, :1], drawn.to(input_ids.device)], dim=1)


def make_task(reduction: str, modules: list[str], seed: int) -> Any:
    """The kronfluence ``Task``: the masked token loss of a collated batch, summed over rows."""
    from kronfluence.task import Task

    class MaskedLMTask(Task):
        def __init__(self) -> None:
            super().__init__()
            self.generator = torch.Generator().manual_seed(seed)

        def compute_train_loss(self, batch: dict, model: torch.nn.Module, sample: bool = False) -> torch.Tensor:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            ids = sampled_targets(logits, batch["input_ids"], self.generator) if sample else batch["input_ids"]
            return row_loss(logits, ids, batch["target_mask"], reduction).sum()

        def compute_measurement(self, batch: dict, model: torch.nn.Module) -> torch.Tensor:
            return self.compute_train_loss(batch, model, sample=False)

        def get_influence_tracked_modules(self) -> list[str]:
            return modules

        def get_attention_mask(self, batch: dict) -> torch.Tensor:
            return batch["attention_mask"]

    return MaskedLMTask()


class RowDataset(torch.utils.data.Dataset):
    """Encoded rows as a map-style dataset (kronfluence batches them with :func:`collate`)."""

    def __init__(self, rows: Sequence[EncodedRow]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> EncodedRow:
        return self.rows[i]


class EKFAC(AttributionMethod):
    """Damped inverse-Fisher (EK-FAC / K-FAC / diagonal) influence of every training row on each query."""

    name = "ekfac"

    def __init__(self, cfg: EKFACConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        require_kronfluence()
        self.seed = int(ctx.seed if self.cfg.seed is None else self.cfg.seed)
        self.train_rows: list[EncodedRow] = []
        self.analyzer: Any = None
        self.factors_path: Path | None = None
        self._scores_made = 0

    # ------------------------------------------------------------------ identity and cache
    def identity(self) -> dict[str, Any]:
        """The settings the fitted factors depend on."""
        c = self.cfg
        return {
            "strategy": c.strategy,
            "modules": c.modules,
            "empirical_fisher": c.empirical_fisher,
            "loss_reduction": c.loss_reduction,
            "factor_batch": c.factor_batch,
            "dtype": c.dtype,
            "seed": self.seed,
        }

    def cache_key(self, data_hash: str) -> dict[str, Any]:
        """Everything the factors depend on: model identity and dtype, the exact tokens, the settings."""
        dtype = str(next(self.ctx.model.parameters()).dtype)
        return {"model": self.ctx.model_id, "model_dtype": dtype, "method": self.identity(), "data": data_hash}

    def analysis_dir(self, data_hash: str) -> Path:
        """``<cache>/indexes/<data>-ekfac-<key>`` (the run's work dir when there is no cache)."""
        root = Path(self.ctx.index_root if self.ctx.index_root is not None else self.ctx.work_dir)
        return root / f"{self.ctx.data_name}-{self.name}-{config_hash(self.cache_key(data_hash), n=12)}"

    # ------------------------------------------------------------------ kronfluence
    def _dtype(self) -> torch.dtype:
        return getattr(torch, self.cfg.dtype)

    def factor_args(self) -> Any:
        from kronfluence.arguments import FactorArguments

        dt = self._dtype()
        return FactorArguments(
            strategy=self.cfg.strategy,
            use_empirical_fisher=self.cfg.empirical_fisher,
            activation_covariance_dtype=dt,
            gradient_covariance_dtype=dt,
            per_sample_gradient_dtype=dt,
            lambda_dtype=dt,
        )

    def score_args(self) -> Any:
        from kronfluence.arguments import ScoreArguments

        dt = self._dtype()
        return ScoreArguments(
            damping_factor=self.cfg.damping,
            query_gradient_low_rank=self.cfg.query_low_rank,
            per_sample_gradient_dtype=dt,
            precondition_dtype=dt,
            score_dtype=dt,
            query_gradient_svd_dtype=dt,
        )

    def _loader_kwargs(self) -> Any:
        from kronfluence.utils.dataset import DataLoaderKwargs

        pad = pad_id(self.ctx.tokenizer)
        return DataLoaderKwargs(collate_fn=lambda rows: collate(rows, pad))

    def _analyzer(self, analysis_dir: Path, model: torch.nn.Module) -> Any:
        from kronfluence.analyzer import Analyzer

        return Analyzer(
            analysis_name=analysis_dir.name,
            model=model,
            task=self.task,
            cpu=model_device(self.ctx.model).type == "cpu",
            output_dir=str(analysis_dir.parent),
            log_level=logging.WARNING,
            disable_tqdm=not progress.enabled(),
            disable_model_save=True,
        )

    def build(self, train: Sequence[Record]) -> None:
        from kronfluence.analyzer import prepare_model

        self.train_rows = encode_all(train, self.ctx)
        modules = tracked_modules(self.ctx.model, self.cfg.modules)
        self.task = make_task(self.cfg.loss_reduction, modules, self.seed)
        # kronfluence wraps the tracked modules in place: it gets a copy, the run's model stays as it is
        model = prepare_model(copy.deepcopy(self.ctx.model).eval(), self.task)
        adir = self.analysis_dir(rows_hash(self.train_rows))
        with cache_lock(adir, f"the EK-FAC factors {adir}"):
            sealed = (adir / MARKER).is_file()
            reuse = sealed and self.cfg.reuse
            if reuse:
                log.info("ekfac: reusing the factors in %s", adir)
            elif adir.exists():
                why = "method.reuse=false" if sealed else "an unfinished fit"
                log.warning("ekfac: refitting the factors in %s (%s)", adir, why)
                shutil.rmtree(adir)
            self.analyzer = self._analyzer(adir, model)  # (creates the directory)
            self.factors_path = self.analyzer.factors_output_dir(FACTORS)
            if not reuse:
                with quiet_amp(), frozen_gc():
                    self.analyzer.fit_all_factors(
                        factors_name=FACTORS,
                        dataset=RowDataset(self.train_rows),
                        per_device_batch_size=self.cfg.factor_batch,
                        dataloader_kwargs=self._loader_kwargs(),
                        factor_args=self.factor_args(),
                    )
                save_json(adir / MARKER, self.cache_key(rows_hash(self.train_rows)))
        self.index_bytes = sum(p.stat().st_size for p in self.factors_path.rglob("*.safetensors"))

    def score(self, queries: Sequence[Record]) -> np.ndarray:
        if self.analyzer is None:
            raise RuntimeError("EKFAC.score called before build")
        rows = encode_all(queries, self.ctx)
        self._scores_made += 1
        name = f"tmp-{os.getpid()}-{self._scores_made}"
        out_dir = self.analyzer.scores_output_dir(name)
        try:
            with quiet_amp(), frozen_gc():
                self.analyzer.compute_pairwise_scores(
                    scores_name=name,
                    factors_name=FACTORS,
                    query_dataset=RowDataset(rows),
                    train_dataset=RowDataset(self.train_rows),
                    per_device_query_batch_size=self.cfg.query_batch,
                    per_device_train_batch_size=self.cfg.train_batch,
                    dataloader_kwargs=self._loader_kwargs(),
                    score_args=self.score_args(),
                    overwrite_output_dir=True,
                )
            scores = self.analyzer.load_pairwise_scores(name)["all_modules"]
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
        if self.cfg.relative:
            scores = scores / self.self_influence().sqrt()[None, :]
        return scores.float().cpu().numpy()

    def self_influence(self) -> torch.Tensor:
        """``g_x^T (F + lambda I)^-1 g_x`` of every training row (float64 ``[N]``; 0 rows scored as 1).

        Computed once per damping and stored beside the factors (``self_influence-<damping>.safetensors``).
        """
        from safetensors.torch import load_file, save_file

        path = self.factors_path.parent / f"self_influence-{self.cfg.damping}.safetensors"
        if path.is_file():
            return load_file(path)["self"]
        name = f"tmp-self-{os.getpid()}"
        try:
            with quiet_amp(), frozen_gc():
                self.analyzer.compute_self_scores(
                    scores_name=name,
                    factors_name=FACTORS,
                    train_dataset=RowDataset(self.train_rows),
                    per_device_train_batch_size=self.cfg.train_batch,
                    dataloader_kwargs=self._loader_kwargs(),
                    score_args=self.score_args(),
                    overwrite_output_dir=True,
                )
            own = self.analyzer.load_self_scores(name)["all_modules"].double().cpu()
        finally:
            shutil.rmtree(self.analyzer.scores_output_dir(name), ignore_errors=True)
        own = torch.where(own > 0, own, torch.ones_like(own))  # no gradient (or rounding): leave the row's score
        tmp = path.with_suffix(".part")
        save_file({"self": own}, tmp)
        tmp.replace(path)
        return own

    def factors(self) -> dict[str, dict[str, torch.Tensor]]:
        """The fitted factors as kronfluence stores them: ``{factor name: {module name: tensor}}``."""
        if self.analyzer is None:
            raise RuntimeError("EKFAC.factors called before build")
        return self.analyzer.load_all_factors(FACTORS)
