"""IndexWriter: the round trip through SignatureIndex, exact float32 storage, every row exactly once, bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from rise_exp.core.errors import ConfigError, IndexError_
from rise_exp.index import IndexWriter, SignatureIndex
from tests.index.toy import DIM, MANIFEST, N, blocks, build, data, tables


def test_round_trip(tmp_path):
    index = build(tmp_path / "ix").finalize()
    vecs, tokens, masks = data()
    assert (index.num_rows, index.dim, len(index)) == (N, DIM, N)
    np.testing.assert_allclose(index.vectors().astype(np.float32), vecs, rtol=1e-3, atol=1e-3)
    assert index.vectors().dtype == np.float16
    # memmapped blocks hold exactly the rows they were written with, in written order
    for (rows, block), expected in zip(index.iter_blocks(), blocks()):
        assert isinstance(block, np.memmap)
        np.testing.assert_array_equal(rows, expected)
        np.testing.assert_array_equal(block, vecs[expected].astype(np.float16))
    for name, t in tables().items():
        assert torch.equal(index.tables[name], t) and index.tables[name].dtype == t.dtype
    for r in (0, 7, N - 1):
        toks, mask = index.row_tokens(r)
        np.testing.assert_array_equal(toks, tokens[r])
        np.testing.assert_array_equal(mask, masks[r])
        assert index.row_meta(r) == {"id": f"row-{r}"}
    assert index.bytes_per_row == DIM * 2 and index.nbytes == N * DIM * 2
    m = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert m["status"] == "complete" and m["method"] == MANIFEST["method"] and m["data_hash"] == "d41d8c"
    assert [s["block"] for s in m["shards"]] == list(range(len(blocks())))
    again = SignatureIndex.open(tmp_path / "ix")
    np.testing.assert_array_equal(again.vectors(), index.vectors())


def test_float32_storage_is_exact(tmp_path):
    vecs, _, _ = data()
    w = IndexWriter(tmp_path, dim=DIM, num_rows=N, manifest=MANIFEST, dtype="float32")
    w.write_block(0, np.arange(N), vecs)
    index = w.finalize()
    np.testing.assert_array_equal(index.vectors(), vecs)
    assert index.tables == {} and index.nbytes == N * DIM * 4
    with pytest.raises(IndexError_, match="no tokens"):
        index.row_tokens(0)


def test_finalize_requires_every_row_exactly_once(tmp_path):
    w = build(tmp_path / "a", skip={3})
    with pytest.raises(IndexError_, match=re.escape(f"5 missing (first: {sorted(blocks()[3].tolist())})")):
        w.finalize()
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["status"] == "building"
    # two writers (as two ranks) that both wrote row 0
    vecs, _, _ = data()
    w1 = IndexWriter(tmp_path / "b", dim=DIM, num_rows=N, manifest=MANIFEST)
    w2 = IndexWriter(tmp_path / "b", dim=DIM, num_rows=N, manifest=MANIFEST, clean_partial=False)
    w1.write_block(0, np.arange(12), vecs[:12])
    w2.write_block(1, np.arange(11, N), vecs[11:])
    with pytest.raises(IndexError_, match=r"1 repeated \(first: \[11\]\)"):
        w1.finalize()


def test_write_block_rejects_bad_input(tmp_path):
    vecs, tokens, _ = data()
    w = IndexWriter(tmp_path, dim=DIM, num_rows=N, manifest=MANIFEST)
    with pytest.raises(IndexError_, match="shape"):
        w.write_block(0, np.arange(3), vecs[:4])
    with pytest.raises(IndexError_, match="outside"):
        w.write_block(0, np.array([0, N]), vecs[:2])
    with pytest.raises(IndexError_, match="repeats"):
        w.write_block(0, np.array([1, 1]), vecs[:2])
    with pytest.raises(IndexError_, match="tokens"):
        w.write_block(0, np.arange(2), vecs[:2], tokens=tokens[:1])
    w.write_block(0, np.arange(2), vecs[:2])
    with pytest.raises(IndexError_, match="already written"):
        w.write_block(0, np.arange(2, 4), vecs[2:4])
    with pytest.raises(IndexError_, match="repeats"):
        w.write_block(1, np.arange(1, 4), vecs[1:4])
    with pytest.raises(ConfigError, match="float16, float32"):
        IndexWriter(tmp_path / "x", dim=DIM, num_rows=N, manifest=MANIFEST, dtype="int8")
    with pytest.raises(ConfigError, match="reserved"):
        IndexWriter(tmp_path / "y", dim=DIM, num_rows=N, manifest={"status": "x"})
