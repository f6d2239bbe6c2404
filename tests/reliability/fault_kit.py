"""Shared pieces of the fault suite: RISE builds on a tiny model, shard bytes, a deterministic kill -9."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rise_exp.config.trainer import TrainerConfig
from rise_exp.methods.base import MethodContext
from rise_exp.methods.rise.method import RiseMethod

#: Small sketches, short chunks (so long rows are chunked), small blocks (so a pool gives many blocks)
#: and batches of several rows (so a row's signature depends on its batch in the last bits).
CFG: dict[str, Any] = {
    "name": "rise",
    "kr": 16,
    "kh": 16,
    "kg": 8,
    "seed": 3,
    "chunk_len": 48,
    "chunk_overlap": 8,
    "max_tokens_per_batch": 64,  # head slices whose shapes depend on the batch: rounding does too
    "dtype": "float32",  # strictest: every bit of the computed signatures is compared
    "index": {"block_rows": 8, "batch_tokens": 256},
}
CPU = TrainerConfig(accelerator="cpu", devices=1)
DDP = TrainerConfig(accelerator="cpu", devices=2, strategy="ddp_spawn")


def rise(model: Any, tokenizer: Any, index_dir: Path, trainer: TrainerConfig = CPU, **over: Any) -> RiseMethod:
    """A RISE method whose index lives in ``index_dir`` (``index`` overrides merge into CFG's)."""
    index = {**CFG["index"], "dir": str(index_dir), **over.pop("index", {})}
    ctx = MethodContext(model=model, tokenizer=tokenizer, work_dir=index_dir.parent, trainer=trainer, model_id="tiny")
    return RiseMethod({**CFG, **over, "index": index}, ctx)


def manifest(root: Path) -> dict[str, Any]:
    """The manifest without its timestamps."""
    m = json.loads((Path(root) / "manifest.json").read_text())
    return {k: v for k, v in m.items() if k not in ("created", "finalized")}


def killed_at(target: str, when: str, work: Callable[[], None]) -> int:
    """Run ``work`` in a forked process that SIGKILLs itself around the atomic write of file ``target``.

    Every index file is written to a temporary name and renamed with ``os.replace``; the child kills
    itself (a real ``kill -9``: no cleanup, no flush, no finally) just ``"before"`` or ``"after"`` the
    rename that creates ``target``. Returns the child's exit code (``-9`` when the kill happened).
    """
    assert when in ("before", "after")

    def child() -> None:
        real = os.replace

        def replace(src: Any, dst: Any) -> None:
            if when == "before" and Path(dst).name == target:
                os.kill(os.getpid(), signal.SIGKILL)
            real(src, dst)
            if when == "after" and Path(dst).name == target:
                os.kill(os.getpid(), signal.SIGKILL)

        os.replace = replace
        work()

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join()
    return proc.exitcode
