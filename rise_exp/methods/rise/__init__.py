"""RISE: sketched LM-head gradient signatures (arXiv 2604.16197).

Names are imported lazily (PEP 562), so ``rise_exp.methods.rise.config`` loads without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "chunks_of_batch": "chunking",
    "chunk_batches": "chunking",
    "chunk_row": "chunking",
    "chunk_spans": "chunking",
    "mean_by_row": "chunking",
    "plan_batches": "chunking",
    "RiseConfig": "config",
    "RiseMethodConfig": "config",
    "RiseIndexConfig": "config",
    "RiseHead": "head",
    "l2_normalize": "head",
    "RiseIndexingModule": "indexing",
    "batch_signatures": "signatures",
    "compute_signatures": "signatures",
    "predict_loader": "indexing",
    "CountSketch": "sketch",
    "SketchTables": "sketch",
    "Support": "support",
    "exact_topk": "support",
    "select_support": "support",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
