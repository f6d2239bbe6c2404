"""One placement for the stages that answer from an index (query, valuate, select, explain): the model the manifest
names is placed once, every forward runs on it in the configured precision (bf16 autocast on the CPU here),
none runs before placement or on another module, and nothing moves it afterwards."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import PreTrainedModel

from rise_exp.cli import run
from rise_exp.data.synthetic import make_howdy
from rise_exp.models.placement import Placement
from rise_exp.run.config import compose
from tests.helpers import tiny_run

BF16 = ("trainer.precision=bf16-mixed",)
TARGETS = 'stage.query_texts=["howdy! tell me a story about a galaxy","what is the capital of france?"]'


class PlacementRecorder:
    """Every Hugging Face forward (the module, its device, the autocast dtype, whether a model was placed yet)
    and, once a model is placed
    (``Placement.place``), every move (``_apply``) of it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.placed: list[torch.nn.Module] = []
        self.calls: list[tuple[torch.nn.Module, torch.device, torch.dtype | None, bool]] = []
        self.moves: list[str] = []
        place = Placement.place

        def recorded_place(placement: Placement, model: torch.nn.Module) -> torch.nn.Module:
            model = place(placement, model)
            self.placed.append(model)
            apply = model._apply

            def recorded_apply(fn, *args, **kwargs):
                self.moves.append(getattr(fn, "__name__", repr(fn)))
                return apply(fn, *args, **kwargs)

            model._apply = recorded_apply  # type: ignore[method-assign]
            return model

        monkeypatch.setattr(Placement, "place", recorded_place)
        self._hook = torch.nn.modules.module.register_module_forward_pre_hook(self._forward)

    def _forward(self, module: torch.nn.Module, args) -> None:
        if isinstance(module, PreTrainedModel):
            dev = next(module.parameters()).device
            cast = torch.get_autocast_dtype(dev.type) if torch.is_autocast_enabled(dev.type) else None
            self.calls.append((module, dev, cast, bool(self.placed)))

    def close(self) -> None:
        self._hook.remove()


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """A RISE index of a 40-row custom pool (built in float32: the stages below serve it in bf16-mixed)."""
    root = tmp_path_factory.mktemp("placed-stages")
    data = make_howdy(n_train=40, n_queries=2, seed=3)
    pool = root / "pool.jsonl"
    pool.write_text(
        "".join(json.dumps({k: v for k, v in r.to_dict().items() if k != "label"}) + "\n" for r in data.train)
    )
    base = tiny_run(
        "task=custom", f"task.train_path={pool}", "model=tiny-pythia", "method.kr=16", "method.kh=8", "method.kg=8",
        f"paths.cache_dir={root / 'cache'}", 'task.query_texts=["howdy! what is the capital of france?"]', epochs=0,
    )  # fmt: skip
    metrics = run(compose(base), root / "build")
    return root, pool, metrics["index"]


@pytest.mark.parametrize("stage", ["query", "valuate", "select", "explain"])
def test_stages_from_an_index_compute_on_the_placed_model_in_the_configured_precision(
    stage, index, monkeypatch, tmp_path
):
    root, pool, path = index
    overrides = [f"stage={stage}", f"stage.index={path}", TARGETS, "logger=none", *BF16]
    if stage == "select":
        overrides += [f"stage.pool_path={pool}", "stage.fraction=0.25"]
    rec = PlacementRecorder(monkeypatch)
    try:
        run(compose(overrides), tmp_path / stage)
    finally:
        rec.close()
    assert len(rec.placed) == 1, "the served model is placed exactly once"
    model = rec.placed[0]
    inner = set(model.modules())
    assert rec.calls, "no forward was recorded"
    off = [
        (type(m).__name__, d, c, after)
        for m, d, c, after in rec.calls
        if not after or m not in inner or d.type != "cpu" or c != torch.bfloat16
    ]
    assert off == [], f"{len(off)} of {len(rec.calls)} forwards off the placed model or its precision: {off[:3]}"
    assert rec.moves == [], f"the model was moved after placement: {rec.moves}"
    assert next(model.parameters()).dtype == torch.float32  # autocast, not a cast of the weights
