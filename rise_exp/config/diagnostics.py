"""Settings of the ``stage=diagnose`` diagnostics: one class per diagnostic, nested in the stage settings.

``python -m rise_exp stage=diagnose diagnostic=<name>`` picks one (``conf/diagnostic/<name>.yaml`` sets
``stage.diagnostic``); its settings are ``stage.<name>.<setting>``, e.g.
``stage.sketch_fidelity.seeds=[0,1,2,3,4,5,6,7]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rise_exp.config.settings import Settings, setting

DIAGNOSTICS = ("sketch_fidelity", "head_vs_full", "layer_energy", "hidden_retrieval", "sparse_support", "memory")
SEEDS = (0, 1, 2, 3, 4)
KS = (5, 10, 50)
#: Sketch widths kr/kh/kg of the issue (#13), in its order; the first is taken literally (kg = 28).
WIDTHS = ("16/8/28", "32/32/16", "64/64/32", "128/128/64", "256/256/128")
MEMORY_METHODS = ("rise", "rapidin", "zo_inf", "stride", "bm25")
EXTRAPOLATE = (
    "pythia-14m",
    "pythia-31m",
    "pythia-70m",
    "pythia-160m",
    "pythia-410m",
    "pythia-1b",
    "pythia-1.4b",
    "pythia-2.8b",
    "pythia-6.9b",
    "olmo-1b",
    "olmo-7b",
    "olmo-13b",
    "olmo-32b",
)


def parse_width(text: str) -> tuple[int, int, int]:
    """``"128/128/64"`` -> ``(kr, kh, kg)``; raises ValueError unless three positive integers."""
    parts = text.split("/")
    dims = tuple(int(p) for p in parts)
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(text)
    return dims  # type: ignore[return-value]


def _check_seeds(cfg: Settings, name: str, seeds: tuple[int, ...], least: int = 1) -> None:
    if len(seeds) < least or len(set(seeds)) != len(seeds):
        raise cfg.fail(name, f"must list at least {least} distinct integer seeds, got {list(seeds)}")


def _check_positive(cfg: Settings, name: str, values: tuple[float, ...]) -> None:
    if not values or any(v <= 0 for v in values):
        raise cfg.fail(name, f"must be a non-empty list of positive numbers, got {list(values)}")


@dataclass(frozen=True)
class SketchFidelityConfig(Settings):
    """How much sketching loses: RISE at each width against unsketched RISE and the exact LM-head kernel."""

    GROUP = "stage.sketch_fidelity"
    widths: tuple[str, ...] = setting(WIDTHS, "sketch widths kr/kh/kg, e.g. [64/64/32,128/128/64]")
    seeds: tuple[int, ...] = setting(SEEDS, "sketch seeds (at least 5 for mean +- std)")
    ensembles: tuple[int, ...] = setting(
        (2, 4), "method.ensemble sizes E at the method's kr/kh/kg, against one sketch of E x kr / kh / E x kg"
    )
    top_n: int = setting(10, "overlap of the top-N rows", gt=0)
    ks: tuple[int, ...] = setting(KS, "K of auPRC@K beside the fidelity numbers")

    def validate(self) -> None:
        for w in self.widths:
            try:
                parse_width(w)
            except ValueError:
                raise self.fail("widths", f"entry {w!r} is not kr/kh/kg (three positive integers)") from None
        self.require_items("widths", "give kr/kh/kg triples, e.g. [128/128/64]")
        _check_seeds(self, "seeds", self.seeds)
        _check_positive(self, "ks", self.ks)
        if any(e < 2 for e in self.ensembles):
            raise self.fail("ensembles", f"entries must be >= 2 (1 is the single sketch), got {list(self.ensembles)}")


@dataclass(frozen=True)
class HeadVsFullConfig(Settings):
    """Does the output layer carry the influence: full-model TracIn against the head kernel and RISE."""

    GROUP = "stage.head_vs_full"
    n_rows: int = setting(200, "training rows in the subset (drawn with subset_seed; all when larger)", gt=1)
    n_queries: int | None = setting(10, "queries in the subset (null = all)", gt=0)
    subset_seed: int = setting(0, "seed of the row and query subset")
    seeds: tuple[int, ...] = setting(SEEDS, "RISE sketch seeds")
    top_n: int = setting(10, "top-N overlap and positives among the top N", gt=0)

    def validate(self) -> None:
        _check_seeds(self, "seeds", self.seeds)


@dataclass(frozen=True)
class LayerEnergyConfig(Settings):
    """Where the gradient lives: share of squared gradient norm per parameter group."""

    GROUP = "stage.layer_energy"
    n_rows: int = setting(100, "training rows (drawn with subset_seed; all when larger)", gt=0)
    n_queries: int | None = setting(None, "queries (null = all)", gt=0)
    subset_seed: int = setting(0, "seed of the row and query subset")


@dataclass(frozen=True)
class HiddenRetrievalConfig(Settings):
    """Is RISE more than a good layer choice: retrieval by hidden-state cosine at every layer."""

    GROUP = "stage.hidden_retrieval"
    seeds: tuple[int, ...] = setting(SEEDS, "RISE sketch seeds")
    ks: tuple[int, ...] = setting(KS, "K of auPRC@K")
    top_n: int = setting(10, "P@N and the top-N overlap with RISE", gt=0)

    def validate(self) -> None:
        _check_seeds(self, "seeds", self.seeds)
        _check_positive(self, "ks", self.ks)


@dataclass(frozen=True)
class SparseSupportConfig(Settings):
    """What the Top-K + ground-truth support keeps of the dense residual, against K and tau."""

    GROUP = "stage.sparse_support"
    topks: tuple[int, ...] = setting((1, 4, 16, 64, 256, 1024), "support caps K (values above V mean V)")
    taus: tuple[float, ...] = setting((0.05, 0.1, 0.5, 1.0), "softmax temperatures")
    rhos: tuple[float, ...] = setting(
        (1.0, 0.92), "cumulative-mass cut-offs; 1.0 = plain Top-K + ground truth, 0.92 = the method's default"
    )
    n_tokens: int = setting(4000, "index-row tokens sampled (whole rows, drawn with seed)", gt=0)
    seed: int = setting(0, "seed of the row sample")

    def validate(self) -> None:
        _check_positive(self, "topks", self.topks)
        _check_positive(self, "taus", self.taus)
        if not self.rhos or any(not 0 < r <= 1 for r in self.rhos):
            raise self.fail("rhos", f"entries must be in (0, 1], got {list(self.rhos)}")


@dataclass(frozen=True)
class MemoryConfig(Settings):
    """What a method costs: bytes per row, peak memory and time against pool size, and extrapolated."""

    GROUP = "stage.memory"
    methods: tuple[str, ...] = setting(MEMORY_METHODS, "methods measured (each run in a fresh process)")
    pool_sizes: tuple[int, ...] = setting((100, 200, 400), "first rows of the pool indexed per measurement")
    n_queries: int = setting(20, "queries scored per measurement (fewer if the task has fewer)", gt=0)
    timeout_s: int = setting(1800, "seconds one measurement may take", gt=0)
    extrapolate: tuple[str, ...] = setting(EXTRAPOLATE, "conf/model/ names whose architecture facts are extrapolated")
    gpu_gb: float = setting(80.0, "GPU memory the feasibility table checks against (GB = 1e9 bytes)", gt=0)
    seq_len: int = setting(512, "tokens per row assumed by the extrapolation", gt=0)

    def validate(self) -> None:
        self.require_items("methods", "name methods to measure, e.g. [rise,bm25]")
        if not self.pool_sizes or any(n < 2 for n in self.pool_sizes):
            raise self.fail("pool_sizes", f"must be a non-empty list of integers >= 2, got {list(self.pool_sizes)}")
