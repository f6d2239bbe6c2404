"""Data selectors of the closed loop: which candidate rows go into continued pretraining.

A selector turns the candidate pool into an ordered list of *eligible* rows; the selection is the
shortest prefix of that list that fills the budget (a fraction of the pool's rows or tokens). Eligible
lists shorter than the budget are taken whole (the packer then cycles through them).

- a method name (``rise``, ``bm25``, ...): candidates ranked by their value against the targets.
- ``random``: a seeded random order of the whole pool.
- ``all``: the whole pool, regardless of the budget (training samples the token budget from it).
- ``oracle`` / ``anti_oracle``: only label-1 (high quality) / label-0 (junk) rows, in seeded random order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from rise_exp.data.records import Record
from rise_exp.errors import ConfigError, DataError

BUILTIN_SELECTORS: tuple[str, ...] = ("random", "all", "oracle", "anti_oracle")
BUDGET_UNITS: tuple[str, ...] = ("rows", "tokens")
_SEED_SALT = {"random": 1, "oracle": 2, "anti_oracle": 3}


@dataclass(frozen=True)
class Selection:
    """The rows one selector picked under one budget and seed.

    Attributes:
        selector: Selector name.
        budget: Budget fraction in (0, 1].
        seed: Seed of the random selectors (and of training).
        rows: Candidate indices, in selection order.
    """

    selector: str
    budget: float
    seed: int
    rows: tuple[int, ...]


def allowed_selectors(method_names: Sequence[str]) -> tuple[str, ...]:
    """Every selector name: the registered methods plus the built-in ones."""
    return tuple(method_names) + BUILTIN_SELECTORS


def check_selectors(names: Sequence[str], method_names: Sequence[str]) -> list[str]:
    """Validate ``stage.selectors``: non-empty, unique, every name known.

    Raises:
        ConfigError: naming the unknown selector and the allowed values.
    """
    names = [str(n) for n in names]
    if not names:
        raise ConfigError("stage.selectors is empty; give at least one of: "
                          + ", ".join(sorted(allowed_selectors(method_names))))
    choices = allowed_selectors(method_names)
    for n in names:
        if n not in choices:
            raise ConfigError(f"unknown selector {n!r} in stage.selectors; "
                              f"allowed values: {', '.join(sorted(choices))}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"stage.selectors lists {dup} more than once")
    return names


def check_budgets(budgets: Sequence[Any], unit: str) -> list[float]:
    """Validate ``stage.budgets`` (fractions in (0, 1]) and ``stage.budget_unit``.

    Raises:
        ConfigError: for an empty list, a value outside (0, 1] or an unknown unit.
    """
    if unit not in BUDGET_UNITS:
        raise ConfigError(f"unknown stage.budget_unit {unit!r}; allowed values: {', '.join(BUDGET_UNITS)}")
    if budgets is None or len(budgets) == 0:
        raise ConfigError("stage.budgets is empty; give fractions in (0, 1], e.g. [0.3]")
    out = []
    for b in budgets:
        try:
            f = float(b)
        except (TypeError, ValueError):
            raise ConfigError(f"stage.budgets: {b!r} is not a number; budgets are fractions in (0, 1]") from None
        if not 0.0 < f <= 1.0:
            raise ConfigError(f"stage.budgets: {b!r} is outside (0, 1]; a budget is the fraction of the pool's "
                              f"{unit} to select")
        out.append(f)
    return out


def method_config(name: str, conf_dir: str | Path, overrides: Mapping[str, Any] | None = None,
                  base: DictConfig | None = None) -> DictConfig:
    """The config of the method behind selector ``name``.

    Args:
        name: Method name (``conf/method/<name>.yaml``).
        conf_dir: The Hydra config directory.
        overrides: Per-selector settings from ``stage.methods.<name>``, merged on top.
        base: The run's own ``method`` node; used instead of the YAML file when it names the same method,
            so command-line overrides such as ``method=rise method.kr=64`` apply.
    """
    if base is not None and base.get("name") == name:
        cfg = OmegaConf.create(OmegaConf.to_container(base, resolve=True))
    else:
        path = Path(conf_dir) / "method" / f"{name}.yaml"
        if not path.exists():
            raise ConfigError(f"selector {name!r}: no method config {path}")
        cfg = OmegaConf.load(path)
    if overrides:
        extra = (OmegaConf.to_container(overrides, resolve=True) if isinstance(overrides, DictConfig)
                 else dict(overrides))
        if extra.get("name", name) != name:
            raise ConfigError(f"stage.methods.{name}.name must be {name!r} (got {extra['name']!r})")
        cfg = OmegaConf.merge(cfg, extra)
    return cfg  # type: ignore[return-value]


def prefix_within_budget(order: Sequence[int], token_counts: np.ndarray, budget: float, unit: str) -> list[int]:
    """The shortest prefix of ``order`` that fills ``budget`` of the pool (rows or tokens).

    Rows: ``max(1, round(budget * N))`` rows. Tokens: rows are added until their token count reaches
    ``budget * total tokens``. An ``order`` shorter than the budget is returned whole.
    """
    n = len(token_counts)
    if unit == "rows":
        k = max(1, int(round(budget * n)))
        return [int(i) for i in order[:k]]
    target = budget * float(np.sum(token_counts))
    out, total = [], 0.0
    for i in order:
        if total >= target:
            break
        out.append(int(i))
        total += float(token_counts[i])
    return out


def _labels(candidates: Sequence[Record], selector: str) -> np.ndarray:
    missing = next((r.id for r in candidates if r.label is None), None)
    if missing is not None:
        raise DataError(f"selector {selector!r} needs a 0/1 label on every candidate; row {missing!r} has none")
    return np.asarray([int(r.label) for r in candidates])


def builtin_order(selector: str, candidates: Sequence[Record], seed: int) -> list[int]:
    """The eligible rows of a built-in selector, in selection order."""
    n = len(candidates)
    if selector == "all":
        return list(range(n))
    rng = np.random.default_rng([int(seed), _SEED_SALT[selector]])
    perm = rng.permutation(n)
    if selector == "random":
        return [int(i) for i in perm]
    want = 1 if selector == "oracle" else 0
    labels = _labels(candidates, selector)
    rows = [int(i) for i in perm if labels[i] == want]
    if not rows:
        raise DataError(f"selector {selector!r}: the candidate pool has no row with label {want}")
    return rows


def value_order(values: np.ndarray) -> list[int]:
    """Candidates by decreasing value (ties keep pool order)."""
    return [int(i) for i in np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")]


def select(selector: str, candidates: Sequence[Record], token_counts: np.ndarray, budget: float, unit: str,
           seed: int, values: np.ndarray | None = None) -> Selection:
    """Apply one selector under one budget.

    Args:
        selector: A built-in selector or a method name (then ``values`` is required).
        candidates: The candidate pool.
        token_counts: Tokens of every candidate (for ``unit="tokens"``).
        budget: Fraction in (0, 1].
        unit: ``rows`` or ``tokens``.
        seed: Seed of the random orders.
        values: Method values of every candidate (higher = better).
    """
    if selector in BUILTIN_SELECTORS:
        order = builtin_order(selector, candidates, seed)
        rows = order if selector == "all" else prefix_within_budget(order, token_counts, budget, unit)
    else:
        if values is None or len(values) != len(candidates):
            raise ValueError(f"selector {selector!r} needs one value per candidate")
        rows = prefix_within_budget(value_order(values), token_counts, budget, unit)
    return Selection(selector=selector, budget=float(budget), seed=int(seed), rows=tuple(rows))
