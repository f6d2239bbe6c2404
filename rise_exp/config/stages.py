"""``stage`` group: one settings class per stage (what runs: attribute, valuate, finetune, closed_loop,
diagnose)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rise_exp.config.diagnostics import (
    DIAGNOSTICS,
    HeadVsFullConfig,
    HiddenRetrievalConfig,
    LayerEnergyConfig,
    MemoryConfig,
    SketchFidelityConfig,
    SparseSupportConfig,
)
from rise_exp.config.settings import Settings, setting

VALUATION_MODES = ("mean", "rrf")
#: Closed-loop selectors that are not methods (random order, the whole pool, and the label bounds).
BUILTIN_SELECTORS = ("random", "all", "oracle", "anti_oracle")
BUDGET_UNITS = ("rows", "tokens")
#: What a retrained model is measured by, per query: the mean NLL of the query's answer tokens, and whether
#: its greedy answer to the query's prompt is in the Howdy backdoor's sci-fi style (0 / 1).
MEASURES = ("loss", "backdoor", "style_loss")
#: Every attribution method, the default of the counterfactual stages.
ALL_METHODS = ("rise", "rapidin", "zo_inf", "stride", "bm25")
REMOVAL_SELECTIONS = ("top", "bottom", "random")


@dataclass(frozen=True)
class StageConfig(Settings):
    """Settings every stage has."""

    GROUP = "stage"
    name: str = setting("", "stage name")


@dataclass(frozen=True)
class AttributeStageConfig(StageConfig):
    """Retrospective attribution: score every query against every training row, evaluate top-K / bottom-K."""

    name: str = setting("attribute", "stage name")
    ks: tuple[int, ...] = setting((5, 10, 50), "K of auPRC@K / auROC@K / P@K")
    write_topk: int = setting(10, "rows per query written to topk.jsonl", gt=0)
    scores: str = setting(
        "auto",
        "dense: the full [queries, rows] score matrix (metrics from it, scores.npy written); topk: only each "
        "query's top and bottom max(ks, write_topk) rows, streamed over the index blocks (metrics from those, "
        "equal to dense); auto: dense while queries x rows <= stage.dense_max_cells, else topk",
        choices=("auto", "dense", "topk"),
    )
    dense_max_cells: int = setting(5_000_000, "largest queries x rows for which scores=auto keeps dense scores", gt=0)
    bm25_check: bool = setting(
        True,
        "task=custom, a method other than bm25: print how far its top-10 agrees with BM25's (with labels, both "
        "P@10) as a sanity line; metrics bm25_overlap@10, bm25_p@10 (pools up to stage.dense_max_cells cells)",
    )
    members: bool = setting(
        False,
        "method=rise or rapidin with method.ensemble = E >= 2: also evaluate each member alone (member e is the "
        "single sketch of seed method.seed + 1000 e) from the same index, so E sketch seeds cost one pass over "
        "the pool; writes members.csv and their mean and std under metrics.json's members",
    )

    explain: bool = setting(
        True,
        "per-token shares of each query's top stage.write_topk rows (explain.jsonl: each query token's and row "
        "token's share of the score, summing to it; RISE and BM25 exactly, RapidIn with method.lora=true; other "
        "methods say they have none)",
    )

    def validate(self) -> None:
        if not self.ks or any(k < 1 for k in self.ks):
            raise self.fail("ks", f"must be a non-empty list of positive integers, got {list(self.ks)}")
        if self.members and self.scores == "topk":
            raise self.fail("members", "needs dense scores (stage.scores=dense or auto), not stage.scores=topk")


@dataclass(frozen=True)
class IndexQueriesMixin(Settings):
    """Answering from a finished index (any earlier run's) with new queries or targets."""

    GROUP = "stage"
    index: str | None = setting(None, "a finished index directory; null = build or reuse the configured task's")
    queries_path: str | None = setting(None, "queries / targets from a JSONL / JSON file (null = the task's)")
    query_texts: tuple[str, ...] = setting((), "queries / targets given inline, e.g. stage.query_texts='[a, b]'")
    query_fields: dict[str, Any] = setting(factory=dict, doc="Record field -> key of the queries file")

    def check_queries(self) -> None:
        """With an index, queries must come from a file or inline texts (there is no task to take them from)."""
        if self.index and not self.queries_path and not self.query_texts:
            raise self.fail("queries_path", "or stage.query_texts is required with stage.index")


@dataclass(frozen=True)
class ValuateStageConfig(IndexQueriesMixin, StageConfig):
    """Prospective (zero-shot) valuation of every candidate against the target set (the queries)."""

    name: str = setting("valuate", "stage name")
    mode: str | None = setting(None, "mean or rrf; null = the method's own valuation setting", choices=VALUATION_MODES)

    def validate(self) -> None:
        self.check_queries()


@dataclass(frozen=True)
class QueryStageConfig(IndexQueriesMixin, StageConfig):
    """Answer new queries from an index: each query's top rows (ids, scores, text previews) in topk.jsonl."""

    name: str = setting("query", "stage name")
    k: int = setting(10, "rows per query", gt=0)

    def validate(self) -> None:
        self.check_queries()


@dataclass(frozen=True)
class ExplainStageConfig(IndexQueriesMixin, StageConfig):
    """Per-token shares of each query's top rows (explain.jsonl) from an existing index, without rebuilding it."""

    name: str = setting("explain", "stage name")
    k: int = setting(10, "top rows explained per query", gt=0)

    def validate(self) -> None:
        self.check_queries()


@dataclass(frozen=True)
class SelectStageConfig(IndexQueriesMixin, StageConfig):
    """Keep the top (or bottom) of the pool by value against targets; write the rows as a training pool."""

    name: str = setting("select", "stage name")
    pool_path: str | None = setting(None, "with stage.index: the pool file the index was built from")
    pool_fields: dict[str, Any] = setting(factory=dict, doc="Record field -> key of the pool file")
    stream: bool | None = setting(
        None,
        "read stage.pool_path as memory-mapped Arrow, one row at a time (as task.stream); null = for files of "
        "512 MB or more",
    )
    mode: str | None = setting(None, "mean or rrf; null = the method's own", choices=VALUATION_MODES)
    keep: str = setting("top", "keep the highest (top) or lowest (bottom) values", choices=("top", "bottom"))
    fraction: float | None = setting(None, "share of the pool to keep, in (0, 1]", gt=0, le=1)
    count: int | None = setting(None, "rows to keep", gt=0)

    def validate(self) -> None:
        self.check_queries()
        if (self.fraction is None) == (self.count is None):
            raise self.fail("fraction", "or stage.count must be set (exactly one of them)")
        if self.index and not self.pool_path:
            raise self.fail("pool_path", "is required with stage.index (the selected rows are written from it)")


@dataclass(frozen=True)
class FinetuneStageConfig(StageConfig):
    """Only finetune (or reuse the cached finetune) and report its losses."""

    name: str = setting("finetune", "stage name")


@dataclass(frozen=True)
class PackConfig(Settings):
    """Packing selections into fixed-length token blocks so every selector trains on the same tokens."""

    GROUP = "stage.pack"
    block_len: int = setting(128, "tokens per training block", ge=2)
    passes: float = setting(3.0, "training tokens = passes x budget x candidate-pool tokens", gt=0)
    train_tokens: int | None = setting(None, "fixed training tokens instead of passes (at least one block)", gt=0)

    def validate(self) -> None:
        if self.train_tokens is not None and self.train_tokens < self.block_len:
            raise self.fail(
                "train_tokens",
                f"({self.train_tokens}) must be at least one block (stage.pack.block_len = {self.block_len})",
            )


@dataclass(frozen=True)
class ContinuedTrainingConfig(Settings):
    """Continued pretraining of each fresh model copy (AdamW, linear warm-up, cosine decay)."""

    GROUP = "stage.train"
    lr: float = setting(1.0e-5, "peak learning rate (Xing et al.: 1e-5)", gt=0)
    weight_decay: float = setting(0.0, "AdamW weight decay", ge=0)
    warmup_ratio: float = setting(0.1, "fraction of steps of warm-up", ge=0, lt=1)
    min_lr_ratio: float = setting(0.0, "final learning rate as a fraction of lr", ge=0, le=1)
    betas: tuple[float, float] = setting((0.9, 0.999), "AdamW betas (HF Trainer defaults)")
    grad_clip: float = setting(1.0, "gradient-norm clipping (0 = off)", ge=0)
    max_tokens_per_batch: int = setting(2048, "padded tokens per step", gt=0)


@dataclass(frozen=True)
class LmEvalConfig(Settings):
    """lm-evaluation-harness tasks (the ``eval`` extra; its datasets need network)."""

    GROUP = "stage.eval.lm_eval"
    enabled: bool = setting(True, "run the harness when it is importable")
    tasks: tuple[str, ...] = setting(("arc_challenge_chat",), "harness task names")
    num_fewshot: int | None = setting(None, "few-shot examples", ge=0)
    limit: int | None = setting(None, "examples per task (null = all)", gt=0)
    batch_size: int = setting(8, "harness batch size", gt=0)
    apply_chat_template: Any = setting(
        "auto", "auto (when the tokenizer has one), true or false", choices=("auto", True, False)
    )
    max_length: int | None = setting(None, "harness max length", gt=0)
    seed: int = setting(1234, "harness seeds")


@dataclass(frozen=True)
class EvalConfig(Settings):
    """Downstream evaluation after continued pretraining."""

    GROUP = "stage.eval"
    heldout: tuple[str, ...] = setting(("high", "junk"), "perplexity on these task.heldout sets")
    max_tokens_per_batch: int = setting(4096, "padded tokens per evaluation batch", gt=0)
    lm_eval: LmEvalConfig = setting(factory=LmEvalConfig, doc="lm-evaluation-harness settings")

    def validate(self) -> None:
        self.require_items("heldout", "name the held-out sets to measure perplexity on, e.g. [high, junk]")


@dataclass(frozen=True)
class ClosedLoopStageConfig(StageConfig):
    """Value the candidates, select under budgets, continue pretraining fresh copies, evaluate."""

    name: str = setting("closed_loop", "stage name")
    selectors: tuple[str, ...] = setting(
        ("rise", "bm25", "random", "all", "oracle", "anti_oracle"), "methods (ranked by value) and built-in selectors"
    )
    methods: dict[str, Any] = setting(factory=dict, doc="per-selector method overrides, e.g. {rise: {kr: 64}}")
    mode: str | None = setting(None, "valuation mode (mean, rrf); null = each method's own", choices=VALUATION_MODES)
    budget_unit: str = setting("rows", "what a budget is a fraction of", choices=BUDGET_UNITS)
    budgets: tuple[float, ...] = setting((0.3,), "selection budgets, fractions of the candidate pool in (0, 1]")
    seeds: tuple[int, ...] = setting((0, 1), "one fresh model per selector x budget x seed")
    log_training: bool = setting(False, "loggers for every training run, not only the summary")
    pack: PackConfig = setting(factory=PackConfig, doc="token packing")
    train: ContinuedTrainingConfig = setting(factory=ContinuedTrainingConfig, doc="continued pretraining")
    eval: EvalConfig = setting(factory=EvalConfig, doc="evaluation")

    def validate(self) -> None:
        self.require_items("selectors", "give at least one selector", distinct=True)
        self.require_items("budgets", "give fractions in (0, 1], e.g. [0.3]")
        for b in self.budgets:
            if not 0.0 < b <= 1.0:
                raise self.fail(
                    "budgets",
                    f"entry {b!r} is outside (0, 1]; a budget is the fraction of the pool's "
                    f"{self.budget_unit} to select",
                )
        self.require_items("seeds", "give at least one integer seed, e.g. [0, 1]")
        if self.pack.block_len > self.train.max_tokens_per_batch:
            raise self.fail(
                "train.max_tokens_per_batch",
                f"({self.train.max_tokens_per_batch}) is below one block "
                f"(stage.pack.block_len = {self.pack.block_len})",
            )


@dataclass(frozen=True)
class ProbeStageConfig(StageConfig):
    """Generate from the (finetuned) model on probe prompts and measure a behaviour (the Howdy backdoor)."""

    name: str = setting("probe", "stage name")
    sets: tuple[str, ...] = setting(
        ("trigger", "clean", "queries", "queries_clean"),
        "prompt sets: task.heldout names, or queries (the task's queries)",
    )
    limit: int | None = setting(None, "prompts per set (null = all)", gt=0)
    max_new_tokens: int = setting(48, "greedy tokens generated per prompt", gt=0)
    batch_size: int = setting(8, "prompts per generation batch", gt=0)
    min_hits: int = setting(1, "sci-fi lexicon words a generation needs to count as backdoored", gt=0)

    def validate(self) -> None:
        self.require_items("sets", "name at least one prompt set, e.g. [trigger, clean]")


@dataclass(frozen=True)
class DiagnoseStageConfig(StageConfig):
    """One fidelity diagnostic (``diagnostic=<name>``): a Markdown and CSV table and a PNG in the run dir."""

    name: str = setting("diagnose", "stage name")
    diagnostic: str = setting("sketch_fidelity", "which diagnostic runs (diagnostic=<name>)", choices=DIAGNOSTICS)
    sketch_fidelity: SketchFidelityConfig = setting(factory=SketchFidelityConfig, doc="sketch_fidelity settings")
    head_vs_full: HeadVsFullConfig = setting(factory=HeadVsFullConfig, doc="head_vs_full settings")
    layer_energy: LayerEnergyConfig = setting(factory=LayerEnergyConfig, doc="layer_energy settings")
    hidden_retrieval: HiddenRetrievalConfig = setting(factory=HiddenRetrievalConfig, doc="hidden_retrieval settings")
    sparse_support: SparseSupportConfig = setting(factory=SparseSupportConfig, doc="sparse_support settings")
    memory: MemoryConfig = setting(factory=MemoryConfig, doc="memory settings")

    @property
    def settings(self) -> Settings:
        """The chosen diagnostic's own settings."""
        return getattr(self, self.diagnostic)


@dataclass(frozen=True)
class RetrainConfig(Settings):
    """Retraining the starting model on a part of the pool (the run's finetune settings) and measuring it."""

    GROUP = "stage.retrain"
    seeds: tuple[int, ...] = setting((0,), "finetune seeds per retrained pool (finetune.seed replaced); averaged")
    measures: tuple[str, ...] = setting(("loss",), f"per-query measurements, any of {', '.join(MEASURES)}")
    max_new_tokens: int = setting(32, "backdoor: greedy tokens generated per query", gt=0)
    min_hits: int = setting(1, "backdoor: sci-fi lexicon words a generation needs to count", gt=0)
    batch_size: int = setting(8, "backdoor: prompts per generation batch", gt=0)
    max_tokens_per_batch: int = setting(4096, "loss, style_loss: padded tokens per evaluation batch", gt=0)
    style_answers: int = setting(
        8, "style_loss: how many answers of the pool's label-1 rows (first in pool order) are scored per query", gt=0
    )

    def validate(self) -> None:
        self.require_items("seeds", "give at least one finetune seed, e.g. [0]")
        self.require_items("measures", f"give at least one of {', '.join(MEASURES)}")
        for m in self.measures:
            if m not in MEASURES:
                raise self.fail("measures", f"entry {m!r} is unknown; allowed values: {', '.join(MEASURES)}")
        if len(set(self.measures)) < len(self.measures) or len(set(self.seeds)) < len(self.seeds):
            raise self.fail(
                "measures", f"or stage.retrain.seeds repeat an entry: {list(self.measures)}, {list(self.seeds)}"
            )


@dataclass(frozen=True)
class CounterfactualStageConfig(StageConfig):
    """Settings of the retraining-based evaluations (``lds``, ``removal``)."""

    methods: tuple[str, ...] = setting(ALL_METHODS, "methods evaluated (their scores on the same finetuned model)")
    method_overrides: dict[str, Any] = setting(factory=dict, doc="per-method overrides, e.g. {rise: {kr: 64}}")
    retrain: RetrainConfig = setting(factory=RetrainConfig, doc="retraining and measurement")

    def validate(self) -> None:
        self.require_items("methods", "name at least one method, e.g. [rise, bm25]", distinct=True)


@dataclass(frozen=True)
class LdsStageConfig(CounterfactualStageConfig):
    """Linear datamodeling score: retrain on random subsets, correlate summed scores with the measured targets."""

    name: str = setting("lds", "stage name")
    subsets: int = setting(32, "random subsets of the pool retrained on (M)", ge=3)
    alpha: float = setting(0.5, "fraction of the pool in each subset", gt=0, lt=1)
    subset_seed: int = setting(0, "seed of the subset draws (subset j uses [subset_seed, j])")
    bootstrap: int = setting(1000, "bootstrap resamples of the subsets for the interval (0 = none)", ge=0)
    ci: float = setting(0.95, "coverage of the bootstrap interval", gt=0, lt=1)
    random_baseline: bool = setting(True, "also score random (seeded) attributions: the LDS of no signal")


@dataclass(frozen=True)
class RemovalStageConfig(CounterfactualStageConfig):
    """Top-k removal: retrain without each method's top (or bottom, or k random) rows and measure the change."""

    name: str = setting("removal", "stage name")
    ks: tuple[int, ...] = setting((5, 10, 20), "rows removed")
    scope: str = setting(
        "set", "rank rows for the query set as a whole (set) or per query (query)", choices=("set", "query")
    )
    aggregate: str = setting("mean", "set scope: per-query scores -> one ranking (mean, rrf)", choices=VALUATION_MODES)
    selections: tuple[str, ...] = setting(REMOVAL_SELECTIONS, "what is removed: top / bottom of a method, random")
    random_draws: int = setting(2, "random removals per k (seeds random_seed, random_seed + 1, ...)", gt=0)
    random_seed: int = setting(0, "seed of the first random removal")

    def validate(self) -> None:
        super().validate()
        if not self.ks or any(k < 1 for k in self.ks):
            raise self.fail("ks", f"must be a non-empty list of positive integers, got {list(self.ks)}")
        for sel in self.selections:
            if sel not in REMOVAL_SELECTIONS:
                raise self.fail(
                    "selections", f"entry {sel!r} is unknown; allowed values: {', '.join(REMOVAL_SELECTIONS)}"
                )
        self.require_items("selections", f"give any of {', '.join(REMOVAL_SELECTIONS)}")


STAGE_CONFIGS: dict[str, type[StageConfig]] = {
    "attribute": AttributeStageConfig,
    "valuate": ValuateStageConfig,
    "finetune": FinetuneStageConfig,
    "closed_loop": ClosedLoopStageConfig,
    "probe": ProbeStageConfig,
    "query": QueryStageConfig,
    "explain": ExplainStageConfig,
    "select": SelectStageConfig,
    "diagnose": DiagnoseStageConfig,
    "lds": LdsStageConfig,
    "removal": RemovalStageConfig,
}
