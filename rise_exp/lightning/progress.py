"""A Lightning callback that shows an index build's progress: rows written, rows/s, ETA (rank 0)."""

from __future__ import annotations

from typing import Any

import lightning as L

from rise_exp import progress


class PredictProgress(L.Callback):
    """One tqdm bar over the rows a prediction (index build) computes."""

    def __init__(self, total_rows: int, desc: str) -> None:
        self.total, self.desc = total_rows, desc
        self._bar: Any = None

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._bar = progress.bar(self.total, self.desc, unit="row")

    def on_predict_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._bar is not None and isinstance(outputs, dict) and "rows" in outputs:
            self._bar.update(len(outputs["rows"]) * trainer.world_size)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
