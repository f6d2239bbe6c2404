"""Finetune stage: one epoch lowers the loss; every epoch leaves a reloadable HF checkpoint; cache reuse."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from rise_exp.config.finetune import FinetuneConfig
from rise_exp.config.model import ModelConfig
from rise_exp.config.trainer import TrainerConfig
from rise_exp.data.encoding import encode_records
from rise_exp.data.records import Record
from rise_exp.training.cached_finetune import run_finetune
from rise_exp.training.model_losses import mean_token_loss

TRAINER = TrainerConfig()


def _setup(tiny_neox, sentences):
    model = tiny_neox().train()
    train = [Record(id=str(i), instruction=s[:20], output=s) for i, s in enumerate(sentences[:64])]
    return model, train


def test_one_epoch_lowers_loss_and_writes_reloadable_checkpoints(tmp_path, tiny_neox, tiny_tokenizer, sentences):
    model, train = _setup(tiny_neox, sentences)
    rows = encode_records(train, tiny_tokenizer)
    before = mean_token_loss(model, rows, tiny_tokenizer.pad_token_id)
    res = run_finetune(
        model,
        tiny_tokenizer,
        train,
        cfg=FinetuneConfig(epochs=1, lr=3e-3, max_tokens_per_batch=512, max_length=512, mask_prompt=True),
        trainer=TRAINER,
        out_dir=tmp_path / "ft",
    )
    assert not res.cached
    assert res.metrics["finetune/loss_after"] < before - 0.1
    assert abs(res.metrics["finetune/loss_before"] - before) < 1e-5
    assert [p.name for p in res.checkpoints] == ["epoch-000", "epoch-001"]
    reloaded = AutoModelForCausalLM.from_pretrained(res.final_dir)
    tok = AutoTokenizer.from_pretrained(res.final_dir)
    assert tok.encode("the bank") == tiny_tokenizer.encode("the bank")
    ids = torch.from_numpy(rows[0].input_ids)[None]
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, model(ids).logits, atol=1e-5)
        start = AutoModelForCausalLM.from_pretrained(res.checkpoints[0])
        assert not torch.allclose(start(ids).logits, model(ids).logits, atol=1e-3)
    assert abs(mean_token_loss(reloaded, rows, tiny_tokenizer.pad_token_id) - res.metrics["finetune/loss_after"]) < 1e-5


def test_finished_finetune_is_reused(tmp_path, tiny_neox, tiny_tokenizer, sentences):
    model, train = _setup(tiny_neox, sentences)
    kw = dict(cfg=FinetuneConfig(epochs=1, max_tokens_per_batch=512), trainer=TRAINER, out_dir=tmp_path / "ft")
    first = run_finetune(model, tiny_tokenizer, train, **kw)
    again = run_finetune(model, tiny_tokenizer, train, **kw)
    assert again.cached and again.final_dir == first.final_dir and again.metrics == first.metrics


def test_steps_accumulation_and_a_loss_sample(tmp_path, tiny_neox, tiny_tokenizer, sentences):
    model, train = _setup(tiny_neox, sentences)
    cfg = FinetuneConfig(
        epochs=5,
        max_steps=3,
        grad_accum=2,
        eval_rows=10,
        max_tokens_per_batch=128,
        max_length=512,
        mask_prompt=True,
        lr=3e-3,
    )
    res = run_finetune(model, tiny_tokenizer, train, cfg=cfg, trainer=TRAINER, out_dir=tmp_path / "ft")
    # 3 optimiser steps of 2 micro-batches each: fewer than one epoch of the 64 rows
    assert res.metrics["finetune/steps"] == 3 and res.metrics["finetune/eval_rows"] == 10
    assert [p.name for p in res.checkpoints] == ["epoch-000", "epoch-001"]  # the stopped epoch is saved
    rows = encode_records(train, tiny_tokenizer)
    probe = [rows[i] for i in sorted(np.random.default_rng(0).choice(64, 10, replace=False))]
    reloaded = AutoModelForCausalLM.from_pretrained(res.final_dir)
    assert (
        abs(mean_token_loss(reloaded, probe, tiny_tokenizer.pad_token_id) - res.metrics["finetune/loss_after"]) < 1e-5
    )


def test_lora_finetune_of_a_local_directory_and_model_adapter(tmp_path, tiny_neox, tiny_tokenizer, sentences):
    pytest.importorskip("peft")
    from rise_exp.models.loading import load_pretrained
    from rise_exp.models.weights import load_base_model

    model, train = _setup(tiny_neox, sentences)
    base_dir = tmp_path / "base"
    model.save_pretrained(base_dir)
    tiny_tokenizer.save_pretrained(base_dir)
    cfg = FinetuneConfig(
        epochs=1, lr=1e-2, lora=True, lora_r=4, max_tokens_per_batch=256, max_length=512, mask_prompt=True
    )
    base, tok = load_pretrained(base_dir)
    res = run_finetune(base, tok, train, cfg=cfg, trainer=TRAINER, out_dir=tmp_path / "ft")
    assert (res.final_dir / "adapter_config.json").exists()
    assert res.metrics["finetune/loss_after"] < res.metrics["finetune/loss_before"]
    # the same weights through the model settings: a local directory plus model.adapter (merged)
    spec = ModelConfig(name="mine", source="local", hub_id=str(base_dir), adapter=str(res.final_dir))
    merged, _, source = load_base_model(spec, [], tmp_path / "cache")
    kept, _ = load_pretrained(res.final_dir)  # the adapter kept as LoRA layers
    ids = torch.tensor([tok.encode("the bank rate")])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, kept(ids).logits, atol=1e-5)
        assert not torch.allclose(merged(ids).logits, load_pretrained(base_dir)[0](ids).logits, atol=1e-4)
    # the merged weights live in one cached directory, so a LoRA finetune on top reloads with both adapters
    assert source != base_dir and (source / "SEALED.json").exists()
    assert load_base_model(spec, [], tmp_path / "cache")[2] == source  # merged once, then reused
    second = run_finetune(merged, tok, train, cfg=cfg, trainer=TRAINER, out_dir=tmp_path / "ft2")
    reloaded, _ = load_pretrained(second.final_dir)
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, merged(ids).logits, atol=1e-5)  # merged: now trained further
        assert not torch.allclose(reloaded(ids).logits, kept(ids).logits, atol=1e-4)


@pytest.mark.parametrize("lora", [False, True])
def test_a_killed_finetune_resumes_after_its_last_epoch_to_the_same_weights(
    tmp_path, tiny_neox, tiny_tokenizer, sentences, monkeypatch, lora
):
    """Killed at the start of epoch 2 of 3, a rerun continues from the resume point and ends with the weights,
    checkpoints and shuffling of an uninterrupted run (LoRA dropout on: the random states are restored)."""
    if lora:
        pytest.importorskip("peft")
    from rise_exp.training import cached_finetune as ft

    cfg = FinetuneConfig(
        epochs=3, lr=3e-3, max_tokens_per_batch=256, max_length=512, lora=lora, lora_r=4, lora_dropout=0.3
    )
    model, train = _setup(tiny_neox, sentences)
    start = {k: v.clone() for k, v in model.state_dict().items()}

    def fresh():  # the starting weights in a new module, as a new process would load them (LoRA wraps in place)
        m = tiny_neox().train()
        m.load_state_dict(start)
        return m

    whole = run_finetune(fresh(), tiny_tokenizer, train, cfg=cfg, trainer=TRAINER, out_dir=tmp_path / "whole")
    assert not (tmp_path / "whole" / ft.RESUME_CKPT).exists()  # removed once finished

    class Killed(RuntimeError):
        pass

    def kill_at_epoch_2(self, trainer, pl_module):
        if trainer.current_epoch == 2:
            (self.out_dir / "epoch-003").mkdir()  # a checkpoint half-written when the process died
            raise Killed

    monkeypatch.setattr(ft.SaveHFEachEpoch, "on_train_epoch_start", kill_at_epoch_2, raising=False)
    with pytest.raises(Killed):
        run_finetune(fresh(), tiny_tokenizer, train, cfg=cfg, trainer=TRAINER, out_dir=tmp_path / "killed")
    assert ft.resume_point(tmp_path / "killed", tidy=False)[1] == 2
    monkeypatch.undo()

    resumed = run_finetune(fresh(), tiny_tokenizer, train, cfg=cfg, trainer=TRAINER, out_dir=tmp_path / "killed")
    assert resumed.metrics["finetune/resumed_after_epoch"] == 2 and not resumed.cached
    assert [p.name for p in resumed.checkpoints] == [p.name for p in whole.checkpoints]
    assert resumed.metrics["finetune/steps"] == whole.metrics["finetune/steps"]
    for name in ("epoch-001", "epoch-003"):
        weights = sorted((tmp_path / "whole" / name).glob("*.safetensors"))
        assert weights, f"no weights saved in {name}"
        for f in weights:
            x, y = load_file(f), load_file(tmp_path / "killed" / name / f.name)
            for k in x:
                torch.testing.assert_close(y[k], x[k], rtol=0, atol=1e-6, msg=f"{name}/{f.name}:{k}")
    assert resumed.metrics["finetune/loss_after"] == pytest.approx(whole.metrics["finetune/loss_after"], abs=1e-6)
