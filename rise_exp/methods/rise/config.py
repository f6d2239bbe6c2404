"""Settings of RISE: the signature (:class:`RiseConfig`), its index, and the ``method=rise`` group."""

from __future__ import annotations

from dataclasses import dataclass, fields

from rise_exp.config.run_settings import DEFAULT_SEED
from rise_exp.config.settings import Settings, setting
from rise_exp.core.errors import ConfigError

CHANNELS = ("rh", "gh", "rg")
FUSIONS = ("rh", "gh", "rg", "rh+gh", "rh+rg", "gh+rg", "rh+gh+rg")
SKETCHES = ("countsketch", "identity")
DTYPES = ("float16", "bfloat16", "float32")
VALUATIONS = ("mean", "rrf")
RESIDUALS = ("stable", "naive")
DEFAULT_BATCH_TOKENS = 8192
DEFAULT_BATCH_CHUNKS = 128
DEFAULT_PAD_MULTIPLE = 16


@dataclass(frozen=True)
class RiseConfig(Settings):
    """Everything a RISE signature depends on; defaults are the paper's (official RISE code)."""

    GROUP = "method"
    fusion: str = setting(
        "rh+gh", "fused channels: rh (lexical residual), gh (semantic projected error), rg", choices=FUSIONS
    )
    kr: int = setting(128, "CountSketch width of the vocabulary residual r", gt=0)
    kh: int = setting(128, "CountSketch width of the hidden state h", gt=0)
    kg: int = setting(64, "CountSketch width of the projected error W^T r", gt=0)
    sketch: str = setting("countsketch", "countsketch, or identity (no sketch: kr = V, kh = kg = D)", choices=SKETCHES)
    seed: int = setting(DEFAULT_SEED, "seed of the CountSketch tables (h: seed, g: seed + 1, r: seed + 2)")
    ensemble: int = setting(
        1,
        "independent sketch tables (member e: seed + 1000 e); the signature concatenates the E members' "
        "signatures over sqrt(E), so a score is the mean of the members' scores (E x the bytes)",
        gt=0,
    )
    tau: float = setting(0.1, "softmax temperature of the logits", gt=0)
    rho: float = setting(0.92, "cumulative probability the residual support must reach", gt=0, le=1)
    topk: int = setting(256, "cap K on the support (top-K of z / tau)", gt=0)
    min_keep: int = setting(4, "minimum support size before the ground truth is added", gt=0)
    full_support: bool = setting(False, "all V tokens, no truncation (exactness tests; cost ~ V)")
    residual: str = setting(
        "stable",
        "stable: r_y = -sum of the other kept entries, in float64; naive: p_y - 1 after rounding p to the "
        "logits' dtype, as the official RISE code (rounding noise when p_y is within 1e-7 of 1; numerics ablation)",
        choices=RESIDUALS,
    )
    lam_rh: float = setting(1.0, "weight of the RH block")
    lam_gh: float = setting(0.3, "weight of the GH block")
    lam_rg: float = setting(0.0, "weight of the RG block")
    normalize_tokens: bool = setting(True, "L2-normalise each per-token sketch (off only for the exactness anchor)")
    normalize_signature: bool = setting(True, "L2-normalise chunk and row signatures")
    norm_eps: float = setting(
        1e-8,
        "normalising divides by max(norm, norm_eps) (official RISE code: 1e-8), so near-zero residuals of "
        "near-certain tokens stay short instead of becoming unit vectors; 0 = exact norm",
        ge=0,
    )
    chunk_len: int = setting(256, "tokens per chunk of long rows", ge=2)
    chunk_overlap: int = setting(50, "tokens shared by consecutive chunks", ge=0)
    overlap_targets: bool = setting(True, "overlap tokens are targets of the later chunk too (RISE code)")
    max_tokens_per_batch: int = setting(
        1024, "target tokens per head slice; bounds the [tokens, V] logits buffer", gt=0
    )
    dtype: str = setting("float16", "signature storage dtype in the index", choices=DTYPES)
    check_logits: bool = setting(True, "verify once that the head's logits equal the model's")

    def validate(self) -> None:
        if self.ensemble > 1 and self.sketch == "identity":
            raise self.fail(
                "ensemble", f"({self.ensemble}) needs method.sketch=countsketch: identity sketches are all equal"
            )
        if self.chunk_overlap >= self.chunk_len:
            raise self.fail("chunk_overlap", f"must be in [0, chunk_len={self.chunk_len}), got {self.chunk_overlap!r}")

    @property
    def channels(self) -> tuple[str, ...]:
        """Fused channels in signature order (rh, gh, rg)."""
        parts = set(self.fusion.split("+"))
        return tuple(c for c in CHANNELS if c in parts)

    def block_dims(self, vocab_size: int | None = None, hidden_size: int | None = None) -> dict[str, int]:
        """Width of each fused block; identity sketches need the model's ``vocab_size``/``hidden_size``."""
        kr, kh, kg = self.kr, self.kh, self.kg
        if self.sketch == "identity":
            if vocab_size is None or hidden_size is None:
                raise ConfigError("method.sketch=identity has model-dependent dims; pass vocab_size and hidden_size")
            kr, kh, kg = vocab_size, hidden_size, hidden_size
        sizes = {"rh": kr * kh, "gh": kg * kh, "rg": kr * kg}
        return {c: sizes[c] for c in self.channels}

    @property
    def signature_dim(self) -> int:
        """Length of one signature (CountSketch mode; all ensemble members)."""
        return self.ensemble * sum(self.block_dims().values())

    def signature_config(self) -> RiseConfig:
        """Only the signature settings (drops indexing and protocol settings of subclasses)."""
        names = [f.name for f in fields(RiseConfig)]
        return RiseConfig(**{n: getattr(self, n) for n in names})


@dataclass(frozen=True)
class RiseIndexConfig(Settings):
    """Indexing (Lightning ``Trainer.predict`` + a prediction writer into an on-disk index)."""

    GROUP = "method.index"
    batch_tokens: int = setting(DEFAULT_BATCH_TOKENS, "padded tokens per forward batch (length-sorted)", gt=0)
    batch_chunks: int = setting(
        DEFAULT_BATCH_CHUNKS,
        "chunks per forward batch at most: bounds the [chunks, dim] signature buffers of short rows",
        gt=0,
    )
    pad_multiple: int = setting(
        DEFAULT_PAD_MULTIPLE,
        "pad batches to a multiple of this many tokens (at most chunk_len): a few batch shapes keep the heap "
        "from fragmenting, so peak memory does not grow with the pool; 1 = pad to the longest chunk",
        gt=0,
    )
    block_rows: int = setting(4096, "rows per on-disk block (one marker + checksum each)", gt=0)
    store_tokens: bool | None = setting(None, "store token ids and masks per row; null = on for pools under 100k rows")
    reuse: bool = setting(True, "reuse or resume an index of the same build in dir; false: rebuild it from scratch")
    dir: str | None = setting(None, "index directory (default: <run dir>/method/rise_index)")


@dataclass(frozen=True)
class RiseMethodConfig(RiseConfig):
    """``method=rise``: the signature settings plus indexing, valuation and which tokens count."""

    name: str = setting("rise", "method name")
    seed: int | None = setting(  # type: ignore[assignment]
        None, "seed of the CountSketch tables (h: seed, g: seed + 1, r: seed + 2); null = the global seed"
    )
    index: RiseIndexConfig = setting(factory=RiseIndexConfig, doc="indexing settings")
    valuation: str = setting("mean", "mean (mean query signature) or rrf (reciprocal-rank fusion)", choices=VALUATIONS)
    mask_train_prompt: bool | None = setting(
        None, "null = data.attribute_mask_prompt; true/false overrides it for index rows"
    )
    mask_query_prompt: bool | None = setting(
        None, "null = data.attribute_mask_prompt; true/false overrides it for queries"
    )
