"""Loaders: good rows become Records; every kind of bad row is one DataError naming file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rise_exp.core.errors import ConfigError, DataError
from rise_exp.data.loaders import load_hf, load_json, load_jsonl, load_records
from rise_exp.data.records import Record


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


GOOD = [
    {"id": "a", "instruction": "Say hi.", "input": "", "output": "Hi!", "original_output": "Hello."},
    {"text": "plain text row", "label": 1},
    {"instruction": "Add.", "input": "2, 3", "output": "5", "label": "0", "domain": "finance"},
]


def test_jsonl_good_rows(tmp_path):
    recs = load_jsonl(_write_jsonl(tmp_path / "d.jsonl", GOOD), id_prefix="x")
    assert [r.id for r in recs] == ["a", "x2", "x3"]
    assert recs[0] == Record(id="a", instruction="Say hi.", input=None, output="Hi!")
    assert recs[0].meta == {"original_output": "Hello."}
    assert recs[1].text == "plain text row" and recs[1].label == 1 and not recs[1].is_instruction
    assert recs[2].input == "2, 3" and recs[2].label == 0 and recs[2].domain == "finance"


def test_text_rows_keep_stray_fields_as_meta(tmp_path):
    (r,) = load_jsonl(_write_jsonl(tmp_path / "d.jsonl", [{"text": "body", "output": "ignored", "likes": 9}]))
    assert r.text == "body" and r.output is None and r.meta == {"output": "ignored", "likes": 9}
    assert r.response == "body"


def test_blank_lines_are_skipped_and_numbering_is_physical(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "one"}\n\n{"text": "two"}\n', encoding="utf-8")
    assert [r.id for r in load_jsonl(p)] == ["row-1", "row-3"]


def test_field_mapping(tmp_path):
    p = _write_jsonl(tmp_path / "d.jsonl", [{"tweet": "so good", "uid": 7, "q": 1}, {"tweet": "meh", "uid": 8, "q": 0}])
    recs = load_jsonl(p, fields={"text": "tweet", "id": "uid", "label": "q"})
    assert [(r.id, r.text, r.label) for r in recs] == [("7", "so good", 1), ("8", "meh", 0)]
    assert recs[0].meta == {}
    p2 = _write_jsonl(tmp_path / "i.jsonl", [{"prompt": "Q?", "response": "A."}])
    (r,) = load_jsonl(p2, fields={"instruction": "prompt", "output": "response"})
    assert r.instruction == "Q?" and r.output == "A."
    with pytest.raises(ConfigError, match="unknown record field"):
        load_jsonl(p2, fields={"answer": "response"})


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ('{"text": "ok", ', "malformed JSON"),
        ('["not", "an", "object"]', "expected a JSON object"),
        ('{"input": "no text, no instruction"}', "missing required field"),
        ('{"instruction": "no output"}', "missing its output"),
        ('{"text": "   "}', "empty text"),
        ('{"instruction": "Q", "output": ""}', "empty output"),
        ('{"text": 5}', "must be a string"),
        ('{"text": "x", "label": 3}', "label must be 0 or 1"),
        ('{"id": "r1", "text": "again"}', "duplicate id 'r1'"),
    ],
)
def test_bad_jsonl_line_names_file_and_line(tmp_path, bad_line, message):
    p = _write_jsonl(tmp_path / "bad.jsonl", [{"id": "r1", "text": "fine"}, {"text": "also fine"}, bad_line])
    with pytest.raises(DataError) as err:
        load_jsonl(p)
    assert f"{p}:3" in str(err.value)
    assert message in str(err.value)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no records"):
        load_jsonl(empty)
    with pytest.raises(DataError, match="not found"):
        load_jsonl(tmp_path / "missing.jsonl")
    (tmp_path / "e.json").write_text("[]", encoding="utf-8")
    with pytest.raises(DataError, match="no records"):
        load_json(tmp_path / "e.json")


def test_skip_empty_drops_rows_instead_of_raising(tmp_path, caplog):
    p = _write_jsonl(tmp_path / "d.jsonl", [{"text": "a"}, {"instruction": "Q", "output": " "}, {"text": "b"}])
    with pytest.raises(DataError, match="skip_empty"):
        load_jsonl(p)
    recs = load_jsonl(p, skip_empty=True)
    assert [r.id for r in recs] == ["row-1", "row-3"]
    assert "skipped 1 row" in caplog.text


def test_json_array_with_line_numbers(tmp_path):
    p = tmp_path / "d.json"
    p.write_text('[\n  {"text": "one"},\n  {"instruction": "Q",\n   "output": "A"}\n]\n', encoding="utf-8")
    recs = load_json(p)
    assert [r.id for r in recs] == ["row-2", "row-3"] and recs[1].output == "A"
    p.write_text('[\n  {"text": "one"},\n  {"text": ""}\n]', encoding="utf-8")
    with pytest.raises(DataError, match=rf"{p}:3: empty text"):
        load_json(p)
    p.write_text('[\n  {"text": "one"},\n  {"text": "two",}\n]', encoding="utf-8")
    with pytest.raises(DataError, match=rf"{p}:3: malformed JSON"):
        load_json(p)
    p.write_text('{"text": "not an array"}', encoding="utf-8")
    with pytest.raises(DataError, match=rf"{p}:1: expected a JSON array"):
        load_json(p)
    p.write_text('[\n{"text": "one"}\n{"text": "two"}]', encoding="utf-8")
    with pytest.raises(DataError, match=rf"{p}:3: malformed JSON"):
        load_json(p)


def test_hf_loader_on_local_data(tmp_path):
    import datasets

    rows = [{"question": f"q{i}", "answer": f"a{i}", "uid": f"u{i}"} for i in range(5)]
    disk = tmp_path / "ds"
    datasets.Dataset.from_list(rows).save_to_disk(str(disk))
    recs = load_hf(str(disk), "train", fields={"instruction": "question", "output": "answer", "id": "uid"}, limit=3)
    assert [(r.id, r.instruction, r.output) for r in recs] == [
        ("u0", "q0", "a0"),
        ("u1", "q1", "a1"),
        ("u2", "q2", "a2"),
    ]

    data = _write_jsonl(tmp_path / "hf.jsonl", [{"text": "t1"}, {"text": ""}])
    with pytest.raises(DataError, match=r"json\[train\] row 2: empty text"):
        load_hf("json", "train", data_files=str(data))
    recs = load_records("hf:json", data_files=str(data), skip_empty=True)
    assert [r.text for r in recs] == ["t1"]


def test_load_records_dispatch(tmp_path):
    p = _write_jsonl(tmp_path / "d.jsonl", [{"text": "x"}])
    assert load_records(str(p))[0].text == "x"
    assert load_records({"path": str(p), "id_prefix": "p"})[0].id == "p1"
    j = tmp_path / "d.json"
    j.write_text('[{"text": "y"}]', encoding="utf-8")
    assert load_records(j)[0].text == "y"
    with pytest.raises(ConfigError, match="unsupported"):
        load_records(tmp_path / "d.csv")
    with pytest.raises(ConfigError, match="unsupported option"):
        load_records(str(p), split="train")
