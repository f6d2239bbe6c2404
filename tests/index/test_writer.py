"""The on-disk signature index: round trip, resume after a crash, refusal, half-written detection."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from rise_exp.core.errors import ConfigError, IndexError_
from rise_exp.index import BatchPlan, IndexWriter, SignatureIndex

N, DIM = 23, 8
MANIFEST = {"method": {"name": "rise", "kh": 4, "kr": 2}, "model": "tiny-neox@abc", "data_hash": "d41d8c"}


def _tables() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "h_buckets": torch.randint(0, 4, (16,), generator=g),
        "h_signs": torch.randint(0, 2, (16,), generator=g).to(torch.int8) * 2 - 1,
        "r_buckets": torch.randint(0, 2, (50,), generator=g),
    }


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((N, DIM)).astype(np.float32)
    tokens = [rng.integers(0, 300, size=int(rng.integers(1, 9))) for _ in range(N)]
    masks = [rng.random(t.shape[0]) > 0.4 for t in tokens]
    return vecs, tokens, masks


def _blocks(perm_seed: int = 1, size: int = 5) -> list[np.ndarray]:
    perm = np.random.default_rng(perm_seed).permutation(N)
    return [perm[i : i + size] for i in range(0, N, size)]


def _build(path: Path, blocks=None, skip: set[int] = frozenset(), **kw) -> IndexWriter:
    vecs, tokens, masks = _data()
    w = IndexWriter(path, dim=DIM, num_rows=N, manifest=MANIFEST, tables=_tables(), block_rows=5, **kw)
    for b, rows in enumerate(blocks if blocks is not None else _blocks()):
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


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.name != "manifest.json"}


def test_round_trip(tmp_path):
    index = _build(tmp_path / "ix").finalize()
    vecs, tokens, masks = _data()
    assert (index.num_rows, index.dim, len(index)) == (N, DIM, N)
    np.testing.assert_allclose(index.vectors().astype(np.float32), vecs, rtol=1e-3, atol=1e-3)
    assert index.vectors().dtype == np.float16
    # memmapped blocks hold exactly the rows they were written with, in written order
    for (rows, block), expected in zip(index.iter_blocks(), _blocks()):
        assert isinstance(block, np.memmap)
        np.testing.assert_array_equal(rows, expected)
        np.testing.assert_array_equal(block, vecs[expected].astype(np.float16))
    for name, t in _tables().items():
        assert torch.equal(index.tables[name], t) and index.tables[name].dtype == t.dtype
    for r in (0, 7, N - 1):
        toks, mask = index.row_tokens(r)
        np.testing.assert_array_equal(toks, tokens[r])
        np.testing.assert_array_equal(mask, masks[r])
        assert index.row_meta(r) == {"id": f"row-{r}"}
    assert index.bytes_per_row == DIM * 2 and index.nbytes == N * DIM * 2
    m = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert m["status"] == "complete" and m["method"] == MANIFEST["method"] and m["data_hash"] == "d41d8c"
    assert [s["block"] for s in m["shards"]] == list(range(len(_blocks())))
    again = SignatureIndex.open(tmp_path / "ix")
    np.testing.assert_array_equal(again.vectors(), index.vectors())


def test_float32_storage_is_exact(tmp_path):
    vecs, _, _ = _data()
    w = IndexWriter(tmp_path, dim=DIM, num_rows=N, manifest=MANIFEST, dtype="float32")
    w.write_block(0, np.arange(N), vecs)
    index = w.finalize()
    np.testing.assert_array_equal(index.vectors(), vecs)
    assert index.tables == {} and index.nbytes == N * DIM * 4
    with pytest.raises(IndexError_, match="no tokens"):
        index.row_tokens(0)


def test_resume_after_crash_equals_clean_build(tmp_path):
    clean = _build(tmp_path / "clean").finalize()
    crash = tmp_path / "crash"
    _build(crash, skip={1, 4})  # crashed before blocks 1 and 4, no finalize
    # a partial block: data files written, marker missing (died before it)
    vecs, _, _ = _data()
    rows = _blocks()[1]
    np.save(crash / "vectors-00001.npy", vecs[rows].astype(np.float16))
    np.save(crash / "rows-00001.npy", rows.astype(np.int64))
    # a block whose marker exists but whose vectors were damaged later
    with open(crash / "vectors-00002.npy", "r+b") as fh:
        fh.seek(-4, os.SEEK_END)
        fh.write(b"\x00\x01\x02\x03")
    (crash / "block-00003.done.tmp").write_text("{")  # an interrupted marker write
    with pytest.raises(IndexError_):
        SignatureIndex.open(crash)

    w = IndexWriter(crash, dim=DIM, num_rows=N, manifest=MANIFEST, tables=_tables(), block_rows=5)
    assert w.completed_blocks == {0, 3}
    assert w.completed_rows == set(_blocks()[0].tolist()) | set(_blocks()[3].tolist())
    np.testing.assert_array_equal(w.pending_rows(), sorted(set(range(N)) - w.completed_rows))
    assert not (crash / "vectors-00001.npy").exists() and not (crash / "vectors-00002.npy").exists()
    assert not (crash / "block-00003.done.tmp").exists()
    untouched = (crash / "vectors-00000.npy").stat().st_mtime_ns
    _build(crash)  # the resumed build skips completed blocks
    assert (crash / "vectors-00000.npy").stat().st_mtime_ns == untouched
    resumed = IndexWriter(crash, dim=DIM, num_rows=N, manifest=MANIFEST, tables=_tables()).finalize()
    assert _files(crash) == _files(tmp_path / "clean")
    np.testing.assert_array_equal(resumed.vectors(), clean.vectors())


def test_resume_refuses_changed_build_with_diff(tmp_path):
    _build(tmp_path, skip={2})
    changed = {**MANIFEST, "method": {**MANIFEST["method"], "kh": 8}, "data_hash": "ffff"}
    with pytest.raises(IndexError_) as err:
        IndexWriter(tmp_path, dim=DIM, num_rows=N, manifest=changed, tables=_tables())
    msg = str(err.value)
    assert "method.kh: 4 -> 8" in msg and "data_hash: 'd41d8c' -> 'ffff'" in msg
    assert "model" not in msg.replace("resume=False", "")
    with pytest.raises(IndexError_, match="model: 'tiny-neox@abc' -> 'pythia-160m'"):
        IndexWriter(tmp_path, dim=DIM, num_rows=N, manifest={**MANIFEST, "model": "pythia-160m"}, tables=_tables())
    with pytest.raises(IndexError_, match=r"dim: 8 -> 16.*num_rows: 23 -> 24"):
        IndexWriter(tmp_path, dim=16, num_rows=N + 1, manifest=MANIFEST, tables=_tables())
    other = {**_tables(), "h_signs": -_tables()["h_signs"]}
    with pytest.raises(IndexError_, match="tables_sha256"):
        IndexWriter(tmp_path, dim=DIM, num_rows=N, manifest=MANIFEST, tables=other)
    # nothing was deleted by the refusals; resume=False starts over
    assert IndexWriter(tmp_path, dim=DIM, num_rows=N, manifest=MANIFEST, tables=_tables()).completed_blocks == {
        0,
        1,
        3,
        4,
    }
    fresh = IndexWriter(tmp_path, dim=16, num_rows=N, manifest=changed, resume=False)
    assert fresh.completed_blocks == set() and not list(tmp_path.glob("*.npy"))


@pytest.mark.parametrize(
    "damage, match",
    [
        ("no_finalize", "status is 'building'"),
        ("no_manifest", "no manifest.json"),
        ("missing_marker", "block 2 has no marker"),
        ("bad_checksum", "block 1 file vectors-00001.npy fails its sha256"),
        ("missing_file", "block 3 file rows-00003.npy is missing"),
        ("extra_block", "blocks \\[9\\] are on disk"),
        ("bad_tables", "sketch.safetensors does not match"),
    ],
)
def test_open_detects_half_written_index(tmp_path, damage, match):
    w = _build(tmp_path)
    if damage != "no_finalize":
        w.finalize()
    if damage == "no_manifest":
        (tmp_path / "manifest.json").unlink()
    elif damage == "missing_marker":
        (tmp_path / "block-00002.done").unlink()
    elif damage == "bad_checksum":
        arr = np.load(tmp_path / "vectors-00001.npy")
        arr[0, 0] += 1
        np.save(tmp_path / "vectors-00001.npy", arr)
    elif damage == "missing_file":
        (tmp_path / "rows-00003.npy").unlink()
    elif damage == "extra_block":
        np.save(tmp_path / "vectors-00009.npy", np.zeros((1, DIM), np.float16))
    elif damage == "bad_tables":
        from safetensors.torch import save_file

        save_file({**_tables(), "h_buckets": _tables()["h_buckets"] + 1}, str(tmp_path / "sketch.safetensors"))
    with pytest.raises(IndexError_, match=match):
        SignatureIndex.open(tmp_path)


def test_lazy_verification_catches_damage_on_read(tmp_path):
    _build(tmp_path).finalize()
    arr = np.load(tmp_path / "vectors-00001.npy")
    arr[0, 0] += 1
    np.save(tmp_path / "vectors-00001.npy", arr)
    index = SignatureIndex.open(tmp_path, verify="lazy")
    index.block(0)
    with pytest.raises(IndexError_, match="vectors-00001.npy fails"):
        list(index.iter_blocks())


def test_finalize_requires_every_row_exactly_once(tmp_path):
    w = _build(tmp_path / "a", skip={3})
    with pytest.raises(IndexError_, match=re.escape(f"5 missing (first: {sorted(_blocks()[3].tolist())})")):
        w.finalize()
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["status"] == "building"
    # two writers (as two ranks) that both wrote row 0
    vecs, _, _ = _data()
    w1 = IndexWriter(tmp_path / "b", dim=DIM, num_rows=N, manifest=MANIFEST)
    w2 = IndexWriter(tmp_path / "b", dim=DIM, num_rows=N, manifest=MANIFEST, clean_partial=False)
    w1.write_block(0, np.arange(12), vecs[:12])
    w2.write_block(1, np.arange(11, N), vecs[11:])
    with pytest.raises(IndexError_, match=r"1 repeated \(first: \[11\]\)"):
        w1.finalize()


def test_write_block_rejects_bad_input(tmp_path):
    vecs, tokens, _ = _data()
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


# ----------------------------------------------------------------------------- Lightning writer


class _ToySignatures:
    """What a LightningModule's predict_step returns for given rows: fixed random vectors + tokens."""

    def __call__(self, rows: torch.Tensor) -> dict:
        vecs, tokens, masks = _data()
        ids = rows.tolist()
        return {
            "rows": rows,
            "signatures": torch.from_numpy(vecs[ids]),
            "tokens": [torch.from_numpy(tokens[r]) for r in ids],
            "masks": [torch.from_numpy(masks[r]) for r in ids],
        }


def _plan() -> BatchPlan:
    """A plan over a shuffled pool (e.g. length-sorted): batches of 3 rows, blocks of up to 7 rows."""
    order = np.random.default_rng(5).permutation(N).tolist()
    return BatchPlan.from_batches([order[i : i + 3] for i in range(0, N, 3)], block_rows=7)


def _writer_args() -> dict:
    return dict(dim=DIM, num_rows=N, manifest=MANIFEST, tables=_tables(), block_rows=7, plan=_plan())


def _predict(path: Path, blocks: list[int], **kw):
    """Run Trainer.predict over the planned batches of ``blocks`` into the index at ``path``."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    from rise_exp.lightning.index_writer import IndexPredictionWriter

    class Toy(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.signatures = _ToySignatures()

        def predict_step(self, batch: torch.Tensor, batch_idx: int) -> dict:
            return self.signatures(batch)

    IndexWriter(path, **_writer_args())  # a build opens (and repairs) its directory first
    writer = IndexPredictionWriter(path, blocks=blocks, **_writer_args(), **kw)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[writer],
    )
    batches = [torch.tensor(b) for block in blocks for b in _plan().block_batches(block)]
    trainer.predict(Toy(), dataloaders=DataLoader(batches, batch_size=None), return_predictions=False)
    return writer


def test_prediction_writer_with_lightning_predict(tmp_path):
    plan = _plan()
    assert [len(plan.block_rows(b)) for b in range(plan.num_blocks)] == [6, 6, 6, 5]
    writer = _predict(tmp_path, list(range(plan.num_blocks)))
    index = SignatureIndex.open(tmp_path)
    assert writer.index is not None and writer.index.num_rows == N
    vecs, tokens, masks = _data()
    np.testing.assert_array_equal(index.vectors(), vecs.astype(np.float16))
    assert index.block_ids == [0, 1, 2, 3]
    for block in index.block_ids:  # each block holds the plan's rows, in planned order
        np.testing.assert_array_equal(index.block(block)[0], plan.block_rows(block))
    for r in range(N):
        toks, mask = index.row_tokens(r)
        np.testing.assert_array_equal(toks, tokens[r])
        np.testing.assert_array_equal(mask, masks[r])
    assert all(torch.equal(index.tables[k], v) for k, v in _tables().items())
    assert BatchPlan.from_json((tmp_path / "plan.json").read_bytes()) == plan
    assert json.loads((tmp_path / "manifest.json").read_text())["plan"]["sha256"] == plan.sha256


def test_prediction_writer_resumes_an_interrupted_build(tmp_path):
    _predict(tmp_path / "clean", [0, 1, 2, 3])
    _predict(tmp_path / "crash", [0, 2], finalize=False)  # the job died after blocks 0 and 2
    with pytest.raises(IndexError_, match="building"):
        SignatureIndex.open(tmp_path / "crash")
    assert IndexWriter(tmp_path / "crash", **_writer_args()).pending_blocks() == [1, 3]
    _predict(tmp_path / "crash", [1, 3])
    assert _files(tmp_path / "crash") == _files(tmp_path / "clean")


def test_prediction_writer_ranks_never_collide(tmp_path):
    """Two simulated data-parallel ranks write every other block; rank 0 finalizes the same bytes as one rank."""
    from types import SimpleNamespace

    from rise_exp.lightning.index_writer import IndexPredictionWriter

    _predict(tmp_path / "one", [0, 1, 2, 3])
    root = tmp_path / "two"
    IndexWriter(root, **_writer_args())
    toy, plan = _ToySignatures(), _plan()
    writers, trainers = [], []
    for rank in (0, 1):
        writers.append(IndexPredictionWriter(root, blocks=[0, 1, 2, 3], **_writer_args()))
        trainers.append(
            SimpleNamespace(global_rank=rank, world_size=2, strategy=SimpleNamespace(barrier=lambda name=None: None))
        )
        writers[rank].on_predict_start(trainers[rank], None)
    feeds = [[b for block in (rank, rank + 2) for b in plan.block_batches(block)] for rank in (0, 1)]
    for step in range(max(map(len, feeds))):
        for rank in (0, 1):
            if step < len(feeds[rank]):
                batch = torch.tensor(feeds[rank][step])
                writers[rank].write_on_batch_end(trainers[rank], None, toy(batch), None, batch, step, 0)
    writers[1].on_predict_end(trainers[1], None)
    writers[0].on_predict_end(trainers[0], None)
    assert writers[0].index is not None and writers[1].index is None
    assert _files(root) == _files(tmp_path / "one")


def test_prediction_writer_rejects_bad_outputs(tmp_path):
    from types import SimpleNamespace

    from rise_exp.core.errors import DataError
    from rise_exp.lightning.index_writer import IndexPredictionWriter

    IndexWriter(tmp_path, **_writer_args())
    w = IndexPredictionWriter(tmp_path, blocks=[0, 1], **_writer_args())
    t = SimpleNamespace(global_rank=0, world_size=1, strategy=SimpleNamespace(barrier=lambda name=None: None))
    w.on_predict_start(t, None)
    with pytest.raises(DataError, match="'rows' and 'signatures'"):
        w.write_on_batch_end(t, None, torch.zeros(2, DIM), None, None, 0, 0)
    with pytest.raises(DataError, match=r"shape \(2, 3\)"):
        w.write_on_batch_end(t, None, {"rows": torch.arange(2), "signatures": torch.zeros(2, 3)}, None, None, 0, 0)
    foreign = int(_plan().block_rows(3)[0])
    with pytest.raises(DataError, match=f"row {foreign}, which is not"):
        w.write_on_batch_end(t, None, _ToySignatures()(torch.tensor([foreign])), None, None, 0, 0)
    with pytest.raises(IndexError_, match="batch plan"):
        IndexPredictionWriter(tmp_path, blocks=[0], dim=DIM, num_rows=N, manifest=MANIFEST)
