"""The RISE head: final-norm hidden states -> sketched LM-head gradient signatures per chunk.

For each target position t (``target_mask[t]``; hidden state of position t-1, label ``y_t``):

    z_t = W h_t (+ b),   r_t = residual of ``support.select_support`` (sparse, or full)
    h^_t = CS_h(h_t),    r^_t = CS_r(r_t) (scatter over the support only),
    g^_t = CS_g(W^T r_t) = sum_v r_t(v) M_g[v]   with  M_g = CS_g(W) = W S_g, built once,

each L2-normalised (``normalize_tokens``): divided by ``max(|x|, norm_eps)`` as in the official RISE
code, so a token whose residual is below the floor (a near-certain prediction) contributes a short
vector instead of a unit vector pointing in a direction set by rounding; zero vectors stay zero.
``r^`` is summed in float64 (the residual's dtype) and rounded once, and a sketch within the rounding
error of its own sums is zero (``sketch.drop_rounding``): entries of ``r`` sharing a bucket and a sign
cancel, and a float32 sum would leave rounding above the floor.
A chunk's signature is

    phi = [lam_rh sum_t r^ (x) h^,  lam_gh sum_t g^ (x) h^,  lam_rg sum_t r^ (x) g^]

over the fused channels, flattened row-major (``[kr, kh]`` etc.) and L2-normalised. With
``ensemble = E`` the E members (own tables, one shared support) are concatenated, each block normalised
and divided by ``sqrt(E)``, so a signature inner product is the mean of the members' scores
(``normalize_signature``, the same floor). Logits are computed only at target positions, in slices of
``max_tokens_per_batch`` tokens, so the ``[tokens, V]`` buffer is bounded by that setting; the head
keeps that one buffer for its lifetime (:meth:`RiseHead.padded_logits`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from rise_exp.core.errors import ConfigError, DataError
from rise_exp.methods.rise.config import RiseConfig
from rise_exp.methods.rise.sketch import SketchTables, drop_rounding
from rise_exp.methods.rise.support import CHUNK, select_support
from rise_exp.methods.rise.trunk import hidden_states, model_logits, unembedding
from rise_exp.models.placement import full_precision

_LOGIT_TOL = {torch.float64: 1e-8, torch.float32: 1e-3}


def l2_normalize(x: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Rows divided by ``max(|row|, eps)`` (the official RISE code's floor); all-zero rows stay zero."""
    norm = x.norm(dim=-1, keepdim=True).clamp(min=eps)
    return x / torch.where(norm > 0, norm, torch.ones_like(norm))


class RiseHead:
    """Computes RISE chunk signatures from hidden states with the model's own unembedding.

    Args:
        weight: Unembedding ``W`` ``[V, D]``.
        bias: LM-head bias ``[V]`` or None.
        cfg: RISE settings.
        tables: CountSketch tables, or one per ensemble member (``cfg.ensemble``); drawn from
            ``cfg.seed`` when omitted.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        cfg: RiseConfig,
        tables: SketchTables | Sequence[SketchTables] | None = None,
    ) -> None:
        if weight.dim() != 2:
            raise ConfigError(f"LM-head weight must be [V, D], got shape {tuple(weight.shape)}")
        self.cfg = cfg
        self.vocab_size, self.hidden_size = (int(s) for s in weight.shape)
        if tables is None:
            tables = SketchTables.members(cfg, self.vocab_size, self.hidden_size)
        members = [tables] if isinstance(tables, SketchTables) else list(tables)
        if len(members) != cfg.ensemble:
            raise ConfigError(f"method.ensemble is {cfg.ensemble} but {len(members)} sketch table set(s) were given")
        for t in members:
            t.check(cfg, self.vocab_size, self.hidden_size)
        self.members = [t.to(weight.device) for t in members]
        self.tables = self.members[0]
        self.weight = weight.detach()
        self.bias = None if bias is None else bias.detach()
        self.dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
        self.block_dims = cfg.block_dims(self.vocab_size, self.hidden_size)
        self.h_matrices = [t.h.matrix(self.dtype) for t in self.members]
        self.m_gs: list[torch.Tensor | None] = [None] * len(self.members)
        if "gh" in cfg.channels or "rg" in cfg.channels:
            w = self.weight.to(self.dtype)
            with full_precision(self.weight.device):  # built in fp32 even when a mixed-precision run builds it
                self.m_gs = [w @ t.g.matrix(self.dtype) for t in self.members]
        self.m_g_norms = [None if m is None else m.norm(dim=1, keepdim=True) for m in self.m_gs]
        self.verified = not cfg.check_logits
        self._logit_buffer: torch.Tensor | None = None

    @classmethod
    def from_model(
        cls, model: Any, cfg: RiseConfig, tables: SketchTables | Sequence[SketchTables] | None = None
    ) -> RiseHead:
        """A head on ``model.get_output_embeddings()`` (must be a plain ``nn.Linear``)."""
        weight, bias = unembedding(model)
        return cls(weight, bias, cfg, tables)

    @property
    def dim(self) -> int:
        """Signature length (every ensemble member)."""
        return len(self.members) * sum(self.block_dims.values())

    def normalize(self, sig: torch.Tensor) -> torch.Tensor:
        """Each member's block L2-normalised (floor ``norm_eps``), over ``sqrt(members)``: an inner
        product of two signatures is the mean of the members' cosines."""
        e = len(self.members)
        if e == 1:
            return l2_normalize(sig, self.cfg.norm_eps)
        parts = l2_normalize(sig.reshape(sig.shape[0], e, -1), self.cfg.norm_eps)
        return parts.reshape(sig.shape[0], -1) / math.sqrt(e)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """``[n, D]`` hidden states -> ``[n, V]`` logits, in the unembedding's dtype."""
        h = h.to(self.weight.dtype)
        if self.bias is None:
            return h @ self.weight.t()
        return torch.addmm(self.bias, h, self.weight.t())

    def padded_logits(self, h: torch.Tensor) -> torch.Tensor:
        """:meth:`logits` written into a reused ``[n, V_pad]`` buffer (``V_pad`` the vocabulary rounded
        up to a multiple of the top-K group size; the pad columns hold -inf).

        Reusing the buffer avoids a fresh ``[n, V]`` allocation per slice, whose first-touch page faults
        cost as much as a third of the logits' matmul on a CPU; the -inf pad lets the top-K pass view the
        rows as groups without a padded copy. The result is overwritten by the next call.
        """
        n = h.shape[0]
        buf = self._logit_buffer
        if buf is None or buf.shape[0] < n or buf.device != self.weight.device:
            width = -(-self.vocab_size // CHUNK) * CHUNK
            buf = torch.full((n, width), float("-inf"), dtype=self.weight.dtype, device=self.weight.device)
            self._logit_buffer = buf
        z = buf[:n, : self.vocab_size]
        h = h.to(self.weight.dtype)
        if self.bias is None:
            torch.mm(h, self.weight.t(), out=z)
        else:
            torch.addmm(self.bias, h, self.weight.t(), out=z)
        return buf[:n]

    @torch.inference_mode()
    def verify(self, model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_tokens: int = 32) -> float:
        """Check that ``W h (+ b)`` on the trunk's hidden states equals the model's logits.

        Runs the first row of the batch (at most ``max_tokens`` tokens) through both paths.

        Returns:
            The relative max-abs difference.

        Raises:
            ConfigError: when they differ (soft-capped or scaled logits, a non-standard head).
        """
        n = int(min(max_tokens, int(attention_mask[0].sum())))
        ids, att = input_ids[:1, :n], attention_mask[:1, :n]
        dev = self.weight.device.type
        mixed = torch.is_autocast_enabled(dev)  # the model's own logits in the run's autocast dtype, ours in fp32
        hidden = hidden_states(model, ids, att)[0].to(self.weight.device)
        with full_precision(self.weight.device):
            ours = self.logits(hidden).float()
        theirs = model_logits(model, ids, att)[0].float()
        if ours.shape != theirs.shape:
            raise ConfigError(f"head logits {tuple(ours.shape)} and model logits {tuple(theirs.shape)} differ in shape")
        err = float((ours - theirs).abs().max() / theirs.abs().max().clamp(min=1e-12))
        tol = _LOGIT_TOL.get(torch.get_autocast_dtype(dev) if mixed else self.weight.dtype, 3e-2)
        if not err <= tol:
            raise ConfigError(
                f"RISE head logits differ from {type(model).__name__}'s own (relative error {err:.3g} > {tol:g}); "
                "the LM head is not a plain linear unembedding of the base model's last_hidden_state "
                "(logit scaling or soft-capping are not supported)"
            )
        self.verified = True
        return err

    @torch.inference_mode()
    def token_sketches(self, h: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-token sketches ``{"r": [N, kr], "h": [N, kh], "g": [N, kg]}`` of the fused channels
        (the first ensemble member's).

        Args:
            h: ``[N, D]`` hidden states predicting ``y``.
            y: ``[N]`` target token ids.
        """
        return self.member_sketches(h, y)[0]

    @torch.inference_mode()
    def member_sketches(self, h: torch.Tensor, y: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """:meth:`token_sketches` of every ensemble member (the support is selected once)."""
        chans = self.cfg.channels
        need_r = any("r" in c for c in chans)
        need_g = any("g" in c for c in chans)
        hd = h.to(self.dtype)
        outs: list[dict[str, torch.Tensor]] = [{"h": hd @ hm} for hm in self.h_matrices]
        parts_r: list[list[torch.Tensor]] = [[] for _ in self.members]
        parts_g: list[list[torch.Tensor]] = [[] for _ in self.members]
        step = self.cfg.max_tokens_per_batch
        for s in range(0, h.shape[0], step):
            z = self.padded_logits(h[s : s + step])
            sup = select_support(z, y[s : s + step], self.cfg, vocab_size=self.vocab_size)
            res = sup.residual.to(self.dtype)
            terms = sup.index.shape[1]
            for e, t in enumerate(self.members):
                if need_r:
                    # summed in float64, the residual's dtype: r's entries cancel (sum r = 0), and a float32
                    # sum of them leaves rounding that normalising would blow up to a unit vector
                    r_hat = drop_rounding(t.r.sparse(sup.index, sup.residual), sup.residual.abs().sum(dim=1), terms)
                    parts_r[e].append(r_hat.to(self.dtype))
                if need_g:
                    # sum_v r(v) M_g[v] without materialising the [n, w, kg] rows
                    g_hat = F.embedding_bag(sup.index, self.m_gs[e], per_sample_weights=res, mode="sum")
                    size = F.embedding_bag(sup.index, self.m_g_norms[e], per_sample_weights=res.abs(), mode="sum")
                    parts_g[e].append(drop_rounding(g_hat, size[:, 0], terms))
        for e, t in enumerate(self.members):
            if need_r:
                outs[e]["r"] = _cat(parts_r[e], t.r.out_dim, self.dtype, h.device)
            if need_g:
                outs[e]["g"] = _cat(parts_g[e], t.g.out_dim, self.dtype, h.device)
        if self.cfg.normalize_tokens:
            outs = [{k: l2_normalize(v, self.cfg.norm_eps) for k, v in out.items()} for out in outs]
        return outs

    @torch.inference_mode()
    def chunk_signatures(
        self, hidden: torch.Tensor, input_ids: torch.Tensor, target_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Signatures of a right-padded batch of chunks.

        Args:
            hidden: ``[B, L, D]`` final-norm hidden states.
            input_ids: ``[B, L]`` token ids.
            target_mask: ``[B, L]`` bool; ``target_mask[b, t]`` = token t is predicted from t - 1
                (False on padding and masked prompts; position 0 is never a target).

        Returns:
            ``([B, dim]`` signatures, ``[B]`` target counts``)``; chunks without targets get zeros.
        """
        if hidden.dim() != 3 or hidden.shape[:2] != input_ids.shape or input_ids.shape != target_mask.shape:
            raise DataError(
                f"hidden {tuple(hidden.shape)}, input_ids {tuple(input_ids.shape)} and target_mask "
                f"{tuple(target_mask.shape)} do not match"
            )
        tm = target_mask.to(torch.bool).clone()
        tm[:, 0] = False
        b_idx, t_idx = tm.nonzero(as_tuple=True)
        n_chunks = hidden.shape[0]
        counts = tm.sum(dim=1)
        sig = torch.zeros((n_chunks, self.dim), dtype=self.dtype, device=hidden.device)
        if b_idx.numel() == 0:
            return sig, counts
        sketches = self.member_sketches(hidden[b_idx, t_idx - 1], input_ids[b_idx, t_idx])
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(b_idx.numel(), device=hidden.device) - starts[b_idx]
        width = int(counts.max())

        def padded(x: torch.Tensor) -> torch.Tensor:
            p = torch.zeros((n_chunks, width, x.shape[1]), dtype=x.dtype, device=x.device)
            p[b_idx, slot] = x
            return p

        lam = {"rh": self.cfg.lam_rh, "gh": self.cfg.lam_gh, "rg": self.cfg.lam_rg}
        blocks = []
        for sk in sketches:
            pads = {k: padded(v) for k, v in sk.items()}
            for c in self.cfg.channels:
                a, b = pads[c[0]], pads[c[1]]
                blocks.append(lam[c] * torch.bmm(a.transpose(1, 2), b).reshape(n_chunks, -1))
        sig = torch.cat(blocks, dim=1)
        if self.cfg.normalize_signature:
            sig = self.normalize(sig)
        return sig, counts


def _cat(parts: list[torch.Tensor], width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.cat(parts) if parts else torch.zeros((0, width), dtype=dtype, device=device)
