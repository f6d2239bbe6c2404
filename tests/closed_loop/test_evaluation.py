"""closed_loop/evaluation.py: lm-eval skipped with one clear reason, and called through the harness's API."""

from __future__ import annotations

import sys
import types

import torch

from rise_exp.closed_loop.evaluation import lm_eval_scores, lm_eval_status
from rise_exp.config.stages import LmEvalConfig


def test_lm_eval_status_when_extra_absent_or_disabled(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    assert lm_eval_status(LmEvalConfig(tasks=("arc_challenge_chat",))).startswith("skipped (lm_eval is not importable")
    assert lm_eval_status(LmEvalConfig(enabled=False)) == "skipped (stage.eval.lm_eval.enabled is false)"


def test_lm_eval_scores_calls_the_harness_api(monkeypatch):
    calls: dict = {}

    class FakeHFLM:
        def __init__(self, pretrained, tokenizer, **kw):
            calls["hflm"] = (pretrained, tokenizer, kw)

    def simple_evaluate(model, tasks, **kw):
        calls["eval"] = (model, tasks, kw)
        return {
            "results": {
                "arc_challenge_chat": {
                    "alias": "arc",
                    "exact_match,strict-match": 0.25,
                    "exact_match_stderr,strict-match": 0.1,
                    "acc,none": 0.5,
                }
            }
        }

    mod, models, hf = (types.ModuleType(n) for n in ("lm_eval", "lm_eval.models", "lm_eval.models.huggingface"))
    mod.simple_evaluate, hf.HFLM = simple_evaluate, FakeHFLM
    for name, m in (("lm_eval", mod), ("lm_eval.models", models), ("lm_eval.models.huggingface", hf)):
        monkeypatch.setitem(sys.modules, name, m)
    model, tok = torch.nn.Linear(1, 1), types.SimpleNamespace(chat_template=None)
    cfg = LmEvalConfig(tasks=("arc_challenge_chat",), limit=5, batch_size=2, apply_chat_template="auto")
    assert lm_eval_status(cfg) is None
    scores = lm_eval_scores(model, tok, cfg)
    assert scores == {
        "lm_eval/arc_challenge_chat/exact_match[strict-match]": 0.25,
        "lm_eval/arc_challenge_chat/acc": 0.5,
    }
    assert calls["hflm"][0] is model and calls["hflm"][1] is tok and calls["hflm"][2]["batch_size"] == 2
    assert calls["eval"][1] == ["arc_challenge_chat"] and calls["eval"][2]["limit"] == 5
    assert calls["eval"][2]["apply_chat_template"] is False
