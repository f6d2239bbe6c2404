"""Data-parallel builds (ddp_spawn, 2 CPU processes) write the bytes of a single-process build."""

from __future__ import annotations

from tests.helpers import shard_bytes
from tests.reliability.fault_kit import DDP, killed_at, manifest, rise


def test_ddp_build_is_byte_identical(model, tiny_tokenizer, pool, clean_index, tmp_path):
    path = tmp_path / "index"
    rise(model, tiny_tokenizer, path, trainer=DDP).build(pool)
    assert shard_bytes(path) == shard_bytes(clean_index)
    assert manifest(path) == manifest(clean_index)


def test_ddp_resume_of_one_block_is_byte_identical(model, tiny_tokenizer, pool, clean_index, tmp_path):
    """One block left: rank 1 gets none (an empty batch keeps it in step) and rank 0 computes it."""
    path = tmp_path / "index"
    last = manifest(clean_index)["plan"]["blocks"] - 1
    code = killed_at(f"vectors-{last:05d}.npy", "after", lambda: rise(model, tiny_tokenizer, path).build(pool))
    assert code == -9
    rise(model, tiny_tokenizer, path, trainer=DDP).build(pool)
    assert shard_bytes(path) == shard_bytes(clean_index)
