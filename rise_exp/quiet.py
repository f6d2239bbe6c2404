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
    "huggingface_hub",
)
NOISY_WARNINGS = (
    ".*does not have many workers.*",
    ".*GPU available but not used.*",
    ".*Couldn't infer the batch indices.*",
    ".*smaller than the logging interval.*",
    ".*litlogger.*",
    ".*LeafSpec.*",
    ".*no `val_dataloader`.*",
    ".*anonymous setting has no effect.*",
)


def quiet_libraries() -> None:
    """Silence progress bars and library chatter (imports them first: they set their own levels)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("WANDB_SILENT", "true")
    import lightning  # noqa: F401  (import first: it sets its own logger levels on import)
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    for pattern in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", pattern)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
