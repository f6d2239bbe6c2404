"""Top-level settings of a run that are not config groups: ``seed``, ``data.*``, ``paths.*`` and ``search.*``."""

from __future__ import annotations

from dataclasses import dataclass

from rise_exp.config.settings import Settings, setting

#: The global seed's default (top-level ``seed``): method randomness (sketch tables, RapidGrad, STRIDE subsets);
#: a method's ``seed: null`` follows the global seed. Data and model seeds are ``task.seed`` and ``finetune.seed``.
DEFAULT_SEED = 42


@dataclass(frozen=True)
class DataConfig(Settings):
    """How rows become tokens, the same for every method."""

    GROUP = "data"
    max_length: int = setting(
        512, "tokens per row for finetuning and the gradient baselines (RISE chunks longer rows)", gt=0
    )
    mask_prompt: bool = setting(True, "finetuning on instruction rows: only response tokens are targets")
    attribute_mask_prompt: bool = setting(
        False,
        "attribution and valuation: false = every token of a row counts (train rows and queries), as the RISE "
        "code scores them; true = only the response tokens of instruction rows",
    )


@dataclass(frozen=True)
class PathsConfig(Settings):
    """Where caches live."""

    GROUP = "paths"
    cache_dir: str = setting(
        ".cache",
        "caches of embedded models, tokenizers, finetunes and indexes (env RISE_EXP_CACHE in conf/config.yaml)",
    )


SEARCH_BACKENDS = ("exact", "simhash", "faiss_flat", "faiss_ivfpq")
#: Backends whose scores are the exact inner products (nothing to re-rank).
EXACT_BACKENDS = ("exact", "faiss_flat")


@dataclass(frozen=True)
class SearchConfig(Settings):
    """How queries are answered from a vector index: exact streaming, or a compressed / approximate copy.

    ``simhash`` stores ``bits`` sign bits per row (plus its norm) from random hyperplanes and scores float
    queries against them asymmetrically; ``faiss_flat`` is FAISS's exact inner-product index (in memory);
    ``faiss_ivfpq`` is an inverted file with product quantisation, for pools of ~10M rows and more. The
    compressed copies are built once from the index and cached inside it (``<index>/search/``). ``rerank``
    re-scores an approximate backend's best ``rerank`` candidates per query with the stored vectors (exact
    scores, ``rerank`` row reads per query), which is how IVF-PQ reaches high recall (docs/search.md).
    """

    GROUP = "search"
    backend: str = setting("exact", "exact, simhash, faiss_flat or faiss_ivfpq", choices=SEARCH_BACKENDS)
    bits: int = setting(8192, "simhash: sign bits stored per row (a multiple of 8)", gt=0)
    density: float | None = setting(
        None, "simhash: share of nonzero entries per hyperplane (null = 1/sqrt(dim): very sparse)", gt=0, le=1
    )
    seed: int = setting(0, "simhash hyperplanes and the faiss_ivfpq training sample")
    nlist: int | None = setting(None, "faiss_ivfpq: coarse clusters (null = 4 sqrt(rows), at most rows / 39)", gt=0)
    pq_m: int = setting(64, "faiss_ivfpq: sub-quantizers, i.e. bytes per row (must divide the vector dim)", gt=0)
    nprobe: int = setting(16, "faiss_ivfpq: clusters visited per query", gt=0)
    train_rows: int = setting(65536, "faiss_ivfpq: rows sampled to train the quantizers", gt=0)
    rerank: int = setting(
        0,
        "simhash / faiss_ivfpq: candidates per query taken from the approximate backend and re-scored exactly "
        "against the index's stored vectors, best k kept (0 = off; at least the k asked, e.g. 1000)",
        ge=0,
    )

    def validate(self) -> None:
        if self.bits % 8:
            raise self.fail("bits", f"must be a multiple of 8, got {self.bits}")
        if self.rerank and self.backend in EXACT_BACKENDS:
            raise self.fail(
                "rerank", f"re-scores an approximate backend's candidates; search.backend={self.backend} is exact"
            )
