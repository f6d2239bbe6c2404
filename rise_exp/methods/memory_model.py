"""GPU memory of each method, extrapolated from a model's architecture facts (``conf/model/``).

Notation: ``P`` parameters (exact, from the architecture below), ``b`` bytes per weight (the model's
dtype), ``L`` blocks, ``d`` hidden size, ``f`` MLP width, ``V`` vocabulary, ``l`` tokens per row.
Every method holds the weights, ``b P``; on top of that, the largest simultaneous working set of our
implementation of it (activation sizes follow Korthikanti et al. 2022, "Reducing activation
recomputation": about ``17 b d`` bytes per token and block kept for backward; an inference pass keeps
one block's ``b (4 d + 2 f)`` per token at a time):

- RISE (forward only): ``b T (4d + 2f)`` for a batch of ``T = method.index.batch_tokens`` tokens, the
  head's logits slice ``(b + 4) T_h V`` (``T_h = method.max_tokens_per_batch``) and ``M_g``, ``4 V kg``;
- ZO-Inf (forward only, losses at each checkpoint): ``b T (4d + 2f)`` and the logits of the batch in the
  loss, ``(b + 8) T V`` (``T = method.max_tokens``);
- full-gradient TracIn (exact, as ``diagnostic=head_vs_full``): gradients ``b P``, one row's activations
  ``17 b d l L`` and logits ``(2b + 8) l V``, a float32 copy of the flat gradient and the stored query
  gradient, ``8 P``;
- RapidIn: the backward of full-gradient TracIn, then ``16 c P`` while RapidGrad compresses ``c =
  method.compress_batch`` layer-normalised float32 gradients (pending list, stacked copy, padded copy and
  one permuted copy);
- STRIDE (frozen model, steering operators trained): ``16 (S + 1) r d`` for ``S = method.max_subsets``
  operators of rank ``r`` with Adam, ``17 b d`` per token for the blocks after the steered one and
  ``(b + 16) V`` per token of logits and log-softmaxes, for the ``T = min(n l, max(l, method.max_tokens))``
  tokens of one micro-batch (a step's ``n = operators_per_step x (member_batch + nonmember_batch)`` rows
  of ``l`` tokens are split into micro-batches of ``method.max_tokens`` padded tokens);
- BM25 runs on the CPU (no GPU memory).

Index bytes per row: RISE ``(kr kh + kg kh) x 2`` (fp16), RapidIn ``4 K``, full-gradient TracIn ``b P``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rise_exp.config.model import ModelConfig
from rise_exp.methods.rapidin.config import RapidInConfig
from rise_exp.methods.rise.config import RiseMethodConfig
from rise_exp.methods.stride.config import StrideConfig
from rise_exp.methods.zo_inf.config import ZOInfConfig
from rise_exp.models.catalogue import parameter_count

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
ACT_PER_TOKEN_LAYER = 17  # x b x d bytes kept for backward per token and block (Korthikanti et al. 2022)
GPU_METHODS = ("RISE", "ZO-Inf", "STRIDE", "RapidIn (c=1)", "RapidIn (c=16)", "full-gradient TracIn")


@dataclass(frozen=True)
class Estimate:
    """Estimated peak GPU bytes of each method for one model."""

    model: str
    parameters: int
    weight_bytes: int
    peaks: dict[str, float]


def estimate(
    m: ModelConfig,
    seq_len: int,
    rise: RiseMethodConfig | None = None,
    rapidin: RapidInConfig | None = None,
    stride: StrideConfig | None = None,
    zo_inf: ZOInfConfig | None = None,
) -> Estimate:
    """Peak GPU bytes of every GPU method for model ``m`` (formulas in the module docstring)."""
    rise, rapidin = rise or RiseMethodConfig(), rapidin or RapidInConfig()
    stride, zo_inf = stride or StrideConfig(), zo_inf or ZOInfConfig()
    p, b = parameter_count(m), DTYPE_BYTES[m.dtype]
    d, f, v, n, seq = m.hidden_size, m.intermediate_size or 4 * m.hidden_size, m.vocab_size, m.layers, seq_len
    w = b * p
    infer = b * (4 * d + 2 * f)  # per token, one block at a time
    t_idx = rise.index.batch_tokens
    rise_peak = w + infer * t_idx + (b + 4) * rise.max_tokens_per_batch * v + 4 * v * rise.kg + b * t_idx * d
    zo_peak = w + infer * zo_inf.max_tokens + (b + 8) * zo_inf.max_tokens * v
    backward = w + b * p + ACT_PER_TOKEN_LAYER * b * d * seq * n + (2 * b + 8) * seq * v
    tracin = backward + 8 * p

    def rapid(c: int) -> float:
        return max(backward, w + b * p + 16 * c * p)

    rows = stride.operators_per_step * (stride.member_batch + stride.nonmember_batch)
    layer = min(n - 1, max(0, round(2 * n / 3))) if stride.layer is None else stride.layer % n
    ops = 16 * (stride.max_subsets + 1) * min(stride.rank, d) * d
    micro = min(rows * seq, max(seq, stride.max_tokens))  # tokens of one micro-batch of a step
    stride_peak = w + ops + micro * (ACT_PER_TOKEN_LAYER * b * d * (n - layer) + (b + 16) * v)
    peaks = {
        "RISE": rise_peak,
        "ZO-Inf": zo_peak,
        "STRIDE": stride_peak,
        "RapidIn (c=1)": rapid(1),
        f"RapidIn (c={rapidin.compress_batch})": rapid(rapidin.compress_batch),
        "full-gradient TracIn": tracin,
    }
    return Estimate(m.name, p, w, {k: float(x) for k, x in peaks.items()})


def bytes_per_row(m: ModelConfig, rise: RiseMethodConfig | None = None, rapidin: RapidInConfig | None = None) -> dict:
    """Index bytes per row of RISE, RapidIn and an unsketched full-gradient index."""
    rise, rapidin = rise or RiseMethodConfig(), rapidin or RapidInConfig()
    per = {"float16": 2, "bfloat16": 2, "float32": 4}
    return {
        "RISE": per[rise.dtype] * rise.signature_dim,
        "RapidIn": per[rapidin.dtype] * rapidin.k,
        "full-gradient TracIn": DTYPE_BYTES[m.dtype] * parameter_count(m),
    }
