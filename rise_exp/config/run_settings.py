"""Top-level settings of a run that are not config groups: ``data.*`` and ``paths.*``."""

from __future__ import annotations

from dataclasses import dataclass

from rise_exp.config.settings import Settings, setting


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
