"""kill -9 at random points of a real RISE build, then resume: byte-identical to a clean build."""

from __future__ import annotations

import random

from rise_exp.index import SignatureIndex
from tests.helpers import shard_bytes
from tests.reliability.fault_kit import killed_at, manifest, rise

KINDS = ("vectors", "rows", "tokens", "offsets", "masks", "meta", "marker")


def block_file(kind: str, block: int) -> str:
    if kind == "marker":
        return f"block-{block:05d}.done"
    return f"{kind}-{block:05d}.{'jsonl' if kind == 'meta' else 'npy'}"


def kill_points(num_blocks: int, rng: random.Random) -> list[tuple[str, str]]:
    """Six points in build order: inside the first block, three random points inside later blocks,
    after the last block (its marker written, the index not sealed) and while sealing the manifest."""
    points = [("vectors-00000.npy", "after")]
    for block in sorted(rng.sample(range(1, num_blocks - 1), 3)):
        points.append((block_file(rng.choice(KINDS), block), rng.choice(("before", "after"))))
    points.append((block_file("marker", num_blocks - 1), "after"))
    points.append(("manifest.json", "before"))
    return points


def test_killed_and_resumed_build_is_byte_identical(model, tiny_tokenizer, pool, clean_index, tmp_path):
    path = tmp_path / "index"
    num_blocks = manifest(clean_index)["plan"]["blocks"]
    points = kill_points(num_blocks, random.Random(20261201))
    for target, when in points:  # each run resumes what the killed one before it left
        code = killed_at(target, when, lambda: rise(model, tiny_tokenizer, path).build(pool))
        assert code == -9, f"the build was not killed {when} writing {target} (points: {points})"
        assert manifest(path)["status"] == "building"
    rise(model, tiny_tokenizer, path).build(pool)
    assert shard_bytes(path) == shard_bytes(clean_index), f"kill points: {points}"
    assert manifest(path) == manifest(clean_index)
    SignatureIndex.open(path)


def test_the_bytes_depend_on_the_batches(model, tiny_tokenizer, pool, clean_index, tmp_path):
    """Control: other batches give other bytes, so the identity above is not a coincidence of fp16."""
    other = rise(model, tiny_tokenizer, tmp_path / "other", index={"batch_tokens": 96, "pad_multiple": 1})
    other.build(pool)
    same = rise(model, tiny_tokenizer, clean_index)
    same.build(pool)  # reused
    assert (other.index.vectors() != same.index.vectors()).any(axis=1).sum() > 0
