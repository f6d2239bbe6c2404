"""Inter-process locks around shared cache entries (tokenizers and models, finetunes, indexes).

Two runs started together on one cache must neither build the same entry twice nor delete each
other's work in progress. Whoever builds an entry holds ``<entry>.lock`` (a :mod:`filelock` lock next
to it) while it checks whether the entry is finished and, if not, builds it; the other run waits,
then finds the entry finished and reuses it.

Data-parallel ranks launched as separate processes by a launcher (``RANK``, ``SLURM_PROCID``, or
``LOCAL_RANK`` with ``NODE_RANK``, not the first process) must not wait for a lock that rank 0 holds
across a collective operation (Lightning ``fit`` / ``predict``); callers pass
``enabled=launched_rank() == 0`` there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

_RANK_VARS = ("RANK", "SLURM_PROCID")
_NODE_VARS = ("NODE_RANK", "GROUP_RANK", "SLURM_NODEID")


def launched_rank() -> int:
    """This process's data-parallel rank as set by a launcher's environment (0 when none is set).

    ``RANK`` (torchrun) or ``SLURM_PROCID`` when set; otherwise Lightning's own multi-node variables:
    ``LOCAL_RANK`` on node ``NODE_RANK`` (``GROUP_RANK``, ``SLURM_NODEID``) with ``LOCAL_WORLD_SIZE``
    processes a node (1 when unset), so every process but the first of node 0 is non-zero.
    """
    ranks = [int(v) for k in _RANK_VARS if (v := os.environ.get(k, "")).isdigit()]
    if ranks:
        return max(ranks)
    local = os.environ.get("LOCAL_RANK", "")
    local_rank = int(local) if local.isdigit() else 0
    nodes = [int(v) for k in _NODE_VARS if (v := os.environ.get(k, "")).isdigit()]
    per_node = os.environ.get("LOCAL_WORLD_SIZE", "")
    return max(nodes, default=0) * (int(per_node) if per_node.isdigit() else 1) + local_rank


def lock_path(entry: Path) -> Path:
    """The lock file of a cache entry: ``<entry>.lock`` next to it."""
    entry = Path(entry)
    return entry.parent / f"{entry.name}.lock"


@contextmanager
def cache_lock(entry: Path, what: str, *, enabled: bool = True) -> Iterator[None]:
    """Hold the lock of ``entry`` for the block; logs once when it has to wait for another process.

    Args:
        entry: The cache entry (file or directory) about to be checked and built.
        what: What is built, for the log line (``"the finetune <dir>"``).
        enabled: False makes this a no-op (see the module notes on data-parallel ranks).
    """
    if not enabled:
        yield
        return
    from filelock import FileLock, Timeout

    path = lock_path(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process to finish %s (lock %s)", what, path)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
