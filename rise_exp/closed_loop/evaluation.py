"""Downstream evaluation of a continued-pretrained model.

Always: perplexity on the task's held-out sets (Brain Rot: high-quality and junk text). Optionally:
lm-evaluation-harness tasks through its Python API (``lm_eval.simple_evaluate`` on an in-memory
``HFLM``), when the ``eval`` extra is installed; otherwise that part is skipped with one message.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from rise_exp.config.stages import LmEvalConfig
from rise_exp.core.errors import DataError
from rise_exp.data.encoding import encode_records
from rise_exp.data.records import Record
from rise_exp.training.model_losses import mean_token_loss

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'rise-exp[eval]' (lm-eval>=0.4); the harness also needs network access to its datasets"


def check_heldout(task_name: str, heldout: Mapping[str, Sequence[Record]], names: Sequence[str]) -> None:
    """Every requested held-out set exists and is non-empty.

    Raises:
        DataError: naming the task, the missing sets and the sets it has.
    """
    missing = [n for n in names if not heldout.get(n)]
    if missing:
        have = ", ".join(f"{k} ({len(v)})" for k, v in heldout.items()) or "none"
        raise DataError(
            f"task {task_name!r} has no held-out set(s) {missing} for the closed-loop perplexity check "
            f"(it has: {have}); use a task with held-out text (task=brain_rot) or set stage.eval.heldout"
        )


def perplexity(
    model: torch.nn.Module, records: Sequence[Record], tokenizer: Any, *, max_length: int, max_tokens: int = 4096
) -> float:
    """Token-level perplexity ``exp(mean NLL)`` of ``model`` on every token of ``records`` (plain text)."""
    rows = encode_records(records, tokenizer, mask_prompt=False, max_length=max_length)
    return math.exp(mean_token_loss(model, rows, tokenizer.pad_token_id, max_tokens))


def heldout_perplexities(
    model: torch.nn.Module,
    tokenizer: Any,
    heldout: Mapping[str, Sequence[Record]],
    names: Sequence[str],
    *,
    max_length: int,
    max_tokens: int = 4096,
) -> dict[str, float]:
    """``{"ppl_<name>": perplexity}`` for every held-out set in ``names``."""
    return {
        f"ppl_{n}": perplexity(model, heldout[n], tokenizer, max_length=max_length, max_tokens=max_tokens)
        for n in names
    }


def lm_eval_status(cfg: LmEvalConfig) -> str | None:
    """``None`` when the harness will run, else the ``skipped (...)`` reason recorded in the results."""
    if not cfg.enabled:
        return "skipped (stage.eval.lm_eval.enabled is false)"
    if not cfg.tasks:
        return "skipped (stage.eval.lm_eval.tasks is empty)"
    try:
        import lm_eval  # noqa: F401
        from lm_eval.models.huggingface import HFLM  # noqa: F401
    except ImportError as e:
        return f"skipped (lm_eval is not importable: {e}; to run it: {INSTALL_HINT})"
    return None


def _metric_key(task: str, metric: str) -> str:
    name, _, filt = metric.partition(",")
    return f"lm_eval/{task}/{name}" if filt in ("", "none") else f"lm_eval/{task}/{name}[{filt}]"


def lm_eval_scores(model: torch.nn.Module, tokenizer: Any, cfg: LmEvalConfig) -> dict[str, float]:
    """Run the configured harness tasks on an in-memory model; numeric results as ``lm_eval/<task>/<metric>``.

    Args:
        model: The HF causal LM (used as is, not reloaded).
        tokenizer: Its tokenizer.
        cfg: ``stage.eval.lm_eval``: tasks, num_fewshot, limit, batch_size, apply_chat_template
            (``auto`` = when the tokenizer has a chat template), max_length, seed.
    """
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    chat = cfg.apply_chat_template
    if chat == "auto":
        chat = bool(getattr(tokenizer, "chat_template", None))
    hf_kwargs: dict[str, Any] = {"batch_size": cfg.batch_size}
    if cfg.max_length:
        hf_kwargs["max_length"] = cfg.max_length
    lm = HFLM(pretrained=model, tokenizer=tokenizer, **hf_kwargs)
    seed = cfg.seed
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=list(cfg.tasks),
        num_fewshot=cfg.num_fewshot,
        limit=cfg.limit,
        apply_chat_template=bool(chat),
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
    )
    scores: dict[str, float] = {}
    for task, res in (out or {}).get("results", {}).items():
        for metric, v in res.items():
            if "_stderr" in metric or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            scores[_metric_key(task, metric)] = float(v)
    return scores
