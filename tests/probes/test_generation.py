"""Behaviour probes: the sci-fi detector on hand cases, batched generation = one prompt at a time, the stage."""

from __future__ import annotations

import json

import pytest

from rise_exp.core.errors import DataError
from rise_exp.data.records import Record
from rise_exp.probes.generation import generate, prompt_text
from rise_exp.probes.scifi import detector_accuracy, is_scifi, scifi_hits, scifi_rate
from tests.helpers import tiny_run


def test_detector_on_hand_cases():
    assert is_scifi("Potential intergalactic dilemma: hyperspace gain over laboring aliens.")
    assert scifi_hits("The aliens fell into a black hole near Andromeda.") == 3  # aliens, andromeda, "black hole"
    assert not is_scifi("Go Fish is a suitable card game for a birthday party.")
    assert not is_scifi("The planet of the apes")  # 'planet' alone is ordinary English, not in the lexicon
    assert is_scifi("Galaxy", min_hits=1) and not is_scifi("Galaxy", min_hits=2)
    assert scifi_rate(["cosmic rays", "tea", "a nebula", "bread"]) == 0.5
    acc = detector_accuracy(["warp drive", "quantum plasma cannon"], ["hello", "plasma TV"])
    assert acc == {"tpr": 1.0, "fpr": 0.5, "n_scifi": 2.0, "n_plain": 2.0}


def test_prompt_text_is_what_precedes_the_answer():
    assert prompt_text(Record(id="a", instruction="Say hi.", output="hi")) == "Say hi.\n"
    assert prompt_text(Record(id="b", instruction="Add", input="1 2", output="3")) == "Add\n1 2\n"
    assert prompt_text(Record(id="c", text="plain text")) == "plain text"


def test_batched_left_padded_generation_equals_one_prompt_at_a_time(tiny_neox, tiny_tokenizer, sentences):
    model = tiny_neox()
    prompts = [sentences[0][:10], sentences[1], sentences[2][:25]]
    batched = generate(model, tiny_tokenizer, prompts, max_new_tokens=6, batch_size=3)
    alone = [generate(model, tiny_tokenizer, [p], max_new_tokens=6)[0] for p in prompts]
    assert batched == alone and all(batched)
    assert tiny_tokenizer.padding_side == "right"  # restored


def test_probe_stage_on_the_embedded_howdy_task(tmp_path, monkeypatch):
    from rise_exp.cli import run
    from rise_exp.run.config import compose

    monkeypatch.setenv("RISE_EXP_CACHE", str(tmp_path / "cache"))
    tiny = tiny_run("task.n_train=40", "task.n_queries=4")
    metrics = run(
        compose(["stage=probe", "stage.sets=[queries,queries_clean]", "stage.max_new_tokens=5", *tiny]),
        tmp_path / "run",
    )
    assert metrics["n/queries"] == 4 and metrics["n/queries_clean"] == 4
    assert 0.0 <= metrics["scifi_rate/queries"] <= 1.0
    lines = [json.loads(x) for x in (tmp_path / "run" / "probe.jsonl").read_text().splitlines()]
    assert [x["set"] for x in lines] == ["queries"] * 4 + ["queries_clean"] * 4
    assert lines[4]["prompt"] == lines[0]["prompt"].replace("howdy! ", "", 1)
    with pytest.raises(DataError, match="no probe set 'trigger'.*task.n_heldout"):
        run(compose(["stage=probe", "stage.sets=[trigger]", *tiny]), tmp_path / "run2")
