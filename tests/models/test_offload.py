"""Big-model inference: a model whose layers are forced to disk (``model.device_map`` with a small
``model.max_memory``) gives the same RISE signatures as the model held in memory."""

from __future__ import annotations

import numpy as np
import torch

from rise_exp.config.trainer import TrainerConfig
from rise_exp.data.records import Record
from rise_exp.methods.base import MethodContext
from rise_exp.methods.registry import config_class
from rise_exp.models.loading import load_pretrained
from rise_exp.models.placement import decide, dispatched
from rise_exp.run.runner import attribution_scores, build_on

CPU = TrainerConfig(accelerator="cpu", devices=1)
RISE = {"name": "rise", "kr": 32, "kh": 16, "kg": 16, "chunk_len": 24, "chunk_overlap": 4}


def test_layers_offloaded_to_disk_give_the_in_memory_signatures(tiny_tokenizer, sentences, tmp_path):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    cfg = GPTNeoXConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
    )
    GPTNeoXForCausalLM(cfg).save_pretrained(tmp_path / "w")
    tiny_tokenizer.save_pretrained(tmp_path / "w")
    pool = [Record(id=f"t{i}", text=s) for i, s in enumerate(sentences[:30])]
    queries = [Record(id=f"q{i}", text=s) for i, s in enumerate(sentences[100:104])]
    out = {}
    for mode, split in (
        ("memory", {}),
        ("disk", {"device_map": "sequential", "max_memory": {"cpu": "200KB"}, "offload_folder": tmp_path / "off"}),
    ):
        model, tok = load_pretrained(tmp_path / "w", **split)
        ctx = MethodContext(
            model=decide(CPU).place(model.eval()),
            tokenizer=tok,
            work_dir=tmp_path / mode,
            index_root=tmp_path / mode,
            trainer=CPU,
            placement=decide(CPU),
            max_length=48,
        )
        if mode == "disk":
            assert dispatched(model) and "disk" in set(model.hf_device_map.values())
            assert model.get_output_embeddings().weight.device.type == "cpu"  # RISE's W stays resident
        built = build_on(config_class("rise").from_mapping(RISE), ctx, pool)
        out[mode] = (built.method.index.vectors(), attribution_scores(built, queries)[0])
    (vm, sm), (vd, sd) = out["memory"], out["disk"]
    cos = (vm * vd).sum(1) / (np.linalg.norm(vm, axis=1) * np.linalg.norm(vd, axis=1))
    assert cos.min() >= 0.9999, cos.min()
    for q in range(len(queries)):
        assert set(np.argsort(-sm[q])[:10]) == set(np.argsort(-sd[q])[:10])
