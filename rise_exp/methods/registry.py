"""Method names -> implementations. Adding a method: one module, one line here, one config file."""

from __future__ import annotations

import importlib
from typing import Any

from rise_exp.errors import allowed
from rise_exp.methods.base import AttributionMethod, MethodContext

METHODS: dict[str, str] = {
    "rise": "rise_exp.methods.rise.method:RiseMethod",
    "bm25": "rise_exp.methods.bm25:BM25Method",
    "rapidin": "rise_exp.methods.rapidin:RapidIn",
    "zo_inf": "rise_exp.methods.zo_inf:ZOInf",
    "stride": "rise_exp.methods.stride:Stride",
}


def method_class(name: str) -> type[AttributionMethod]:
    """The class registered under ``name``."""
    if name not in METHODS:
        raise allowed("method.name", name, tuple(METHODS))
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_method(cfg: Any, ctx: MethodContext) -> AttributionMethod:
    """Instantiate the method named by ``cfg.name`` with its config node."""
    return method_class(cfg["name"])(cfg, ctx)
