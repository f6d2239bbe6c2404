"""Sparse residual support of RISE: which vocabulary entries carry ``r = softmax(z / tau) - e_y``.

Rule (the default ``gt_slot="replace"`` path of the official RISE head, ``rise/head.py``):

1. ``s = z / tau``; take the top-K of ``s`` (``K = min(topk, V)``), sorted by descending value.
2. If the ground truth ``y`` is not among them it replaces the K-th (smallest) slot.
3. ``p`` = softmax over those K slots only: the cumulative mass is measured *within the top-K*
   (ground truth included after step 2), not under the full softmax.
4. Cutoff ``L`` = the first slot where ``cumsum(p) >= rho`` (K if none), clamped to
   ``[min(min_keep, K), K]``; the slots kept are the first ``L`` plus the ground-truth slot
   (kept even when it lies past the cutoff).
5. ``p`` is renormalised over the kept slots and ``r = p - e_y`` on them (zero elsewhere).

``full_support=True`` skips 1-5: ``r = softmax(s) - e_y`` over all V tokens.

The residual is computed stably, in float64: the ground-truth entry is minus the sum of the other
kept entries (``r_y = -sum_{v != y} p_v``), never ``p_y - 1``. When the model is nearly certain of
``y``, ``p_y - 1`` is pure rounding (catastrophic cancellation) while the other entries are exact, so
the sum keeps the residual's small norm and its direction exact (and the residual sums to zero).
``residual="naive"`` reproduces the official code's rule for comparison: ``p`` rounded to the logits'
dtype, then ``p - e_y`` (:func:`naive_residual`).

The top-K is found exactly without a full-vocabulary ``torch.topk`` (see :func:`exact_topk`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rise_exp.core.errors import DataError
from rise_exp.methods.rise.config import RiseConfig

CHUNK = 16


@dataclass(frozen=True)
class Support:
    """Per-token residual support, padded to the widest token of the slice.

    Attributes:
        index: int64 ``[n, w]`` vocabulary ids (0 where ``mask`` is False).
        residual: float64 ``[n, w]`` residual values ``r`` (0 where ``mask`` is False).
        mask: bool ``[n, w]``; True on the kept entries (each row holds its ground truth once).
    """

    index: torch.Tensor
    residual: torch.Tensor
    mask: torch.Tensor

    def dense(self, vocab_size: int) -> torch.Tensor:
        """The residuals as a dense float64 ``[n, vocab_size]`` matrix (tests, small V)."""
        out = torch.zeros((self.index.shape[0], vocab_size), dtype=self.residual.dtype, device=self.index.device)
        return out.scatter_add_(1, self.index, self.residual * self.mask)


def exact_topk(z: torch.Tensor, k: int, chunk: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk(z, k, dim=1)`` (sorted; same values, same indices up to ties) via group maxima.

    Row entries are split into ``C = ceil(V / chunk)`` strided groups ``{c + i C}``; one vectorised
    pass takes their maxima. The k largest maxima are k distinct entries, so with ``t`` the smallest
    of them every top-k entry is ``>= t`` and lies in one of those k groups. Those ``k * chunk``
    entries are filtered by ``>= t`` (about k survive on real rows), compacted, and a small top-k
    over the survivors gives the result. NaN rows fall back to ``torch.topk``.

    Args:
        z: ``[n, V]`` scores.
        k: Entries per row (``k >= 1``; capped at V).
        chunk: Group size of the pre-selection pass.
    """
    n, vocab = z.shape
    k = min(k, vocab)
    n_groups = -(-vocab // chunk)
    if n == 0 or n_groups < 2 * k:  # small vocabularies: the plain top-k is as fast
        return torch.topk(z, k, dim=1)
    zp = F.pad(z, (0, n_groups * chunk - vocab), value=float("-inf")) if vocab % chunk else z
    zv = zp.view(n, chunk, n_groups)
    gmax, gidx = torch.topk(zv.amax(dim=1), k, dim=1, sorted=False)
    if bool(torch.isnan(gmax).any()):
        return torch.topk(z, k, dim=1)
    t = gmax.amin(dim=1)
    cand = zv.gather(2, gidx.unsqueeze(1).expand(n, chunk, k)).view(n, chunk * k)
    rows, flat = (cand >= t[:, None]).nonzero(as_tuple=True)  # row-major: each row's survivors contiguous
    counts = torch.bincount(rows, minlength=n)
    slot = torch.arange(rows.numel(), device=z.device) - (torch.cumsum(counts, 0) - counts)[rows]
    width = int(counts.max())
    vals = torch.full((n, width), float("-inf"), dtype=z.dtype, device=z.device)
    vals[rows, slot] = cand[rows, flat]
    ids = torch.zeros((n, width), dtype=torch.long, device=z.device)
    ids[rows, slot] = gidx[rows, flat % k] + (flat // k) * n_groups
    top, pos = torch.topk(vals, k, dim=1)
    return top, ids.gather(1, pos)


def select_support(z: torch.Tensor, y: torch.Tensor, cfg: RiseConfig, vocab_size: int | None = None) -> Support:
    """Residual support and values for logits ``z`` ``[n, V]`` and targets ``y`` ``[n]`` (rule above).

    ``vocab_size`` (default: ``z``'s width) lets ``z`` be a padded buffer whose columns from
    ``vocab_size`` on hold -inf (``RiseHead.padded_logits``); they are never selected.

    Raises:
        DataError: on NaN logits or a target id outside the vocabulary.
    """
    n = z.shape[0]
    vocab = z.shape[1] if vocab_size is None else vocab_size
    if vocab < z.shape[1] and (cfg.full_support or z.shape[1] % CHUNK):
        z = z[:, :vocab]  # dense support, or a pad that does not complete the top-K groups
    if n and (int(y.min()) < 0 or int(y.max()) >= vocab):
        raise DataError(f"target token id {int(y.max())} outside the LM head's {vocab} rows (tokenizer/model mismatch)")
    if cfg.full_support:
        p = torch.softmax(z.double() / cfg.tau, dim=1)
        is_gt = torch.zeros_like(p, dtype=torch.bool)
        is_gt[torch.arange(n, device=z.device), y] = True
        idx = torch.arange(vocab, device=z.device).expand(n, vocab)
        return Support(idx, residual_values(p, is_gt, cfg, z.dtype), torch.ones_like(p, dtype=torch.bool))
    vals, idx = exact_topk(z, min(cfg.topk, vocab))
    if bool(torch.isnan(vals[:, :1]).any()):
        raise DataError("the LM head produced NaN logits")
    s_y = z.gather(1, y[:, None]).double() / cfg.tau
    return apply_rule(vals.double() / cfg.tau, idx, s_y, y, cfg, logits_dtype=z.dtype)


def stable_residual(p: torch.Tensor, is_gt: torch.Tensor) -> torch.Tensor:
    """``p - e_y`` for probabilities ``p`` ``[n, w]`` (zero off the support), one ``is_gt`` per row.

    The ground-truth entry is ``-sum`` of the other entries instead of ``p_y - 1`` (see the module
    docstring); in float64 that sum is exact to relative rounding even when it is below 1e-16.
    """
    others = p.masked_fill(is_gt, 0.0)
    return others - is_gt.to(p.dtype) * others.sum(dim=1, keepdim=True)


def naive_residual(p: torch.Tensor, is_gt: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``p - e_y`` with ``p`` first rounded to ``dtype`` (the official code's float32 rule), as float64."""
    q = p.to(dtype)
    return (q - is_gt.to(dtype)).to(p.dtype)


def residual_values(p: torch.Tensor, is_gt: torch.Tensor, cfg: RiseConfig, logits_dtype: torch.dtype) -> torch.Tensor:
    """The residual of probabilities ``p`` by ``cfg.residual``: :func:`stable_residual` or :func:`naive_residual`."""
    return stable_residual(p, is_gt) if cfg.residual == "stable" else naive_residual(p, is_gt, logits_dtype)


def apply_rule(
    s_top: torch.Tensor,
    idx: torch.Tensor,
    s_y: torch.Tensor,
    y: torch.Tensor,
    cfg: RiseConfig,
    logits_dtype: torch.dtype = torch.float64,
) -> Support:
    """Steps 2-5 of the rule on the sorted top-K ``s_top``/``idx`` ``[n, K]``; ``s_y`` ``[n, 1]``.

    ``s_top`` and ``idx`` are modified in place (the ground truth replaces the K-th slot);
    ``logits_dtype`` is where ``residual="naive"`` rounds the probabilities.
    """
    n, k = s_top.shape
    dev = s_top.device
    absent = ~(idx == y[:, None]).any(dim=1)
    idx[:, -1] = torch.where(absent, y, idx[:, -1])
    s_top[:, -1] = torch.where(absent, s_y[:, 0], s_top[:, -1])
    p = torch.softmax(s_top, dim=1)
    hit = p.cumsum(dim=1) >= cfg.rho
    first = torch.where(
        hit.any(dim=1), hit.to(torch.int8).argmax(dim=1) + 1, torch.full_like(absent, k, dtype=torch.long)
    )
    cut = first.clamp(min=min(cfg.min_keep, k), max=k)
    slot = torch.arange(k, device=dev)
    in_prefix = slot[None, :] < cut[:, None]
    is_gt = idx == y[:, None]
    keep = in_prefix | is_gt
    q = p * keep
    r = residual_values(q / q.sum(dim=1, keepdim=True), is_gt, cfg, logits_dtype)
    # compact: the widest prefix of the slice, plus one column for a ground truth past its cutoff
    w = int(cut.max())
    gt_pos = is_gt.to(torch.int8).argmax(dim=1, keepdim=True)
    gt_out = (gt_pos[:, 0] >= cut)[:, None]
    mask = torch.cat([in_prefix[:, :w], gt_out], dim=1)
    index = torch.cat([idx[:, :w], idx.gather(1, gt_pos)], dim=1) * mask
    residual = torch.cat([r[:, :w], r.gather(1, gt_pos)], dim=1) * mask
    return Support(index, residual, mask)
