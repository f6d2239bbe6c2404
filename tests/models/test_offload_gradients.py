"""Gradient work on a model split with ``model.device_map`` (layers forced to disk): STRIDE, whose gradients are
those of its own operators through the frozen base, gives the in-memory scores; RapidIn, which needs the
gradients of the offloaded weights themselves, cannot (why admission refuses the split for it, EK-FAC and
TrackStar: tests/run/test_admission_split_gradients.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rise_exp.config.trainer import TrainerConfig
from rise_exp.data.records import Record
from rise_exp.methods.base import MethodContext
from rise_exp.methods.registry import config_class
from rise_exp.models.loading import load_pretrained
from rise_exp.models.placement import decide, dispatched
from rise_exp.run.runner import attribution_scores, build_on

CPU = TrainerConfig(accelerator="cpu", devices=1)
STRIDE = {"name": "stride", "steps": 3, "operators_per_step": 4, "max_subsets": 8, "subsets_per_example": 2, "rank": 2}


@pytest.fixture
def weights(tiny_tokenizer, tmp_path):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    cfg = GPTNeoXConfig(
        vocab_size=len(tiny_tokenizer), hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=128,
    )  # fmt: skip
    GPTNeoXForCausalLM(cfg).save_pretrained(tmp_path / "w")
    tiny_tokenizer.save_pretrained(tmp_path / "w")
    return tmp_path / "w"


def context(path, tmp_path, mode: str) -> MethodContext:
    split = {"device_map": "sequential", "max_memory": {"cpu": "200KB"}, "offload_folder": tmp_path / "off"}
    model, tok = load_pretrained(path, **(split if mode == "disk" else {}))
    if mode == "disk":
        assert dispatched(model) and "disk" in set(model.hf_device_map.values())
    return MethodContext(
        model=decide(CPU).place(model.eval()), tokenizer=tok, work_dir=tmp_path / mode, index_root=tmp_path / mode,
        trainer=CPU, placement=decide(CPU), max_length=48, seed=1,
    )  # fmt: skip


def test_stride_on_layers_offloaded_to_disk_gives_the_in_memory_scores(weights, sentences, tmp_path):
    pool = [Record(id=f"t{i}", text=s) for i, s in enumerate(sentences[:10])]
    queries = [Record(id=f"q{i}", text=s) for i, s in enumerate(sentences[100:103])]
    scores = {}
    for mode in ("memory", "disk"):
        built = build_on(config_class("stride").from_mapping(STRIDE), context(weights, tmp_path, mode), pool)
        scores[mode] = attribution_scores(built, queries)[0]
    np.testing.assert_allclose(scores["disk"], scores["memory"], rtol=1e-5, atol=1e-7)


def test_rapidin_cannot_take_the_gradients_of_offloaded_weights(weights, sentences, tmp_path):
    pool = [Record(id=f"t{i}", text=s) for i, s in enumerate(sentences[:2])]
    ctx = context(weights, tmp_path, "disk")
    offloaded = [n for n, p in ctx.model.named_parameters() if p.device.type == "meta"]
    assert offloaded, "the split kept no weight off the CPU"  # outside their layer's forward they are meta tensors
    with pytest.raises(RuntimeError, match="meta"):
        build_on(config_class("rapidin").from_mapping({"name": "rapidin", "k": 256}), ctx, pool)
