"""The index bar advances within a batch (as the model's decoder layers finish), so a pool of one batch does
not sit at 0 until it ends; its total is the pool's rows, it ends there, and its layer hooks are removed."""

from __future__ import annotations

import numpy as np
import torch

from rise_exp.data.encoding import EncodedRow
from rise_exp.lightning.callbacks import PredictProgress
from rise_exp.methods.rise import RiseConfig, RiseIndexingModule, SketchTables
from rise_exp.methods.rise.indexing import predict_loader
from rise_exp.models.layers import decoder_layers
from tests.helpers import cpu_trainer, record_bars, tiny_lm

CFG = RiseConfig(kr=16, kh=8, kg=8, topk=12, chunk_len=16, chunk_overlap=4)


def rows(n: int) -> list[EncodedRow]:
    g = np.random.default_rng(1)
    return [EncodedRow(row=i, input_ids=g.integers(0, 300, 10), target_mask=np.ones(10, dtype=bool)) for i in range(n)]


def test_one_batch_advances_layer_by_layer_to_its_rows(monkeypatch) -> None:
    bars = record_bars(monkeypatch)
    model = tiny_lm(300, layers=4)
    pool = rows(9)
    loader = predict_loader(pool, CFG, pad_id=0, batch_tokens=4096)  # the whole pool in one batch
    assert len(loader) == 1
    module = RiseIndexingModule(model, CFG, SketchTables.create(CFG, 300, 32))
    cpu_trainer(callbacks=[PredictProgress(len(pool), "rise index")]).predict(module, loader, return_predictions=False)
    (bar,) = bars
    assert bar.total == 9 and bar.desc == "rise index" and bar.closed
    # four blocks + the rest: 9 rows shown as 1, 3, 5, 7 after blocks 1-4, then the last 2 when the batch ends
    assert bar.updates == [1, 2, 2, 2, 2] and sum(bar.updates) == 9
    assert all(not layer._forward_hooks for layer in decoder_layers(model))


def test_a_model_without_a_block_stack_advances_per_batch(monkeypatch) -> None:
    bars = record_bars(monkeypatch)

    class Plain(torch.nn.Module):  # not an HF model: no decoder layers to hook
        pass

    class Module(RiseIndexingModule):
        def predict_step(self, batch, batch_idx=0):
            return {"rows": torch.unique(batch["row"]), "signatures": torch.zeros(0)}

    module = Module(tiny_lm(300, layers=2), CFG, SketchTables.create(CFG, 300, 32))
    module.model = Plain()
    loader = predict_loader(rows(6), CFG, pad_id=0, batch_tokens=64)  # four rows (padded to 16 tokens) a batch
    cpu_trainer(callbacks=[PredictProgress(6, "rise index")]).predict(module, loader, return_predictions=False)
    assert bars[0].updates == [4, 2]
