"""Silence library chatter on the console (progress bars, warnings that say nothing to a user).

Some libraries set their own logger levels when they are imported (Lightning, bm25s, transformers), so
their quieting runs right after their import (:func:`after_import`), not by importing them up front: a
command that never uses Lightning (``stage=query`` from an index) never pays for importing it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

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
    """Silence progress bars and library chatter: now for what is imported, else right after its import."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("WANDB_SILENT", "true")
    for pattern in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", pattern)
    _quiet_loggers()
    after_import("lightning", _quiet_loggers)  # it sets its own logger levels on import
    after_import("bm25s", _quiet_loggers)  # sets its own logger to DEBUG on import
    after_import("transformers", _quiet_transformers)


def _quiet_loggers() -> None:
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in SILENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def _quiet_transformers() -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def after_import(name: str, hook: Callable[[], None]) -> None:
    """Run ``hook`` once top-level module ``name`` has been imported: now if it is, else right after its
    import finishes (an import hook on ``sys.meta_path`` that removes itself)."""
    if name in sys.modules:
        hook()
        return
    sys.meta_path.insert(0, _AfterImport(name, hook))


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: on the import of its module it wraps the real loader to run the hook after it."""

    def __init__(self, name: str, hook: Callable[[], None]) -> None:
        self.name, self.hook = name, hook

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # once; and the lookup below must not find this finder again
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        run, hook = spec.loader.exec_module, self.hook

        def exec_module(module: Any) -> None:
            run(module)
            hook()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec
