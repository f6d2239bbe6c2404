"""CountSketch tables of RISE: one bucket and one sign per input coordinate, seeded and savable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from rise_exp.core.errors import ConfigError, IndexError_
from rise_exp.methods.base import MEMBER_SEED_STRIDE, member_seed
from rise_exp.methods.rise.config import RiseConfig

TABLE_NAMES = ("h_buckets", "h_signs", "r_buckets", "r_signs", "g_buckets", "g_signs")
#: Ensemble member ``e`` draws its tables from ``seed + e * SEED_STRIDE`` (``method.ensemble``).
SEED_STRIDE = MEMBER_SEED_STRIDE


@dataclass(frozen=True)
class CountSketch:
    """Linear map ``x -> sum_i signs[i] * x_i * e_{buckets[i]}`` from ``R^in_dim`` to ``R^out_dim``.

    Attributes:
        buckets: int64 ``[in_dim]`` target coordinate of each input coordinate.
        signs: float32 ``[in_dim]`` of +-1.
        out_dim: Output width.
    """

    buckets: torch.Tensor
    signs: torch.Tensor
    out_dim: int

    @property
    def in_dim(self) -> int:
        return int(self.buckets.shape[0])

    @classmethod
    def seeded(cls, in_dim: int, out_dim: int, seed: int) -> CountSketch:
        """Draw buckets then sign bits from a CPU ``torch.Generator`` (same stream as the RISE code)."""
        g = torch.Generator(device="cpu")
        g.manual_seed(int(seed))
        buckets = torch.randint(0, out_dim, (in_dim,), generator=g, dtype=torch.long)
        bits = torch.randint(0, 2, (in_dim,), generator=g, dtype=torch.long)
        return cls(buckets, bits.to(torch.float32) * 2.0 - 1.0, int(out_dim))

    @classmethod
    def identity(cls, dim: int) -> CountSketch:
        """The identity map (no sketch)."""
        return cls(torch.arange(dim, dtype=torch.long), torch.ones(dim), int(dim))

    def matrix(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The explicit ``[in_dim, out_dim]`` matrix ``S`` with ``CS(x) = x @ S``."""
        m = torch.zeros((self.in_dim, self.out_dim), dtype=dtype, device=self.buckets.device)
        m[torch.arange(self.in_dim, device=m.device), self.buckets] = self.signs.to(dtype)
        return m

    def sparse(self, index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Sketch rows given by their non-zeros: ``index``/``value`` ``[n, w]`` -> ``[n, out_dim]``."""
        out = torch.zeros((index.shape[0], self.out_dim), dtype=value.dtype, device=value.device)
        out.scatter_add_(1, self.buckets[index], value * self.signs.to(value.dtype)[index])
        return out

    def to(self, device: torch.device | str) -> CountSketch:
        return CountSketch(self.buckets.to(device), self.signs.to(device), self.out_dim)


def drop_rounding(sketched: torch.Tensor, magnitude: torch.Tensor, terms: int) -> torch.Tensor:
    """Rows of ``sketched`` set to zero where every entry is within the rounding error of its sum.

    A sketch coordinate sums at most ``terms`` products whose absolute values add up to at most
    ``magnitude`` (``[n]``, e.g. ``sum_v |x_v|`` for a CountSketch of ``x``); summing in ``sketched``'s
    dtype leaves an error of at most ``terms * eps * magnitude`` in each coordinate. A row no larger than
    that is rounding: its exact value may be zero, and normalising it would turn rounding into a unit
    vector. (The max-abs entry is compared, not the norm, whose squares underflow for tiny rows.)
    """
    tol = max(terms, 1) * torch.finfo(sketched.dtype).eps
    noise = sketched.abs().amax(dim=1) <= tol * magnitude.to(sketched.dtype)
    return sketched.masked_fill(noise[:, None], 0.0)


@dataclass(frozen=True)
class SketchTables:
    """The three sketches ``CS_h: R^D->R^kh``, ``CS_r: R^V->R^kr``, ``CS_g: R^D->R^kg``."""

    h: CountSketch
    r: CountSketch
    g: CountSketch

    @classmethod
    def create(cls, cfg: RiseConfig, vocab_size: int, hidden_size: int, member: int = 0) -> SketchTables:
        """Tables for a model with ``vocab_size`` unembedding rows and ``hidden_size`` features.

        ``member`` ``e`` of an ensemble uses ``cfg.seed + e * SEED_STRIDE``.
        """
        if vocab_size <= 0 or hidden_size <= 0:
            raise ConfigError(f"vocab_size and hidden_size must be positive, got {vocab_size}, {hidden_size}")
        if cfg.sketch == "identity":
            return cls(
                CountSketch.identity(hidden_size), CountSketch.identity(vocab_size), CountSketch.identity(hidden_size)
            )
        seed = member_seed(cfg.seed, member)
        return cls(
            h=CountSketch.seeded(hidden_size, cfg.kh, seed),
            r=CountSketch.seeded(vocab_size, cfg.kr, seed + 2),
            g=CountSketch.seeded(hidden_size, cfg.kg, seed + 1),
        )

    @classmethod
    def members(cls, cfg: RiseConfig, vocab_size: int, hidden_size: int) -> list[SketchTables]:
        """The ``cfg.ensemble`` members' tables (one for a plain RISE signature)."""
        return [cls.create(cfg, vocab_size, hidden_size, e) for e in range(cfg.ensemble)]

    @property
    def vocab_size(self) -> int:
        return self.r.in_dim

    @property
    def hidden_size(self) -> int:
        return self.h.in_dim

    def to(self, device: torch.device | str) -> SketchTables:
        return SketchTables(self.h.to(device), self.r.to(device), self.g.to(device))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors for safetensors: ``{h,r,g}_buckets`` (int64), ``{h,r,g}_signs`` (int8) and
        ``out_dims`` (int64 ``[3]`` = kh, kr, kg)."""
        out: dict[str, torch.Tensor] = {}
        for name in ("h", "r", "g"):
            cs: CountSketch = getattr(self, name)
            out[f"{name}_buckets"] = cs.buckets.detach().cpu().to(torch.int64).contiguous()
            out[f"{name}_signs"] = cs.signs.detach().cpu().to(torch.int8).contiguous()
        out["out_dims"] = torch.tensor([self.h.out_dim, self.r.out_dim, self.g.out_dim], dtype=torch.int64)
        return out

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> SketchTables:
        """Inverse of :meth:`state_dict`; raises IndexError_ on missing or inconsistent tables."""
        missing = [k for k in (*TABLE_NAMES, "out_dims") if k not in state]
        if missing:
            raise IndexError_(f"sketch tables lack {', '.join(missing)}")
        dims = [int(x) for x in state["out_dims"].tolist()]
        parts = []
        for name, out_dim in zip(("h", "r", "g"), dims):
            b, s = state[f"{name}_buckets"].to(torch.long), state[f"{name}_signs"].to(torch.float32)
            if b.dim() != 1 or b.shape != s.shape:
                raise IndexError_(f"sketch table {name}: buckets {tuple(b.shape)} and signs {tuple(s.shape)} differ")
            if b.numel() and (int(b.min()) < 0 or int(b.max()) >= out_dim):
                raise IndexError_(f"sketch table {name}: bucket outside [0, {out_dim})")
            if not bool(((s == 1) | (s == -1)).all()):
                raise IndexError_(f"sketch table {name}: signs must be +-1")
            parts.append(CountSketch(b, s, out_dim))
        if parts[0].in_dim != parts[2].in_dim:
            raise IndexError_("sketch tables h and g disagree on the hidden size")
        return cls(*parts)

    def check(self, cfg: RiseConfig, vocab_size: int, hidden_size: int) -> None:
        """Raise ConfigError unless the tables fit ``cfg`` and the model's dims."""
        want = (hidden_size, vocab_size, hidden_size)
        outs = (hidden_size, vocab_size, hidden_size) if cfg.sketch == "identity" else (cfg.kh, cfg.kr, cfg.kg)
        for name, i, o in zip(("h", "r", "g"), want, outs):
            cs: CountSketch = getattr(self, name)
            if (cs.in_dim, cs.out_dim) != (i, o):
                raise ConfigError(
                    f"sketch table {name} maps {cs.in_dim}->{cs.out_dim} but config/model need {i}->{o} "
                    "(settings kr/kh/kg/sketch or the model differ from the index)"
                )
