"""Method names -> implementation and settings class.

Adding a method: a package ``rise_exp/methods/<name>/`` with a ``config.py`` (a :class:`Settings`
subclass, torch-free) and the method class, one line here, and ``conf/method/<name>.yaml``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from rise_exp.config.settings import Settings
from rise_exp.core.errors import allowed


@dataclass(frozen=True)
class MethodEntry:
    """Where a method's class and its settings class live (``"module:Name"``)."""

    method: str
    config: str


METHODS: dict[str, MethodEntry] = {
    "rise": MethodEntry("rise_exp.methods.rise.method:RiseMethod", "rise_exp.methods.rise.config:RiseMethodConfig"),
    "bm25": MethodEntry("rise_exp.methods.bm25.method:BM25Method", "rise_exp.methods.bm25.config:BM25Config"),
    "rapidin": MethodEntry("rise_exp.methods.rapidin.method:RapidIn", "rise_exp.methods.rapidin.config:RapidInConfig"),
    "zo_inf": MethodEntry("rise_exp.methods.zo_inf.method:ZOInf", "rise_exp.methods.zo_inf.config:ZOInfConfig"),
    "stride": MethodEntry("rise_exp.methods.stride.method:Stride", "rise_exp.methods.stride.config:StrideConfig"),
    "ekfac": MethodEntry("rise_exp.methods.ekfac.method:EKFAC", "rise_exp.methods.ekfac.config:EKFACConfig"),
    "trackstar": MethodEntry(
        "rise_exp.methods.trackstar.method:TrackStar", "rise_exp.methods.trackstar.config:TrackStarConfig"
    ),
}


def _load(path: str) -> Any:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def _entry(name: str) -> MethodEntry:
    if name not in METHODS:
        raise allowed("method", name, tuple(METHODS))
    return METHODS[name]


def method_class(name: str) -> type:
    """The :class:`~rise_exp.methods.base.AttributionMethod` subclass registered under ``name``."""
    return _load(_entry(name).method)


def config_class(name: str) -> type[Settings]:
    """The settings class of method ``name`` (importing it does not import torch)."""
    return _load(_entry(name).config)


def build_method(cfg: Settings, ctx: Any) -> Any:
    """Instantiate the method named by ``cfg.name`` with its typed settings."""
    return method_class(cfg.name)(cfg, ctx)
