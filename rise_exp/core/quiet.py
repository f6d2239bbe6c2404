"""Silence library chatter on the console (progress bars, warnings that say nothing to a user)."""

from __future__ import annotations

import logging
import os
import warnings

NOISY_LOGGERS = (
    "lightning",
    "lightning.pytorch",
    "lightning.fabric",
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "bm25s",
    "datasets",
    "urllib3",
    "httpx",
)
#: Loggers whose warnings are noise here: the hub client's retry lines (printed twice, by its own handler and
#: ours); a load that finally fails is one clear error of rise-exp's.
SILENT_LOGGERS = ("huggingface_hub",)
NOISY_WARNINGS = (
    ".*does not have many workers.*",
    ".*GPU available but not used.*",
    ".*Couldn't infer the batch indices.*",
    ".*smaller than the logging interval.*",
    ".*litlogger.*",
    ".*LeafSpec.*",
    ".*no `val_dataloader`.*",
    ".*anonymous setting has no effect.*",
    ".*is_gradient_checkpointing.*",  # transformers' deprecation, raised inside its own LoRA/peft path
)


def quiet_libraries() -> None:
    """Silence progress bars and library chatter (imports them first: they set their own levels)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("WANDB_SILENT", "true")
    import lightning  # noqa: F401  (import first: it sets its own logger levels on import)
    import transformers

    try:
        import bm25s  # noqa: F401  (sets its own logger to DEBUG on import)
    except ImportError:  # pragma: no cover - a dependency
        pass
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    for pattern in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", pattern)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in SILENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
