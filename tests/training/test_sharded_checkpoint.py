"""The per-epoch Hugging Face checkpoints of a finetune under a sharding strategy: every rank joins the gather
(``strategy.lightning_module_state_dict``, a collective under FSDP) and rank 0 writes the gathered weights,
never its own shard of ``module.model``. FSDP itself needs CUDA (docs/design.md); a stand-in strategy shows
the logic on the CPU."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

from rise_exp.models.loading import load_pretrained
from rise_exp.training.cached_finetune import SaveHFEachEpoch
from rise_exp.training.lm_module import CausalLMModule


class GatheringStrategy:
    """What FSDP's strategy does for the callback: a collective gather of the full weights, and a broadcast."""

    def __init__(self, full: dict[str, torch.Tensor]) -> None:
        self.full, self.gathers = full, 0

    def lightning_module_state_dict(self) -> dict[str, torch.Tensor]:
        self.gathers += 1
        return {f"model.{k}": v for k, v in self.full.items()}

    def broadcast(self, obj, src: int = 0):
        return obj


def test_rank_zero_writes_the_gathered_weights_and_every_rank_joins_the_gather(tiny_neox, tiny_tokenizer, tmp_path):
    module = CausalLMModule(tiny_neox())
    full = {k: v + 1.0 for k, v in tiny_neox().state_dict().items()}  # not the local parameters: the gathered ones
    callback = SaveHFEachEpoch(tmp_path, tiny_tokenizer)
    for rank in (1, 0):
        strategy = GatheringStrategy(full)
        trainer = SimpleNamespace(
            strategy=strategy,
            is_global_zero=rank == 0,
            current_epoch=0,
            save_checkpoint=lambda path: Path(path).write_bytes(b"resume point"),
        )
        callback.on_train_start(trainer, module)
        callback.on_train_epoch_end(trainer, module)
        assert strategy.gathers == 2  # both checkpoints gathered on every rank
        assert (tmp_path / "epoch-001").is_dir() == (rank == 0)  # only rank 0 writes
    saved, _ = load_pretrained(tmp_path / "epoch-001")
    for k, v in saved.state_dict().items():
        torch.testing.assert_close(v, full[k], rtol=0, atol=0)
