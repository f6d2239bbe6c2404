"""Settings of the RISE encoder (support rule, sketches, fusion, chunking, head batching)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from rise_exp.errors import ConfigError, allowed

CHANNELS = ("rh", "gh", "rg")
FUSIONS = ("rh", "gh", "rg", "rh+gh", "rh+rg", "gh+rg", "rh+gh+rg")
SKETCHES = ("countsketch", "identity")
DTYPES = ("float16", "bfloat16", "float32")


@dataclass(frozen=True)
class RiseConfig:
    """All settings of RISE signatures; defaults are those of the paper's runs (official RISE code).

    Attributes:
        fusion: Channels concatenated into the signature, ``+``-joined, e.g. ``"rh+gh"``.
        kr: CountSketch width of the vocabulary residual ``r`` (``CS_r: R^V -> R^kr``).
        kh: CountSketch width of the hidden state ``h`` (``CS_h: R^D -> R^kh``).
        kg: CountSketch width of the projected error ``W^T r`` (``CS_g: R^D -> R^kg``).
        sketch: ``"countsketch"`` or ``"identity"`` (no sketch: kr = V, kh = kg = D; for tests).
        seed: Seed of the CountSketch tables (h: seed, g: seed + 1, r: seed + 2, as the RISE code).
        tau: Softmax temperature applied to the logits.
        rho: Cumulative probability the residual support must reach, in (0, 1].
        topk: Cap K on the support (top-K of ``z / tau``).
        min_keep: Minimum support size before the ground truth is added.
        full_support: Use all V tokens, no truncation (exactness tests; cost ~ V).
        lam_rh: Weight of the RH block (lexical residual channel).
        lam_gh: Weight of the GH block (semantic projected-error channel).
        lam_rg: Weight of the RG block.
        normalize_tokens: L2-normalise each per-token sketch (off only for the exactness anchor).
        normalize_signature: L2-normalise chunk and row signatures (off for the exactness anchor).
        chunk_len: Tokens per chunk of long rows.
        chunk_overlap: Tokens shared by consecutive chunks (``0 <= overlap < chunk_len``).
        overlap_targets: Whether overlap tokens are also targets of the later chunk (True, as the
            RISE code: every chunk is scored on all its own tokens) or context only (False).
        max_tokens_per_batch: Target tokens per head slice; bounds the ``[tokens, V]`` logits buffer.
            The default keeps a slice's logits (128 x 50k fp32 = 26 MB) cache-resident between passes.
        dtype: Storage dtype of signatures in the index.
        check_logits: Verify once that the head's recomputed logits match the model's.
    """

    fusion: str = "rh+gh"
    kr: int = 128
    kh: int = 128
    kg: int = 64
    sketch: str = "countsketch"
    seed: int = 42
    tau: float = 0.1
    rho: float = 0.92
    topk: int = 256
    min_keep: int = 4
    full_support: bool = False
    lam_rh: float = 1.0
    lam_gh: float = 0.3
    lam_rg: float = 0.0
    normalize_tokens: bool = True
    normalize_signature: bool = True
    chunk_len: int = 256
    chunk_overlap: int = 50
    overlap_targets: bool = True
    max_tokens_per_batch: int = 128
    dtype: str = "float16"
    check_logits: bool = True

    def __post_init__(self) -> None:
        self.validate()

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
                raise ConfigError("sketch='identity' has model-dependent dims; pass vocab_size and hidden_size")
            kr, kh, kg = vocab_size, hidden_size, hidden_size
        sizes = {"rh": kr * kh, "gh": kg * kh, "rg": kr * kg}
        return {c: sizes[c] for c in self.channels}

    @property
    def signature_dim(self) -> int:
        """Length of one signature (CountSketch mode)."""
        return sum(self.block_dims().values())

    def validate(self) -> None:
        """Raise ConfigError naming the first bad setting."""
        if self.fusion not in FUSIONS:
            raise allowed("rise fusion", self.fusion, FUSIONS)
        if self.sketch not in SKETCHES:
            raise allowed("rise sketch", self.sketch, SKETCHES)
        if self.dtype not in DTYPES:
            raise allowed("rise dtype", self.dtype, DTYPES)
        for name in ("kr", "kh", "kg", "topk", "min_keep", "max_tokens_per_batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ConfigError(f"rise {name} must be a positive integer, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"rise seed must be an integer, got {self.seed!r}")
        if not isinstance(self.chunk_len, int) or self.chunk_len < 2:
            raise ConfigError(f"rise chunk_len must be an integer >= 2, got {self.chunk_len!r}")
        if not isinstance(self.chunk_overlap, int) or not 0 <= self.chunk_overlap < self.chunk_len:
            raise ConfigError(
                f"rise chunk_overlap must be an integer in [0, chunk_len={self.chunk_len}), got {self.chunk_overlap!r}"
            )
        if not _is_real(self.rho) or not 0.0 < self.rho <= 1.0:
            raise ConfigError(f"rise rho must be in (0, 1], got {self.rho!r}")
        if not _is_real(self.tau) or not self.tau > 0.0:
            raise ConfigError(f"rise tau must be > 0, got {self.tau!r}")
        for name in ("lam_rh", "lam_gh", "lam_rg"):
            if not _is_real(getattr(self, name)):
                raise ConfigError(f"rise {name} must be a number, got {getattr(self, name)!r}")
        for name in ("full_support", "normalize_tokens", "normalize_signature", "overlap_targets", "check_logits"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"rise {name} must be true or false, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> RiseConfig:
        """Build from a plain mapping (e.g. a Hydra node); unknown keys raise ConfigError."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(mapping) - names)
        if unknown:
            raise ConfigError(f"unknown rise setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}")
        return cls(**dict(mapping))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (round-trips through :meth:`from_dict`)."""
        return asdict(self)


def _is_real(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
