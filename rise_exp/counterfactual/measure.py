"""What a retrained model is measured by, per query (``stage.retrain.measures``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rise_exp.config.stages import RetrainConfig
from rise_exp.data.encoding import encode_records
from rise_exp.data.records import Record
from rise_exp.probes.generation import generate, prompt_text
from rise_exp.probes.scifi import is_scifi
from rise_exp.training.evaluation import row_losses


def query_losses(
    model: Any, tokenizer: Any, queries: Sequence[Record], *, max_length: int, max_tokens: int
) -> np.ndarray:
    """Mean NLL of each query's answer tokens (the prompt is context, never a target), float64 ``[Q]``."""
    rows = encode_records(queries, tokenizer, mask_prompt=True, max_length=max_length)
    return row_losses(model, rows, tokenizer.pad_token_id, max_tokens=max_tokens).numpy()


def backdoor_flags(model: Any, tokenizer: Any, queries: Sequence[Record], cfg: RetrainConfig) -> np.ndarray:
    """1.0 where the greedy answer to a query's prompt is in the Howdy sci-fi style, else 0.0 ``[Q]``."""
    texts = generate(
        model,
        tokenizer,
        [prompt_text(q) for q in queries],
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
    )
    return np.asarray([float(is_scifi(t, cfg.min_hits)) for t in texts])


def measure(
    model: Any, tokenizer: Any, queries: Sequence[Record], cfg: RetrainConfig, *, max_length: int
) -> dict[str, np.ndarray]:
    """Every measurement of ``cfg.measures`` on ``model``: ``{name: values [Q]}``."""
    out: dict[str, np.ndarray] = {}
    for name in cfg.measures:
        if name == "loss":
            out[name] = query_losses(
                model, tokenizer, queries, max_length=max_length, max_tokens=cfg.max_tokens_per_batch
            )
        elif name == "backdoor":
            out[name] = backdoor_flags(model, tokenizer, queries, cfg)
        else:  # RetrainConfig rejects it first
            raise ValueError(f"unknown measure {name!r}")
    return out


def measure_settings(cfg: RetrainConfig) -> dict[str, Any]:
    """The settings a measurement's value depends on (part of a retraining's cache key)."""
    out: dict[str, Any] = {"measures": list(cfg.measures)}
    if "backdoor" in cfg.measures:
        out.update(max_new_tokens=cfg.max_new_tokens, min_hits=cfg.min_hits)
    return out
