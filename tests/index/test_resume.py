"""Resuming a build (index/resume.py): a crashed build is repaired and finishes as a clean one; a changed
build is refused with the differing keys."""

from __future__ import annotations

import os

import numpy as np
import pytest

from rise_exp.core.errors import IndexError_
from rise_exp.index import IndexWriter, SignatureIndex
from tests.helpers import shard_bytes
from tests.index.toy import DIM, MANIFEST, N, blocks, build, data, tables


def test_resume_after_crash_equals_clean_build(tmp_path):
    clean = build(tmp_path / "clean").finalize()
    crash = tmp_path / "crash"
    build(crash, skip={1, 4})  # crashed before blocks 1 and 4, no finalize
    # a partial block: data files written, marker missing (died before it)
    vecs, _, _ = data()
    rows = blocks()[1]
    np.save(crash / "vectors-00001.npy", vecs[rows].astype(np.float16))
    np.save(crash / "rows-00001.npy", rows.astype(np.int64))
    # a block whose marker exists but whose vectors were damaged later
    with open(crash / "vectors-00002.npy", "r+b") as fh:
        fh.seek(-4, os.SEEK_END)
        fh.write(b"\x00\x01\x02\x03")
    (crash / "block-00003.done.tmp").write_text("{")  # an interrupted marker write
    with pytest.raises(IndexError_):
        SignatureIndex.open(crash)

    w = IndexWriter(crash, dim=DIM, num_rows=N, manifest=MANIFEST, tables=tables(), block_rows=5)
    assert w.completed_blocks == {0, 3}
    assert w.completed_rows == set(blocks()[0].tolist()) | set(blocks()[3].tolist())
    np.testing.assert_array_equal(w.pending_rows(), sorted(set(range(N)) - w.completed_rows))
    assert not (crash / "vectors-00001.npy").exists() and not (crash / "vectors-00002.npy").exists()
    assert not (crash / "block-00003.done.tmp").exists()
    untouched = (crash / "vectors-00000.npy").stat().st_mtime_ns
    build(crash)  # the resumed build skips completed blocks
    assert (crash / "vectors-00000.npy").stat().st_mtime_ns == untouched
    resumed = IndexWriter(crash, dim=DIM, num_rows=N, manifest=MANIFEST, tables=tables()).finalize()
    assert shard_bytes(crash) == shard_bytes(tmp_path / "clean")
    np.testing.assert_array_equal(resumed.vectors(), clean.vectors())


def test_resume_refuses_changed_build_with_diff(tmp_path):
    build(tmp_path, skip={2})
    changed = {**MANIFEST, "method": {**MANIFEST["method"], "kh": 8}, "data_hash": "ffff"}
    with pytest.raises(IndexError_) as err:
        IndexWriter(tmp_path, dim=DIM, num_rows=N, manifest=changed, tables=tables())
    msg = str(err.value)
    assert "method.kh: 4 -> 8" in msg and "data_hash: 'd41d8c' -> 'ffff'" in msg
    assert "model" not in msg.replace("resume=False", "")
    with pytest.raises(IndexError_, match="model: 'tiny-neox@abc' -> 'pythia-160m'"):
        IndexWriter(tmp_path, dim=DIM, num_rows=N, manifest={**MANIFEST, "model": "pythia-160m"}, tables=tables())
    with pytest.raises(IndexError_, match=r"dim: 8 -> 16.*num_rows: 23 -> 24"):
        IndexWriter(tmp_path, dim=16, num_rows=N + 1, manifest=MANIFEST, tables=tables())
    other = {**tables(), "h_signs": -tables()["h_signs"]}
    with pytest.raises(IndexError_, match="tables_sha256"):
        IndexWriter(tmp_path, dim=DIM, num_rows=N, manifest=MANIFEST, tables=other)
    # nothing was deleted by the refusals; resume=False starts over
    assert IndexWriter(tmp_path, dim=DIM, num_rows=N, manifest=MANIFEST, tables=tables()).completed_blocks == {
        0,
        1,
        3,
        4,
    }
    fresh = IndexWriter(tmp_path, dim=16, num_rows=N, manifest=changed, resume=False)
    assert fresh.completed_blocks == set() and not list(tmp_path.glob("*.npy"))
