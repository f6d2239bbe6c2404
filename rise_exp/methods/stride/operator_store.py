"""STRIDE's trained state on disk: the steering operators, the subset design and the steered block.

Training the operators is STRIDE's costly step (minutes to hours); measuring queries against them is not.
The state is saved as one safetensors file in the index cache, under a key of everything that decides it
(model, dtype, exact tokens and target masks, seed, build settings), so a later run with new queries, the
other valuation mode or other Lasso settings loads it instead of retraining. Writes are atomic; a file that
cannot be read or does not fit is reported and retrained, never trusted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rise_exp.core import sealed
from rise_exp.core.files import write_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredOperators:
    """What a trained STRIDE keeps: ``read [r, d]``, ``write [S, d, r]``, membership ``[S, N]``, the block."""

    read: torch.Tensor
    write: torch.Tensor
    membership: np.ndarray
    layer: int
    train_log: list[float]


def save_operators(path: Path, state: StoredOperators) -> None:
    """Write ``state`` to ``path`` atomically (a temporary file, then a rename)."""
    from safetensors.torch import save

    tensors = {
        "read": state.read.detach().cpu().contiguous(),
        "write": state.write.detach().cpu().contiguous(),
        "membership": torch.from_numpy(np.ascontiguousarray(state.membership, dtype=np.uint8)),
        "train_log": torch.tensor(state.train_log, dtype=torch.float64),
    }
    blob = save(tensors, metadata={"layer": str(state.layer)})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda fh: fh.write(blob))
    sealed.seal_file(path)


def load_operators(path: Path, *, n_ops: int, n_rows: int, hidden: int, rank: int) -> StoredOperators | None:
    """The state saved at ``path`` if it exists, reads and has the expected shapes; else None (with a warning
    when a file was there but unusable: damaged since it was sealed, unreadable or of other shapes)."""
    if not sealed.reusable_file(path, "stride: the stored operators"):
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            layer = int((fh.metadata() or {})["layer"])
            t = {name: fh.get_tensor(name) for name in ("read", "write", "membership", "train_log")}
    except Exception as exc:  # safetensors raises its own error types for damaged files
        log.warning("stride: cannot read stored operators %s (%s); training them again", path, exc)
        return None
    expected = {"read": (rank, hidden), "write": (n_ops, hidden, rank), "membership": (n_ops, n_rows)}
    wrong = [f"{k} {tuple(t[k].shape)} != {v}" for k, v in expected.items() if tuple(t[k].shape) != v]
    if wrong:
        log.warning("stride: stored operators %s do not fit (%s); training them again", path, "; ".join(wrong))
        return None
    return StoredOperators(
        read=t["read"],
        write=t["write"],
        membership=t["membership"].numpy().astype(bool),
        layer=layer,
        train_log=t["train_log"].tolist(),
    )
