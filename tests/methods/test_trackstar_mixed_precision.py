"""TrackStar under ``trainer.precision=bf16-mixed`` (the GPU presets): bergson clamps every gradient to the range of
the weights' dtype, which a bf16 gradient of float32 weights overflows; the method collects outside autocast, so
a mixed-precision run gives the float32 run's scores."""

from __future__ import annotations

import numpy as np

from rise_exp.config.trainer import TrainerConfig
from rise_exp.data.records import Record
from rise_exp.methods.base import MethodContext
from rise_exp.methods.registry import config_class
from rise_exp.models.placement import decide
from rise_exp.run.runner import attribution_scores, build_on


def test_trackstar_under_bf16_mixed_gives_the_float32_scores(tiny_neox, tiny_tokenizer, sentences, tmp_path):
    model = tiny_neox()
    pool = [Record(id=f"t{i}", text=s) for i, s in enumerate(sentences[:8])]
    queries = [Record(id=f"q{i}", text=s) for i, s in enumerate(sentences[100:102])]
    scores = {}
    for precision in ("32-true", "bf16-mixed"):
        trainer = TrainerConfig(accelerator="cpu", devices=1, precision=precision)
        ctx = MethodContext(
            model=model, tokenizer=tiny_tokenizer, work_dir=tmp_path / precision, index_root=tmp_path / precision,
            trainer=trainer, placement=decide(trainer), max_length=32, seed=0,
        )  # fmt: skip
        cfg = config_class("trackstar").from_mapping({"name": "trackstar", "projection_dim": 4})
        scores[precision] = attribution_scores(build_on(cfg, ctx, pool), queries)[0]
    np.testing.assert_array_equal(scores["bf16-mixed"], scores["32-true"])
