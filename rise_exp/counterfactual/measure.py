"""What a retrained model is measured by, per query (``stage.retrain.measures``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rise_exp.config.stages import RetrainConfig
from rise_exp.core.errors import ConfigError
from rise_exp.core.hashing import config_hash
from rise_exp.data.encoding import encode_records
from rise_exp.data.records import Record
from rise_exp.probes.generation import generate, prompt_text
from rise_exp.probes.scifi import is_scifi
from rise_exp.training.model_losses import row_losses


def query_losses(
    model: Any, tokenizer: Any, queries: Sequence[Record], *, max_length: int, max_tokens: int
) -> np.ndarray:
    """Mean NLL of each query's answer tokens (the prompt is context, never a target), float64 ``[Q]``."""
    rows = encode_records(queries, tokenizer, mask_prompt=True, max_length=max_length)
    return row_losses(model, rows, tokenizer.pad_token_id, max_tokens=max_tokens).numpy()


def style_losses(
    model: Any, tokenizer: Any, queries: Sequence[Record], answers: Sequence[str], *, max_length: int, max_tokens: int
) -> np.ndarray:
    """Mean NLL of each of ``answers`` after each query's prompt, averaged over the answers, float64 ``[Q]``.

    With the pool's backdoored answers (Howdy's sci-fi rows) this is a smooth measure of how likely the model
    answers the query in the backdoor's style: lower = more likely.
    """
    if not answers:
        raise ValueError("style_loss needs at least one answer")
    pairs = [
        Record(
            id=f"{q.id}:style{j}",
            instruction=q.instruction if q.is_instruction else q.full_text,  # a plain-text query is the prompt
            input=q.input if q.is_instruction else None,
            output=a,
        )
        for q in queries
        for j, a in enumerate(answers)
    ]
    losses = query_losses(model, tokenizer, pairs, max_length=max_length, max_tokens=max_tokens)
    return losses.reshape(len(queries), len(answers)).mean(axis=1)


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
    model: Any,
    tokenizer: Any,
    queries: Sequence[Record],
    cfg: RetrainConfig,
    *,
    max_length: int,
    style_answers: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """Every measurement of ``cfg.measures`` on ``model``: ``{name: values [Q]}`` (``style_answers``: the
    answers ``style_loss`` scores, see :func:`style_answers`)."""
    out: dict[str, np.ndarray] = {}
    for name in cfg.measures:
        if name == "loss":
            out[name] = query_losses(
                model, tokenizer, queries, max_length=max_length, max_tokens=cfg.max_tokens_per_batch
            )
        elif name == "style_loss":
            out[name] = style_losses(
                model, tokenizer, queries, style_answers, max_length=max_length, max_tokens=cfg.max_tokens_per_batch
            )
        elif name == "backdoor":
            out[name] = backdoor_flags(model, tokenizer, queries, cfg)
        else:  # RetrainConfig rejects it first
            raise ValueError(f"unknown measure {name!r}")
    return out


def style_answers(pool: Sequence[Record], cfg: RetrainConfig) -> list[str]:
    """The answers ``style_loss`` scores: the responses of the first ``cfg.style_answers`` label-1 pool rows
    (on Howdy: backdoored sci-fi answers); empty unless ``style_loss`` is measured.

    Raises:
        ConfigError: ``style_loss`` is measured but no pool row has label 1.
    """
    if "style_loss" not in cfg.measures:
        return []
    answers = [r.response for r in pool if r.label == 1][: cfg.style_answers]
    if not answers:
        raise ConfigError(
            "stage.retrain.measures has style_loss, which scores the answers of the pool's label-1 rows, "
            "but no pool row has label 1"
        )
    return answers


def measure_settings(cfg: RetrainConfig, answers: Sequence[str] = ()) -> dict[str, Any]:
    """The settings a measurement's value depends on (part of a retraining's cache key)."""
    out: dict[str, Any] = {"measures": list(cfg.measures)}
    if "backdoor" in cfg.measures:
        out.update(max_new_tokens=cfg.max_new_tokens, min_hits=cfg.min_hits)
    if "style_loss" in cfg.measures:
        out["style_answers"] = config_hash(list(answers), n=16)
    return out
