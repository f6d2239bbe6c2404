"""run/serving.py: an index's manifest alone rebuilds the method that made it (RISE with the model it names, BM25
from its own files) and answers as the original did; anything else is one clear error."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from rise_exp.config.settings import Settings, setting
from rise_exp.config.trainer import TrainerConfig
from rise_exp.core.errors import ConfigError, DataError, IndexError_
from rise_exp.data.records import Record
from rise_exp.methods.base import AttributionMethod, MethodContext
from rise_exp.methods.bm25.method import BM25Method
from rise_exp.methods.rise.method import RiseMethod
from rise_exp.run.serving import open_index_method, query_records, read_manifest, rows_meta, top_rows

CPU = TrainerConfig(accelerator="cpu", devices=1)
RISE = {"name": "rise", "kr": 16, "kh": 16, "kg": 8, "seed": 3, "chunk_len": 24, "chunk_overlap": 4}


def test_read_manifest_names_what_is_wrong(tmp_path):
    with pytest.raises(IndexError_, match="no manifest.json; not an index directory"):
        read_manifest(tmp_path / "nowhere")
    (tmp_path / "manifest.json").write_text('{"method": ')
    with pytest.raises(IndexError_, match=r"manifest.json is unreadable"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"method": {"name": "tracin"}}))
    with pytest.raises(IndexError_, match="names no known method"):
        read_manifest(tmp_path)
    for bad in ({"method": None}, [1, 2], {}):
        (tmp_path / "manifest.json").write_text(json.dumps(bad))
        with pytest.raises(IndexError_, match=r"not an index manifest \(no method settings\)"):
            read_manifest(tmp_path)
    good = {"method": {"name": "bm25"}, "num_rows": 3}
    (tmp_path / "manifest.json").write_text(json.dumps(good))
    assert read_manifest(tmp_path) == good


def test_a_manifest_whose_method_is_not_a_mapping_is_one_clear_error(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"method": "rise"}))
    with pytest.raises(IndexError_, match="not an index manifest"):
        read_manifest(tmp_path)


def test_a_vector_index_without_serving_facts_is_refused(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"method": {"name": "rise"}, "serving": {"model_path": None}}))
    with pytest.raises(IndexError_, match="does not say which model serves it"):
        open_index_method(tmp_path, tmp_path / "work")


def test_rise_index_round_trip_from_its_manifest_alone(tiny_neox, tiny_tokenizer, make_pool, sentences, tmp_path):
    model_dir = tmp_path / "model"
    model = tiny_neox()
    model.save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    pool = make_pool(20, 3)
    ctx = MethodContext(
        model=model, tokenizer=tiny_tokenizer, work_dir=tmp_path, trainer=CPU, model_id="tiny", max_length=96,
        model_path=str(model_dir),
    )  # fmt: skip
    built = RiseMethod({**RISE, "index": {"dir": str(tmp_path / "index")}}, ctx)
    built.build(pool)
    assert read_manifest(tmp_path / "index")["serving"]["model_path"] == str(model_dir)

    served = open_index_method(tmp_path / "index", tmp_path / "work", trainer=CPU)
    assert isinstance(served, RiseMethod) and served.ctx.model is not model  # loaded from the manifest's path
    assert served.ctx.max_length == 96 and served.index.num_rows == len(pool)
    queries = [Record(id="q0", text=sentences[0]), Record(id="q1", instruction="the bank", output=sentences[5])]
    np.testing.assert_allclose(served.query_vectors(queries), built.query_vectors(queries), atol=1e-5)
    got, want = top_rows(served, queries, 5), top_rows(built, queries, 5)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_allclose(got[0], want[0], atol=1e-5)
    assert got[1][0, 0] == 0  # a pool row's own text finds it first
    meta = rows_meta(served, got[1][0])  # without the pool: from the index
    assert meta[0]["id"] == "t0" and pool[0].full_text.startswith(meta[0]["preview"][:20])


def test_bm25_index_round_trip_and_row_metadata(make_records, tmp_path):
    pool = make_records(12, 0)
    built = BM25Method({"dir": str(tmp_path / "bm25")}, MethodContext(model=None, tokenizer=None, work_dir=tmp_path))
    built.build(pool)
    served = open_index_method(tmp_path / "bm25", tmp_path / "work")
    assert isinstance(served, BM25Method) and served.num_rows == 12
    queries = [pool[3], Record(id="q", text="bank loan rate")]
    np.testing.assert_array_equal(served.score(queries), built.score(queries))
    scores, rows = top_rows(served, queries, 4)  # no vector index: ranked from the dense scores, stably
    dense = built.score(queries)
    np.testing.assert_array_equal(rows, np.argsort(-dense, axis=1, kind="stable")[:, :4])
    np.testing.assert_array_equal(scores, np.take_along_axis(dense, rows, axis=1))
    assert rows[0, 0] == 3
    assert rows_meta(served, [3, 0]) == [
        {"id": "r3", "preview": pool[3].full_text},
        {"id": "r0", "preview": pool[0].full_text},
    ]
    other = [Record(id=f"o{i}", text=f"row {i}") for i in range(12)]
    assert [m["id"] for m in rows_meta(served, [1], pool=other)] == ["o1"]  # a given pool wins


@dataclass(frozen=True)
class _PlainConfig(Settings):
    GROUP = "method"
    name: str = setting("plain", "method name")


class _Plain(AttributionMethod):
    """A method with dense scores (all zero) and no row metadata."""

    name = "plain"
    needs_model = False

    def build(self, train):
        pass

    def score(self, queries):
        return np.zeros((len(queries), 3), dtype=np.float32)


def test_rows_meta_needs_a_pool_for_a_method_without_metadata(tmp_path):
    method = _Plain(_PlainConfig(), MethodContext(model=None, tokenizer=None, work_dir=tmp_path))
    with pytest.raises(DataError, match="keeps no row metadata; give the pool"):
        rows_meta(method, [0])
    scores, rows = top_rows(method, [Record(id="q", text="x")], 2)
    assert rows.tolist() == [[0, 1]] and scores.tolist() == [[0.0, 0.0]]  # ties keep row order


def test_query_records_from_a_file_and_inline_texts(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"id": "a", "instruction": "hi", "output": "there"}) + "\n")
    records = query_records(str(path), ["first", "second"])
    assert [r.id for r in records] == ["a", "query-0", "query-1"]
    assert records[0].output == "there" and records[2].text == "second"
    assert [r.id for r in query_records(None, ["only"])] == ["query-0"]
    with pytest.raises(ConfigError, match="no queries: set stage.queries_path"):
        query_records(None, [])
