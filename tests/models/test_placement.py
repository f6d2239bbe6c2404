"""One placement: every forward of every method runs on the placed model, in the configured precision, and
nothing moves the model after placement (Lightning's teardown included)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import PreTrainedModel

from rise_exp.config.trainer import TrainerConfig
from rise_exp.data.records import Record
from rise_exp.methods.base import MethodContext
from rise_exp.methods.registry import config_class
from rise_exp.models.placement import Placement, decide
from rise_exp.run.runner import attribution_scores, build_on

BF16 = TrainerConfig(accelerator="cpu", devices=1, precision="bf16-mixed")
SMALL = {
    "rise": {"kr": 16, "kh": 8, "kg": 8, "chunk_len": 24, "chunk_overlap": 4, "index": {"batch_tokens": 96}},
    "rapidin": {"k": 512, "compress_batch": 4},
    "zo_inf": {},
    "stride": {"steps": 3, "operators_per_step": 4, "max_subsets": 8, "subsets_per_example": 2, "rank": 2},
    "bm25": {},
}


class Recorder:
    """Every Hugging Face model forward in the process (device, autocast dtype), and every ``_apply``
    (``.to`` / ``.cpu`` / ``.cuda`` / ``.float`` ...) of the placed model after placement."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls: list[tuple[str, torch.device, torch.dtype | None]] = []
        self.moves: list[str] = []
        self._hook = torch.nn.modules.module.register_module_forward_pre_hook(self._forward)
        apply = model._apply

        def recorded(fn, *args, **kwargs):
            self.moves.append(getattr(fn, "__name__", repr(fn)))
            return apply(fn, *args, **kwargs)

        model._apply = recorded  # type: ignore[method-assign]

    def _forward(self, module: torch.nn.Module, args) -> None:
        if isinstance(module, PreTrainedModel):
            dev = next(module.parameters()).device
            cast = torch.get_autocast_dtype(dev.type) if torch.is_autocast_enabled(dev.type) else None
            self.calls.append((type(module).__name__, dev, cast))

    def close(self) -> None:
        self._hook.remove()


@pytest.fixture
def records(sentences) -> tuple[list[Record], list[Record]]:
    pool = [Record(id=f"t{i}", text=s) for i, s in enumerate(sentences[:16])]
    return pool, [Record(id=f"q{i}", text=s) for i, s in enumerate(sentences[100:103])]


def _checkpoints(model: torch.nn.Module, root) -> list:
    """Two saved checkpoints (the model and a drift of it): ZO-Inf's finetuning trajectory."""
    paths = []
    for e in range(2):
        if e:
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.01)
        model.save_pretrained(root / f"epoch{e}")
        paths.append(root / f"epoch{e}")
    return paths


@pytest.mark.parametrize("name", ["rise", "rapidin", "zo_inf", "stride", "bm25"])
def test_every_forward_runs_on_the_placed_model_in_the_configured_precision(
    name, tiny_neox, tiny_tokenizer, records, tmp_path
):
    pool, queries = records
    placement = decide(BF16)
    assert placement == Placement(torch.device("cpu"), torch.bfloat16)
    model = tiny_neox()
    checkpoints = _checkpoints(tiny_neox(), tmp_path) if name == "zo_inf" else []
    model = placement.place(model)
    ctx = MethodContext(
        model=model,
        tokenizer=tiny_tokenizer,
        work_dir=tmp_path / "m",
        trainer=BF16,
        placement=placement,
        checkpoints=checkpoints,
        max_length=48,
        seed=1,
    )
    rec = Recorder(model)
    try:
        built = build_on(config_class(name).from_mapping({"name": name, **SMALL[name]}), ctx, pool)
        scores, _ = attribution_scores(built, queries)
    finally:
        rec.close()
    assert scores.shape == (len(queries), len(pool)) and np.isfinite(scores).all()
    if name == "bm25":
        assert rec.calls == []
        return
    assert rec.calls, "no forward was recorded"
    wrong = [c for c in rec.calls if c[1] != placement.device or c[2] != torch.bfloat16]
    assert wrong == [], f"{len(wrong)} of {len(rec.calls)} forwards off the placement: {wrong[:3]}"
    assert rec.moves == [], f"the model was moved after placement: {rec.moves}"
    assert next(model.parameters()).dtype == torch.float32  # autocast, not a cast of the weights


def test_lightning_fit_and_predict_leave_the_model_where_it_was_placed(tiny_neox, tiny_tokenizer, sentences, tmp_path):
    """Lightning's own single-device strategy calls ``.cpu()`` at teardown; ours does not move the model."""
    from rise_exp.config.finetune import FinetuneConfig
    from rise_exp.data.encoding import encode_records
    from rise_exp.training.recipe import fit_rows

    model = decide(BF16).place(tiny_neox())
    rows = encode_records(
        [Record(id=f"t{i}", text=s) for i, s in enumerate(sentences[:8])], tiny_tokenizer, max_length=32
    )
    rec = Recorder(model)
    try:
        fit_rows(
            model,
            rows,
            tiny_tokenizer.pad_token_id,
            cfg=FinetuneConfig(epochs=1, max_steps=1, max_tokens_per_batch=64),
            trainer=BF16,
            root_dir=tmp_path,
        )
    finally:
        rec.close()
    assert rec.moves == [] and rec.calls and all(c[2] == torch.bfloat16 for c in rec.calls)


def test_bf16_autocast_keeps_rise_signatures_within_tolerance_of_float32(tiny_neox, tiny_tokenizer, records, tmp_path):
    """Mixed precision runs the trunk in bf16 and RISE's head in fp32: per-row cosine to the fp32 signatures
    >= 0.99 (the stated tolerance of ``trainer.precision=bf16-mixed``), and the top-1 row of every query kept."""
    pool, queries = records
    model = tiny_neox()
    out = {}
    for precision in ("32-true", "bf16-mixed"):
        trainer = TrainerConfig(accelerator="cpu", devices=1, precision=precision)
        ctx = MethodContext(
            model=model,
            tokenizer=tiny_tokenizer,
            work_dir=tmp_path / precision,
            trainer=trainer,
            placement=decide(trainer),
            max_length=48,
            index_root=tmp_path / precision,
        )
        built = build_on(config_class("rise").from_mapping({"name": "rise", **SMALL["rise"]}), ctx, pool)
        out[precision] = (built.method.index.vectors(), attribution_scores(built, queries)[0])
    (v32, s32), (v16, s16) = out["32-true"], out["bf16-mixed"]
    cos = (v32 * v16).sum(1) / (np.linalg.norm(v32, axis=1) * np.linalg.norm(v16, axis=1))
    assert cos.min() >= 0.99, cos.min()
    assert (s32.argmax(1) == s16.argmax(1)).all()


def test_a_default_run_places_its_finetuned_model_once_and_computes_there(tmp_path):
    """The pipeline (embedded model, cached finetune, RISE through the runner), bf16-mixed on the CPU: the
    model is placed after loading, every forward afterwards runs there under bf16 autocast, nothing moves it."""
    from rise_exp.run.config import RunConfig, compose
    from rise_exp.run.pipeline import prepare

    run = RunConfig.from_cfg(
        compose(
            [
                "task.n_train=40",
                "task.n_queries=3",
                "finetune.max_steps=1",
                "trainer.precision=bf16-mixed",
                f"paths.cache_dir={tmp_path}/cache",
            ]
        )
    )
    prep = prepare(run, tmp_path / "run")
    assert prep.ctx.placement == decide(run.trainer)
    rec = Recorder(prep.ctx.model)
    try:
        built = build_on(run.method, prep.ctx, prep.task.train)
        scores, _ = attribution_scores(built, prep.task.queries)
    finally:
        rec.close()
    assert np.isfinite(scores).all() and rec.calls
    assert all(c[1] == torch.device("cpu") and c[2] == torch.bfloat16 for c in rec.calls), rec.calls[:3]
    assert rec.moves == []
