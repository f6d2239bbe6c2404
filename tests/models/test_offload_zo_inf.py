"""ZO-Inf on a model split with ``model.device_map``: its finetuning checkpoints are split by the same map (a 32B
checkpoint loaded whole would not fit the first GPU), and the scores equal the in-memory run's."""

from __future__ import annotations

import numpy as np
import torch

from rise_exp.config.trainer import TrainerConfig
from rise_exp.data.records import Record
from rise_exp.methods.base import MethodContext
from rise_exp.methods.registry import config_class
from rise_exp.methods.zo_inf.method import ZOInf
from rise_exp.models.loading import load_pretrained
from rise_exp.models.placement import decide, dispatched
from rise_exp.run.runner import attribution_scores, build_on

CPU = TrainerConfig(accelerator="cpu", devices=1)


def test_zo_inf_splits_its_checkpoints_like_the_model_and_keeps_its_scores(
    tiny_tokenizer, sentences, tmp_path, monkeypatch
):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    cfg = GPTNeoXConfig(
        vocab_size=len(tiny_tokenizer), hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=128,
    )  # fmt: skip
    model = GPTNeoXForCausalLM(cfg)
    checkpoints = []
    for e in range(2):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * e)
        model.save_pretrained(tmp_path / f"epoch{e}")
        tiny_tokenizer.save_pretrained(tmp_path / f"epoch{e}")
        checkpoints.append(tmp_path / f"epoch{e}")
    pool = [Record(id=f"t{i}", text=s) for i, s in enumerate(sentences[:12])]
    queries = [Record(id=f"q{i}", text=s) for i, s in enumerate(sentences[100:103])]
    loaded: list[bool] = []
    real = ZOInf._load
    monkeypatch.setattr(ZOInf, "_load", lambda self, path: loaded.append(dispatched(m := real(self, path))) or m)
    scores = {}
    for mode in ("memory", "disk"):
        split = {"device_map": "sequential", "max_memory": {"cpu": "200KB"}, "offload_folder": tmp_path / "off"}
        run_model, tok = load_pretrained(checkpoints[-1], **(split if mode == "disk" else {}))
        ctx = MethodContext(
            model=decide(CPU).place(run_model.eval()), tokenizer=tok, work_dir=tmp_path / mode,
            index_root=tmp_path / mode, trainer=CPU, placement=decide(CPU), checkpoints=checkpoints, max_length=48,
        )  # fmt: skip
        built = build_on(config_class("zo_inf").from_mapping({"name": "zo_inf"}), ctx, pool)
        scores[mode] = attribution_scores(built, queries)[0]
    half = len(loaded) // 2  # each run loads every checkpoint for the pool and again for the queries
    assert half >= 2 and loaded == [False] * half + [True] * half  # the split run's checkpoints were split too
    np.testing.assert_allclose(scores["disk"], scores["memory"], rtol=1e-5, atol=1e-8)
