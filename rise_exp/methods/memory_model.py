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
- EK-FAC (kronfluence; tracked modules ``m``: every ``nn.Linear``, ``s_m`` outputs, ``a_m`` inputs plus one for a
  bias, ``c`` bytes of ``method.dtype``): the weights twice (kronfluence wraps a deep copy), ``2 b P``; the
  factors scoring reads, ``F = sum_m c (a_m^2 + s_m^2 + a_m + s_m + s_m a_m)`` (eigenvectors, eigenvalues,
  corrected eigenvalues; ``kfac`` drops the last term, ``diagonal`` keeps only it), and the covariances they
  are fitted from, ``sum_m c (a_m^2 + s_m^2)`` (none for ``diagonal``); the preconditioned query
  gradients ``c Q sum_m s_m a_m`` (``Q = method.query_batch``; rank ``r = method.query_low_rank``:
  ``c Q sum_m r (s_m + a_m)``); and the backward of ``R = max(method.factor_batch, method.train_batch)`` rows,
  ``R (17 b d l L + (2b + 8) l V)``, with one module's per-row gradients, ``c R max_m s_m a_m``. After a LoRA
  finetune (``finetune.lora``, an adapter left unmerged) the modules are those of the adapted model: each adapted
  linear layer's ``base_layer`` and its LoRA ``A`` (``s = r``, ``a`` = in) and ``B`` (``s`` = out, ``a = r``),
  ``r = finetune.lora_r`` (so ``method.modules=lora_`` tracks, and the gradients above are, the adapter's
  alone), and the weights add the adapter's float32 parameters twice, ``8 r sum (in + out)``;
- TrackStar (bergson; the trunk's ``nn.Linear`` modules, ``P_t`` their weights, ``k = method.projection_dim``):
  the weights ``b P``; the pool's float32 second moments ``4 P_t`` (``normalizer: pool``); then the larger of
  their accumulation (float32 sums ``4 P_t``, one row's gradients ``b P_t`` and backward) and the gradient
  collection of ``B = method.batch_rows`` rows (backward of ``B`` rows, one module's float32 per-row gradients
  ``4 B max_m s_m a_m`` when normalised, the projection matrices ``4 k sum_m (s_m + a_m)``);
- BM25 runs on the CPU (no GPU memory).

Index bytes per row: RISE ``(kr kh + kg kh) x 2`` (fp16), RapidIn ``4 K``, full-gradient TracIn ``b P``,
TrackStar ``b k^2`` per trunk module (bergson stores in the weights' dtype); EK-FAC stores the factors ``F``, no
row vectors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rise_exp.config.finetune import FinetuneConfig
from rise_exp.config.model import ModelConfig
from rise_exp.methods.ekfac.config import EKFACConfig
from rise_exp.methods.rapidin.config import RapidInConfig
from rise_exp.methods.rise.config import RiseMethodConfig
from rise_exp.methods.stride.config import StrideConfig
from rise_exp.methods.trackstar.config import TrackStarConfig
from rise_exp.methods.zo_inf.config import ZOInfConfig
from rise_exp.models.catalogue import adapted_linear_shapes, linear_shapes, lora_parameter_count, parameter_count

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
ACT_PER_TOKEN_LAYER = 17  # x b x d bytes kept for backward per token and block (Korthikanti et al. 2022)
GPU_METHODS = (
    "RISE",
    "ZO-Inf",
    "STRIDE",
    "RapidIn (c=1)",
    "RapidIn (c=16)",
    "EK-FAC",
    "TrackStar",
    "full-gradient TracIn",
)


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
    ekfac: EKFACConfig | None = None,
    trackstar: TrackStarConfig | None = None,
    finetune: FinetuneConfig | None = None,
) -> Estimate:
    """Peak GPU bytes of every GPU method for model ``m`` (formulas in the module docstring); ``finetune``: the
    run's, whose LoRA adapter EK-FAC's model carries (None: the model as loaded)."""
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
        "EK-FAC": ekfac_peak(m, seq, ekfac or EKFACConfig(), finetune),
        "TrackStar": trackstar_peak(m, seq, trackstar or TrackStarConfig()),
        "full-gradient TracIn": tracin,
    }
    return Estimate(m.name, p, w, {k: float(x) for k, x in peaks.items()})


def backward_bytes(m: ModelConfig, seq_len: int, rows: int) -> float:
    """Activations kept for the backward of ``rows`` rows of ``seq_len`` tokens, with their logits."""
    b, d, v = DTYPE_BYTES[m.dtype], m.hidden_size, m.vocab_size
    return float(rows * (ACT_PER_TOKEN_LAYER * b * d * seq_len * m.layers + (2 * b + 8) * seq_len * v))


def ekfac_modules(m: ModelConfig, cfg: EKFACConfig, finetune: FinetuneConfig | None = None) -> list[tuple[int, int]]:
    """``(s, a)`` of each module EK-FAC tracks (``method.modules``; a bias adds one input column), on the model
    ``finetune`` leaves (a LoRA adapter's layers included: :func:`~rise_exp.models.catalogue.adapted_linear_shapes`)."""
    regex = re.compile(cfg.modules)
    shapes = linear_shapes(m) if finetune is None else adapted_linear_shapes(m, finetune)
    return [(s, a + int(bias)) for name, s, a, bias in shapes if regex.search(name)]


def ekfac_factor_bytes(m: ModelConfig, cfg: EKFACConfig | None = None, finetune: FinetuneConfig | None = None) -> float:
    """Bytes of kronfluence's fitted factors that scoring reads (module docstring)."""
    cfg = cfg or EKFACConfig()
    c, total = DTYPE_BYTES[cfg.dtype], 0
    for s, a in ekfac_modules(m, cfg, finetune):
        lam = s * a if cfg.strategy != "kfac" else 0
        eigen = a * a + s * s + a + s if cfg.strategy != "diagonal" else 0
        total += c * (eigen + lam)
    return float(total)


def ekfac_covariance_bytes(m: ModelConfig, cfg: EKFACConfig, finetune: FinetuneConfig | None = None) -> float:
    """Bytes of the activation and gradient covariances the eigendecompositions are fitted from."""
    if cfg.strategy == "diagonal":
        return 0.0
    return float(DTYPE_BYTES[cfg.dtype] * sum(a * a + s * s for s, a in ekfac_modules(m, cfg, finetune)))


def ekfac_peak(m: ModelConfig, seq_len: int, cfg: EKFACConfig, finetune: FinetuneConfig | None = None) -> float:
    """EK-FAC's peak bytes (module docstring): two weight copies (with a LoRA adapter's, float32), factors, query
    gradients, one batch's backward."""
    b, c = DTYPE_BYTES[m.dtype], DTYPE_BYTES[cfg.dtype]
    shapes = ekfac_modules(m, cfg, finetune) or [(0, 0)]
    r = cfg.query_low_rank
    query = c * cfg.query_batch * sum(s * a if r is None else r * (s + a) for s, a in shapes)
    rows = max(cfg.factor_batch, cfg.train_batch)
    work = backward_bytes(m, seq_len, rows) + c * rows * max(s * a for s, a in shapes)
    factors = ekfac_factor_bytes(m, cfg, finetune) + ekfac_covariance_bytes(m, cfg, finetune)
    adapter = 4 * lora_parameter_count(m, finetune) if finetune is not None else 0
    return float(2 * (b * parameter_count(m) + adapter) + factors + query + work)


def trackstar_peak(m: ModelConfig, seq_len: int, cfg: TrackStarConfig) -> float:
    """TrackStar's peak bytes (module docstring): weights, second moments, then the larger pass."""
    b, k = DTYPE_BYTES[m.dtype], cfg.projection_dim
    trunk = [(s, a) for _, s, a, _ in linear_shapes(m)[:-1]]
    p_t = sum(s * a for s, a in trunk)
    moments = 4 * p_t if cfg.normalizer == "pool" else 0
    accumulate = (4 + b) * p_t + backward_bytes(m, seq_len, 1) if cfg.normalizer == "pool" else 0.0
    per_row = 4 * cfg.batch_rows * max(s * a for s, a in trunk) if cfg.normalizer == "pool" else 0
    collect = backward_bytes(m, seq_len, cfg.batch_rows) + per_row + 4 * k * sum(s + a for s, a in trunk)
    return float(b * parameter_count(m) + moments + max(accumulate, collect))


def bytes_per_row(
    m: ModelConfig,
    rise: RiseMethodConfig | None = None,
    rapidin: RapidInConfig | None = None,
    trackstar: TrackStarConfig | None = None,
) -> dict:
    """Index bytes per row of RISE, RapidIn, TrackStar and an unsketched full-gradient index."""
    rise, rapidin, trackstar = rise or RiseMethodConfig(), rapidin or RapidInConfig(), trackstar or TrackStarConfig()
    per = {"float16": 2, "bfloat16": 2, "float32": 4}
    trunk_modules = len(linear_shapes(m)) - 1
    return {
        "RISE": per[rise.dtype] * rise.signature_dim,
        "RapidIn": per[rapidin.dtype] * rapidin.k,
        "TrackStar": DTYPE_BYTES[m.dtype] * trunk_modules * trackstar.projection_dim**2,
        "full-gradient TracIn": DTYPE_BYTES[m.dtype] * parameter_count(m),
    }
