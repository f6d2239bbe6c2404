"""lightning/index_writer.py: IndexPredictionWriter under Trainer.predict writes the planned blocks, resumes an
interrupted build, lets data-parallel ranks write disjoint blocks, and rejects bad outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rise_exp.core.errors import IndexError_
from rise_exp.index import BatchPlan, IndexWriter, SignatureIndex
from tests.helpers import cpu_trainer, shard_bytes
from tests.index.toy import DIM, MANIFEST, N, data, tables


class _ToySignatures:
    """What a LightningModule's predict_step returns for given rows: fixed random vectors + tokens."""

    def __call__(self, rows: torch.Tensor) -> dict:
        vecs, tokens, masks = data()
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
    return dict(dim=DIM, num_rows=N, manifest=MANIFEST, tables=tables(), block_rows=7, plan=_plan())


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
    trainer = cpu_trainer(callbacks=[writer])
    batches = [torch.tensor(b) for block in blocks for b in _plan().block_batches(block)]
    trainer.predict(Toy(), dataloaders=DataLoader(batches, batch_size=None), return_predictions=False)
    return writer


def test_prediction_writer_with_lightning_predict(tmp_path):
    plan = _plan()
    assert [len(plan.block_rows(b)) for b in range(plan.num_blocks)] == [6, 6, 6, 5]
    writer = _predict(tmp_path, list(range(plan.num_blocks)))
    index = SignatureIndex.open(tmp_path)
    assert writer.index is not None and writer.index.num_rows == N
    vecs, tokens, masks = data()
    np.testing.assert_array_equal(index.vectors(), vecs.astype(np.float16))
    assert index.block_ids == [0, 1, 2, 3]
    for block in index.block_ids:  # each block holds the plan's rows, in planned order
        np.testing.assert_array_equal(index.block(block)[0], plan.block_rows(block))
    for r in range(N):
        toks, mask = index.row_tokens(r)
        np.testing.assert_array_equal(toks, tokens[r])
        np.testing.assert_array_equal(mask, masks[r])
    assert all(torch.equal(index.tables[k], v) for k, v in tables().items())
    assert BatchPlan.from_json((tmp_path / "plan.json").read_bytes()) == plan
    assert json.loads((tmp_path / "manifest.json").read_text())["plan"]["sha256"] == plan.sha256


def test_prediction_writer_resumes_an_interrupted_build(tmp_path):
    _predict(tmp_path / "clean", [0, 1, 2, 3])
    _predict(tmp_path / "crash", [0, 2], finalize=False)  # the job died after blocks 0 and 2
    with pytest.raises(IndexError_, match="building"):
        SignatureIndex.open(tmp_path / "crash")
    assert IndexWriter(tmp_path / "crash", **_writer_args()).pending_blocks() == [1, 3]
    _predict(tmp_path / "crash", [1, 3])
    assert shard_bytes(tmp_path / "crash") == shard_bytes(tmp_path / "clean")


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
    assert shard_bytes(root) == shard_bytes(tmp_path / "one")


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
