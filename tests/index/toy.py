"""A toy index of the index tests: 23 rows of 8 random dimensions in 5 blocks of 5 rows (one of 3), with
tokens, masks, metadata and sketch tables; ``build`` writes it (skipping some blocks, as a crashed build)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rise_exp.index import IndexWriter

N, DIM = 23, 8
MANIFEST = {"method": {"name": "rise", "kh": 4, "kr": 2}, "model": "tiny-neox@abc", "data_hash": "d41d8c"}


def tables() -> dict[str, torch.Tensor]:
    """Seeded sketch tables (int64 buckets, int8 signs)."""
    g = torch.Generator().manual_seed(0)
    return {
        "h_buckets": torch.randint(0, 4, (16,), generator=g),
        "h_signs": torch.randint(0, 2, (16,), generator=g).to(torch.int8) * 2 - 1,
        "r_buckets": torch.randint(0, 2, (50,), generator=g),
    }


def data(seed: int = 0):
    """``(vectors [N, DIM] float32, tokens per row, target masks per row)``."""
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((N, DIM)).astype(np.float32)
    tokens = [rng.integers(0, 300, size=int(rng.integers(1, 9))) for _ in range(N)]
    masks = [rng.random(t.shape[0]) > 0.4 for t in tokens]
    return vecs, tokens, masks


def blocks(perm_seed: int = 1, size: int = 5) -> list[np.ndarray]:
    """The rows of each block: a seeded permutation cut into blocks of ``size``."""
    perm = np.random.default_rng(perm_seed).permutation(N)
    return [perm[i : i + size] for i in range(0, N, size)]


def build(path: Path, order=None, skip: set[int] = frozenset(), **kw) -> IndexWriter:
    """Write the toy index at ``path`` in blocks of ``order`` (default :func:`blocks`) but those in ``skip`` and
    those already complete; not finalized."""
    vecs, tokens, masks = data()
    w = IndexWriter(path, dim=DIM, num_rows=N, manifest=MANIFEST, tables=tables(), block_rows=5, **kw)
    for b, rows in enumerate(order if order is not None else blocks()):
        if b in skip or b in w.completed_blocks:
            continue
        w.write_block(
            b,
            rows,
            vecs[rows],
            tokens=[tokens[r] for r in rows],
            masks=[masks[r] for r in rows],
            meta=[{"id": f"row-{r}"} for r in rows],
        )
    return w
