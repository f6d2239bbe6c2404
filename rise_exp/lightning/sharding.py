"""Which share of the batches a data-parallel rank takes (the one sharding rule of rise-exp).

Lightning's own sampler replacement is off (``use_distributed_sampler=False``): our samplers build
token-budget batches once and each rank takes every ``world``-th batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)`` of the initialised process group, else ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rank_share(items: Sequence[T], *, pad: bool, rank: int | None = None, world: int | None = None) -> list[T]:
    """Every ``world``-th item starting at ``rank``.

    Args:
        items: The full, identically ordered list every rank holds.
        pad: Repeat leading items so every rank gets the same count (training: ranks must step
            together); False for prediction, where a duplicated row would be written twice.
        rank, world: Override the process group's (tests).
    """
    r, w = rank_and_world()
    rank, world = (r if rank is None else rank), (w if world is None else world)
    out = list(items)
    if world <= 1:
        return out
    if pad and out:
        out = out + out[: (-len(out)) % world]
    return out[rank::world]


def distributed_barrier() -> None:
    """Wait for every rank of an initialised process group; a no-op in a single process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
