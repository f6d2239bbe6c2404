"""RISE: sketched LM-head gradient signatures (arXiv 2604.16197)."""

from rise_exp.methods.rise.chunking import chunk_batches, chunk_row, chunk_spans, mean_by_row
from rise_exp.methods.rise.config import RiseConfig
from rise_exp.methods.rise.head import RiseHead, l2_normalize
from rise_exp.methods.rise.module import RiseIndexingModule, batch_signatures, compute_signatures, predict_loader
from rise_exp.methods.rise.sketch import CountSketch, SketchTables
from rise_exp.methods.rise.support import Support, exact_topk, select_support

__all__ = [
    "CountSketch",
    "RiseConfig",
    "RiseHead",
    "RiseIndexingModule",
    "SketchTables",
    "Support",
    "batch_signatures",
    "chunk_batches",
    "chunk_row",
    "chunk_spans",
    "compute_signatures",
    "exact_topk",
    "l2_normalize",
    "mean_by_row",
    "predict_loader",
    "select_support",
]
