"""A model that only computes is read straight into its device's memory (``Placement.load_kwargs``): on a GPU
placement the finetuned model each rank reloads never has a host copy. The CPU shows the logic: the kwargs,
the same weights through the one-device path, and the pipeline asking for it where (and only where) the
model does not train."""

from __future__ import annotations

import torch

from rise_exp.models.loading import load_pretrained
from rise_exp.models.placement import Placement, dispatched


def test_a_gpu_placement_loads_onto_its_device_and_the_cpu_loads_as_before():
    assert Placement(torch.device("cuda", 1)).load_kwargs() == {"device": "cuda:1"}
    assert Placement(torch.device("cpu"), torch.bfloat16).load_kwargs() == {}


def test_a_one_device_map_is_not_a_split():
    model = torch.nn.Linear(2, 2)
    model.hf_device_map = {"": "cuda:0"}
    assert not dispatched(model)
    model.hf_device_map = {"gpt_neox.layers.0": 0, "gpt_neox.layers.1": "cpu"}
    assert dispatched(model)


def test_loading_onto_a_device_gives_the_same_weights(tiny_neox, tiny_tokenizer, tmp_path):
    tiny_neox().save_pretrained(tmp_path / "w")
    tiny_tokenizer.save_pretrained(tmp_path / "w")
    plain, _ = load_pretrained(tmp_path / "w")
    direct, _ = load_pretrained(tmp_path / "w", device="cpu")
    assert not dispatched(direct)
    for (name, a), (_, b) in zip(plain.state_dict().items(), direct.state_dict().items()):
        assert a.device == b.device and torch.equal(a, b), name


def test_the_pipeline_loads_onto_the_placed_device_only_what_does_not_train(monkeypatch, tmp_path):
    """A GPU rank's placement (stood in for by one whose ``load_kwargs`` names the CPU): the finetuned model
    is reloaded onto it; the starting model, which Lightning's strategy trains (FSDP shards it), is not."""
    from rise_exp.run import pipeline
    from rise_exp.run.config import RunConfig, compose
    from tests.helpers import tiny_run

    monkeypatch.setattr(Placement, "load_kwargs", lambda self: {"device": "cpu"})
    calls: list[dict] = []
    real = pipeline.load_pretrained

    def spy(path, **kwargs):
        calls.append(kwargs)
        return real(path, **kwargs)

    monkeypatch.setattr(pipeline, "load_pretrained", spy)
    loaded_base: list[dict] = []
    base = pipeline.load_base_model
    monkeypatch.setattr(pipeline, "load_base_model", lambda *a, **k: loaded_base.append(k) or base(*a, **k))
    run = RunConfig.from_cfg(
        compose(tiny_run("task.n_train=16", "task.n_queries=2", "finetune.max_steps=1", f"paths.cache_dir={tmp_path}"))
    )
    prep = pipeline.prepare(run, tmp_path / "run")
    assert loaded_base == [{"split": False}]  # trained: loaded whole, for the strategy to place or shard
    assert calls and calls[-1].get("device") == "cpu"  # the finetuned model: straight onto the placed device
    assert next(prep.ctx.model.parameters()).device.type == "cpu"
