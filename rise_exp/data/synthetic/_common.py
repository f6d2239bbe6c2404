"""Shared pieces of the synthetic generators: the output container, seeded sampling, checks."""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from rise_exp.core.errors import ConfigError
from rise_exp.data.records import Record

T = TypeVar("T", bound=Hashable)


@dataclass
class SyntheticData:
    """What a generator returns.

    Attributes:
        train: The training pool, ``label`` set on every row.
        queries: The query set.
        heldout: Extra named evaluation sets (e.g. ``"high"``/``"junk"`` texts for perplexity).
    """

    train: list[Record]
    queries: list[Record]
    heldout: dict[str, list[Record]] = field(default_factory=dict)


def check_size(name: str, value: object, minimum: int = 1) -> int:
    """A size setting as an int ``>= minimum``, or a ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"task.{name} must be an integer >= {minimum}; got {value!r}")
    return value


def check_rate(name: str, value: object, *, low: float = 0.0, high: float = 1.0) -> float:
    """A rate setting as a float in ``[low, high]``, or a ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= float(value) <= high:
        raise ConfigError(f"task.{name} must be a number in [{low}, {high}]; got {value!r}")
    return float(value)


def check_settings(sizes: Mapping[str, object], rates: Mapping[str, object]) -> None:
    """Check a generator's sizes (integers >= 1) and rates (numbers in [0, 1]) in turn: a ConfigError names the
    first bad one."""
    for name, value in sizes.items():
        check_size(name, value)
    for name, value in rates.items():
        check_rate(name, value)


def make_rng(seed: object) -> random.Random:
    """A private ``random.Random`` (platform-stable) for an integer seed."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"task.seed must be an integer; got {seed!r}")
    return random.Random(seed)


def class_slots(rng: random.Random, n: int, rate: float) -> list[bool]:
    """``round(rate * n)`` True values at random positions among ``n``."""
    k = int(round(rate * n))
    flags = [True] * k + [False] * (n - k)
    rng.shuffle(flags)
    return flags


def draw_unique(
    rng: random.Random, make: Callable[[random.Random], T], seen: set[Hashable], what: str, tries: int = 200
) -> T:
    """Call ``make`` until it returns something not in ``seen`` (then add it there)."""
    for _ in range(tries):
        item = make(rng)
        if item not in seen:
            seen.add(item)
            return item
    raise ConfigError(f"cannot generate enough distinct {what}; lower the requested size")


def cap(text: str) -> str:
    """Upper-case the first character."""
    return text[:1].upper() + text[1:]
