r"""ZO-Inf (Kokhlikyan, Chaudhuri, Mahloujifar, "Z0-Inf: Zeroth Order Approximation for Data Influence",
arXiv 2510.11832): train-test influence from per-example losses at saved finetuning checkpoints.

Estimator (train-test influence, Sec. 3 of the paper; cross-checked against the authors' released
``zinf_train_test``):

- checkpoints ``theta_0 .. theta_{E-1}`` (oldest first), per-example losses ``l_e(z)`` (mean token loss);
- with ``center_losses`` each checkpoint's losses are centred over the split:
  ``l_e(z) <- l_e(z) - mean_{z' in split} l_e(z')``;
- neighbours of ``e``: ``N(e) = {j != e : |j - e| <= neighbors // 2}``;
- finite differences ``d_ej(z) = l_e(z) - l_j(z)``, displacements ``D_ej = theta_e - theta_j``;
- zeroth-order gradient at ``e``: ``g_e(z) = sum_{j in N(e)} d_ej(z) D_ej / ||D_ej||^p`` (``p = 2``:
  each term is the directional finite-difference slope ``d_ej / ||D_ej||`` along ``D_ej / ||D_ej||``);
- influence ``I(z, z') = (1/E) sum_e <g_e(z), g_e(z')>
  = (1/E) sum_e sum_{i,j in N(e)} d_ei(z) d_ej(z') <D_ei, D_ej> / (||D_ei||^p ||D_ej||^p)``,
  with ``<D_ei, D_ej> = W_ee - W_ei - W_ej + W_ij`` from the Gram matrix ``W`` of the checkpoints'
  parameters (only ``E x E`` numbers are kept, never the displacements);
- with ``weight_by_correlation``: ``I <- I * rho(z, z')``, the Spearman correlation over checkpoints of
  the (uncentred) loss trajectories of ``z`` and ``z'`` (0 when a trajectory is constant).

Deviations, both settable: the released code's neighbour window is ``range(E - k//2, E + k//2)`` (it
uses the epoch count where the epoch index is meant); we use the symmetric window above. Its weights
divide by ``||D||^4`` (squared norms applied twice); ``displacement_norm_power: 4`` reproduces that.
Parameters: ``lm_head`` (the output embedding, as in the paper's LLM experiments) or ``all``.

Each checkpoint's per-token losses (the NLL of every token, whichever the token rule counts), and the
Gram matrix, are cached (``<cache>/indexes/zo_inf-losses``) under a key of the checkpoint's files (paths,
sizes, modification times) and the exact token ids: a killed build recomputes only the checkpoints it had
not finished, and a rerun with the other token rule (``data.attribute_mask_prompt``), the other loss
reduction or other estimator settings (``neighbors``, ``center_losses``, ...) loads no model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata

from rise_exp.core import progress, sealed
from rise_exp.core.errors import ConfigError
from rise_exp.core.files import save_npy
from rise_exp.core.hashing import config_hash
from rise_exp.data.encoding import EncodedRow, rows_hash
from rise_exp.data.records import Record
from rise_exp.methods.base import AttributionMethod, MethodContext
from rise_exp.methods.common import encode_all, pad_id
from rise_exp.methods.zo_inf.config import ZOInfConfig
from rise_exp.models.placement import dispatched, model_device
from rise_exp.training.model_losses import masked_row_losses, token_nll

log = logging.getLogger(__name__)


def neighbours(e: int, num: int, neighbors: int) -> list[int]:
    """Checkpoints within ``neighbors // 2`` of ``e`` (excluding ``e``), clipped to ``[0, num)``."""
    half = max(1, neighbors // 2)
    return [j for j in range(max(0, e - half), min(num, e + half + 1)) if j != e]


def spearman_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation over axis 0 between every column of ``a [E, N]`` and of ``b [E, Q]`` -> ``[N, Q]``."""

    def unit(x: np.ndarray) -> np.ndarray:
        r = rankdata(x, axis=0)
        r = r - r.mean(axis=0, keepdims=True)
        norm = np.linalg.norm(r, axis=0, keepdims=True)
        return np.divide(r, norm, out=np.zeros_like(r), where=norm > 0)

    return unit(a).T @ unit(b)


def zo_influence(
    train_losses: np.ndarray,
    test_losses: np.ndarray,
    gram: np.ndarray,
    *,
    neighbors: int = 4,
    center_losses: bool = True,
    weight_by_correlation: bool = True,
    norm_power: float = 2.0,
) -> np.ndarray:
    """The ZO-Inf estimator (module docstring) from losses and the checkpoint Gram matrix.

    Args:
        train_losses: ``[E, N]`` losses of the training rows at each checkpoint.
        test_losses: ``[E, Q]`` losses of the queries at each checkpoint.
        gram: ``[E, E]`` inner products of the checkpoints' parameter vectors.
        neighbors: Neighbourhood size ``k`` (``k // 2`` checkpoints on each side).
        center_losses: Centre each checkpoint's losses over the split.
        weight_by_correlation: Multiply by the Spearman correlation of loss trajectories.
        norm_power: ``p`` in ``||D||^p`` (2: directional derivative; 4: the released code).

    Returns:
        ``[N, Q]`` float64 influence of each training row on each query.
    """
    tr = np.asarray(train_losses, dtype=np.float64)
    te = np.asarray(test_losses, dtype=np.float64)
    w = np.asarray(gram, dtype=np.float64)
    num = tr.shape[0]
    if te.shape[0] != num or w.shape != (num, num):
        raise ValueError(f"shape mismatch: train {tr.shape}, test {te.shape}, gram {w.shape}")
    trc = tr - tr.mean(axis=1, keepdims=True) if center_losses else tr
    tec = te - te.mean(axis=1, keepdims=True) if center_losses else te
    out = np.zeros((tr.shape[1], te.shape[1]), dtype=np.float64)
    for e in range(num):
        nb = neighbours(e, num, neighbors)
        if not nb:
            continue
        sq = np.array([w[e, e] - 2 * w[e, j] + w[j, j] for j in nb])  # ||D_ej||^2
        if np.any(sq <= 0):
            raise ConfigError(f"zo_inf: checkpoints {e} and one of {nb} have identical parameters; drop duplicates")
        cross = np.array([[w[e, e] - w[e, i] - w[e, j] + w[i, j] for j in nb] for i in nb])
        scale = sq ** (norm_power / 2.0)
        c = cross / np.outer(scale, scale)
        d_tr = trc[e][None, :] - trc[nb]  # [|N|, N]
        d_te = tec[e][None, :] - tec[nb]  # [|N|, Q]
        out += d_tr.T @ (c @ d_te)
    out /= num
    if weight_by_correlation:
        out *= spearman_matrix(tr, te)
    return out


def flat_params(model: torch.nn.Module, scope: str) -> torch.Tensor:
    """The parameters ZO-Inf tracks, flattened to float32 on CPU."""
    if scope == "lm_head":
        head = model.get_output_embeddings()
        if head is None:
            raise ConfigError("method.params=lm_head but the model has no output embedding; use params=all")
        tensors = [head.weight]
    else:
        tensors = [p for p in model.parameters()]
    return torch.cat([t.detach().reshape(-1).float().cpu() for t in tensors])


def checkpoint_identity(path: Path) -> list:
    """What a checkpoint's cached losses depend on: its resolved path and each file's name, size and
    modification time (weights replaced in place change it)."""
    path = Path(path).resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return [str(path), [(str(f.relative_to(path)), f.stat().st_size, f.stat().st_mtime_ns) for f in files]]


def gram_matrix(params: Sequence[torch.Tensor], chunk: int = 1 << 22) -> np.ndarray:
    """``[E, E]`` float64 inner products of flat parameter vectors, accumulated over slices of ``chunk``
    entries, so the peak is the vectors plus one ``E x chunk`` float64 slice (not a float64 copy of all)."""
    n = len(params)
    gram = torch.zeros((n, n), dtype=torch.float64)
    size = int(params[0].numel()) if n else 0
    for start in range(0, size, chunk):
        block = torch.stack([p[start : start + chunk] for p in params]).double()
        gram += block @ block.T
    return gram.numpy()


class ZOInf(AttributionMethod):
    """Zeroth-order train-test influence over the finetuning checkpoints."""

    name = "zo_inf"
    needs_checkpoints = True

    def __init__(self, cfg: ZOInfConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        cfg = self.cfg
        self.min_checkpoints = cfg.min_checkpoints
        self.neighbors = cfg.neighbors
        self.center_losses = cfg.center_losses
        self.weight_by_correlation = cfg.weight_by_correlation
        self.norm_power = cfg.displacement_norm_power
        self.scope = cfg.params
        self.reduction = cfg.loss_reduction
        self.max_tokens = cfg.max_tokens
        self.checkpoints = self._check_checkpoints(ctx.checkpoints)
        self.train_losses: np.ndarray | None = None
        self.gram: np.ndarray | None = None

    def _check_checkpoints(self, paths: Sequence[Path | str]) -> list[Path]:
        found = [Path(p) for p in paths]
        if len(found) < self.min_checkpoints:
            raise ConfigError(
                f"zo_inf needs at least {self.min_checkpoints} finetuning checkpoints (method.min_checkpoints) "
                f"but has {len(found)}; the finetune stage saves the starting weights and one checkpoint per "
                f"epoch, so run it with finetune.epochs >= {self.min_checkpoints - 1} (not finetune=none)"
            )
        missing = [str(p) for p in found if not p.is_dir()]
        if missing:
            raise ConfigError(f"method zo_inf: checkpoint directories not found: {', '.join(missing)}")
        return found

    def _load(self, path: Path) -> torch.nn.Module:
        """Checkpoint ``path`` placed like the run's model: split by the same device map (``model.device_map``;
        its offloaded layers in a folder of their own), else on the model's device (a GPU: read straight
        into its memory)."""
        from rise_exp.models.loading import load_pretrained

        run_model = self.ctx.model
        dtype = str(next(run_model.parameters()).dtype).removeprefix("torch.")
        if dispatched(run_model):
            folder = Path(self.ctx.work_dir) / "offload" / Path(path).name
            model, _ = load_pretrained(
                path, dtype=dtype, device_map=dict(run_model.hf_device_map), offload_folder=folder
            )
            return model.eval()
        direct = self.ctx.placement.load_kwargs() if self.ctx.placement is not None else {}
        model, _ = load_pretrained(path, dtype=dtype, **direct)
        return model.to(model_device(run_model)).eval()

    def cache_dir(self) -> Path:
        """Where per-checkpoint losses and Gram matrices are kept (beside the vector indexes)."""
        root = self.ctx.index_root if self.ctx.index_root is not None else self.ctx.work_dir
        return Path(root) / "zo_inf-losses"

    def _key(self, what: dict) -> Path:
        return self.cache_dir() / f"{config_hash(what, n=16)}.npy"

    def _losses(self, rows: Sequence[EncodedRow], with_params: bool) -> tuple[np.ndarray, list[torch.Tensor]]:
        """Per-checkpoint row losses ``[E, N]`` (reduced from per-token losses, each loaded from the cache or
        computed and cached), and the flat parameters of every checkpoint when ``with_params`` (then every
        checkpoint is loaded)."""
        pad = pad_id(self.ctx.tokenizer)
        ids = rows_hash(rows, masks=False)
        lengths = np.array([len(r) for r in rows])
        losses, params = [], []
        for path in progress.bar(len(self.checkpoints), "zo_inf checkpoints", iterable=self.checkpoints):
            cached = self._key({"token_nll": checkpoint_identity(path), "ids": ids})
            flat = np.load(cached) if sealed.reusable_file(cached, "ZO-Inf token losses") else None
            if flat is not None and flat.shape != (int(lengths.sum()),):
                log.warning("%s: %d token losses for %d tokens; recomputing them", cached, flat.size, lengths.sum())
                flat = None
            model = self._load(path) if with_params or flat is None else None
            if flat is not None:
                nll = np.split(flat, np.cumsum(lengths)[:-1])
            else:
                assert model is not None
                nll = token_nll(model, rows, pad, max_tokens=self.max_tokens)
                cached.parent.mkdir(parents=True, exist_ok=True)
                save_npy(cached, np.concatenate(nll) if nll else np.zeros(0, dtype=np.float32))
                sealed.seal_file(cached)
            losses.append(masked_row_losses(nll, rows, self.reduction))
            if with_params and model is not None:
                params.append(flat_params(model, self.scope))
            del model
        return np.stack(losses), params

    def _gram_path(self) -> Path:
        return self._key({"gram": [checkpoint_identity(p) for p in self.checkpoints], "params": self.scope})

    def build(self, train: Sequence[Record]) -> None:
        rows = encode_all(train, self.ctx)
        gram_path = self._gram_path()
        have_gram = sealed.reusable_file(gram_path, "ZO-Inf Gram matrix")
        losses, params = self._losses(rows, with_params=not have_gram)
        if have_gram:
            self.gram = np.load(gram_path)
        else:
            self.gram = gram_matrix(params)
            save_npy(gram_path, self.gram)
            sealed.seal_file(gram_path)
        del params
        self.train_losses = losses
        self.index_bytes = int(losses.nbytes + self.gram.nbytes)

    def score(self, queries: Sequence[Record]) -> np.ndarray:
        if self.train_losses is None or self.gram is None:
            raise RuntimeError("ZOInf.score called before build")
        test_losses, _ = self._losses(encode_all(queries, self.ctx), with_params=False)
        infl = zo_influence(
            self.train_losses,
            test_losses,
            self.gram,
            neighbors=self.neighbors,
            center_losses=self.center_losses,
            weight_by_correlation=self.weight_by_correlation,
            norm_power=self.norm_power,
        )
        return infl.T.astype(np.float32)
