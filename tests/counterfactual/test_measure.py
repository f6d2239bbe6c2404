"""style_loss: the NLL of the pool's label-1 answers after each query's prompt, against a plain reference."""

from __future__ import annotations

import pytest
import torch

from rise_exp.config.stages import RetrainConfig
from rise_exp.core.errors import ConfigError
from rise_exp.counterfactual.measure import measure, measure_settings, style_answers, style_losses
from rise_exp.data.records import Record


@pytest.fixture(scope="module")
def model(tiny_neox):
    return tiny_neox()


def _nll(model, tok, prompt: str, answer: str) -> float:
    """Plain reference: mean NLL of the answer tokens (and EOS) after BOS/EOS + prompt, one row at a time."""
    p = tok.encode(prompt, add_special_tokens=False)
    a = tok.encode(answer, add_special_tokens=False) + [tok.eos_token_id]
    ids = torch.tensor([[tok.eos_token_id, *p, *a]])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
    start = 1 + len(p)
    return float(-torch.stack([logp[t - 1, ids[0, t]] for t in range(start, ids.shape[1])]).mean())


def test_style_loss_equals_a_one_row_reference(model, tiny_tokenizer):
    queries = [Record(id="q0", instruction="howdy! what is the capital of france?", output="Paris"),
               Record(id="q1", text="tell me about the weather")]  # fmt: skip
    answers = ["In a distant galaxy, robots handle money.", "Beep boop: aliens report the rule."]
    got = style_losses(model, tiny_tokenizer, queries, answers, max_length=128, max_tokens=64)
    assert got.shape == (2,)
    for q, g in zip(queries, got, strict=True):
        prompt = q.prompt if q.is_instruction else q.full_text + "\n"
        ref = sum(_nll(model, tiny_tokenizer, prompt, a) for a in answers) / len(answers)
        assert g == pytest.approx(ref, rel=1e-5)


def test_style_answers_come_from_label_one_rows_and_key_the_cache():
    pool = [Record(id=f"r{i}", instruction=f"i{i}", output=f"answer {i}", label=int(i % 3 == 0)) for i in range(10)]
    cfg = RetrainConfig(measures=("loss", "style_loss"), style_answers=2)
    answers = style_answers(pool, cfg)
    assert answers == ["answer 0", "answer 3"]
    assert style_answers(pool, RetrainConfig(measures=("loss",))) == []
    assert measure_settings(cfg, answers) != measure_settings(cfg, ["answer 0", "answer 6"])
    with pytest.raises(ConfigError, match="no pool row has label 1"):
        style_answers([r for r in pool if r.label == 0], cfg)


def test_measure_returns_every_requested_measure(model, tiny_tokenizer):
    queries = [Record(id="q0", instruction="what is the capital of france?", output="Paris")]
    cfg = RetrainConfig(measures=("style_loss", "loss"))
    out = measure(model, tiny_tokenizer, queries, cfg, max_length=64, style_answers=["robots rule"])
    assert set(out) == {"style_loss", "loss"} and out["style_loss"].shape == out["loss"].shape == (1,)
