"""Finetune stage: one epoch lowers the loss; every epoch leaves a reloadable HF checkpoint; cache reuse."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rise_exp.config.finetune import FinetuneConfig
from rise_exp.config.model import ModelConfig
from rise_exp.config.trainer import TrainerConfig
from rise_exp.data.encoding import encode_records
from rise_exp.data.records import Record
from rise_exp.models import build_tiny_model
from rise_exp.training.evaluation import mean_token_loss
from rise_exp.training.finetune import run_finetune

TRAINER = TrainerConfig()


def _setup(tiny_tokenizer, sentences):
    spec = ModelConfig(
        name="t",
        source="embedded",
        arch="gpt_neox",
        dtype="float32",
        layers=1,
        hidden_size=32,
        heads=2,
        vocab_size=300,
        max_position=128,
        intermediate_size=64,
    )
    model = build_tiny_model(spec, vocab_size=len(tiny_tokenizer))
    train = [Record(id=str(i), instruction=s[:20], output=s) for i, s in enumerate(sentences[:64])]
    return model, train


def test_one_epoch_lowers_loss_and_writes_reloadable_checkpoints(tmp_path, tiny_tokenizer, sentences):
    model, train = _setup(tiny_tokenizer, sentences)
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


def test_finished_finetune_is_reused(tmp_path, tiny_tokenizer, sentences):
    model, train = _setup(tiny_tokenizer, sentences)
    kw = dict(cfg=FinetuneConfig(epochs=1, max_tokens_per_batch=512), trainer=TRAINER, out_dir=tmp_path / "ft")
    first = run_finetune(model, tiny_tokenizer, train, **kw)
    again = run_finetune(model, tiny_tokenizer, train, **kw)
    assert again.cached and again.final_dir == first.final_dir and again.metrics == first.metrics
