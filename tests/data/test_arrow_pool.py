"""Streamed pools (task.stream=true): memory-mapped Arrow rows equal the loaded records, hashes match, bad rows
are named, and an index built from a streamed pool is byte-identical to one built from the list."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from rise_exp.core.errors import ConfigError, DataError
from rise_exp.data.arrow_pool import ArrowPool, records_json_hash
from rise_exp.data.encoding import EncodedPool, encode_records
from rise_exp.data.loaders import load_jsonl
from rise_exp.data.task_builders import build_task
from tests.helpers import cli_env, run_cli


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))


def _rows(n: int = 40) -> list[dict]:
    rows = []
    for i in range(n):
        if i % 3 == 0:
            rows.append({"id": f"p{i}", "text": f"plain text number {i} about cats and rates", "label": i % 2})
        else:
            row = {"instruction": f"say {i}", "output": f"answer {i} with words", "label": i % 2, "src": "x"}
            if i % 4 == 1:
                row["input"] = f"context {i}"
            rows.append(row)
    return rows


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_streamed_rows_equal_the_loaded_records_and_hash_alike(tmp_path):
    path = _jsonl(tmp_path / "pool.jsonl", _rows())
    pool, records = ArrowPool.load(path), load_jsonl(path)
    assert len(pool) == len(records) == 40
    assert list(pool) == records and pool[5] == records[5] and pool[-1] == records[-1]
    assert [r.meta for r in pool] == [r.meta for r in records]
    assert pool[2:5] == records[2:5]
    assert pool.json_hash() == records_json_hash(records)
    assert pool.labels().tolist() == [r.label for r in records]
    shuffled = pool.subset([4, 6, 5, 7])  # spans a contiguous range out of order: rows keep the given order
    assert [r.id for r in shuffled] == [records[i].id for i in (4, 6, 5, 7)]
    sub = pool.subset([7, 1, 30])
    assert [r.id for r in sub] == [records[i].id for i in (7, 1, 30)] and sub.labels().tolist() == [1, 1, 0]
    again = pickle.loads(pickle.dumps(pool))  # spawned workers get the Arrow file's reference, not rows
    assert again[11] == records[11] and len(pickle.dumps(pool)) < 20_000


def test_parquet_pool_equals_jsonl(tmp_path):
    import pandas as pd

    rows = [{"id": f"r{i}", "text": f"row {i} text", "label": i % 2} for i in range(12)]
    pd.DataFrame(rows).to_parquet(tmp_path / "pool.parquet")
    assert list(ArrowPool.load(tmp_path / "pool.parquet")) == load_jsonl(_jsonl(tmp_path / "p.jsonl", rows))


def test_bad_rows_are_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n\n{"text": "also fine"}\n{"text": oops}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:4: malformed JSON"):
        ArrowPool.load(bad)
    empty = _jsonl(tmp_path / "empty.jsonl", [{"text": "a"}, {"text": "  "}, {"text": "c"}])
    with pytest.raises(DataError, match=r"empty.jsonl row 2: empty text.*skip_empty"):
        ArrowPool.load(empty)
    kept = ArrowPool.load(empty, skip_empty=True)
    assert [r.text for r in kept] == ["a", "c"] and [r.id for r in kept] == ["row-1", "row-3"]
    dup = _jsonl(tmp_path / "dup.jsonl", [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, {"id": "a", "text": "z"}])
    with pytest.raises(DataError, match=r"dup.jsonl: duplicate id 'a'"):
        ArrowPool.load(dup)
    partial = _jsonl(tmp_path / "part.jsonl", [{"text": "x", "label": 1}, {"text": "y"}])
    with pytest.raises(DataError, match=r"1 pool rows have no label \(first: 'row-2'\)"):
        ArrowPool.load(partial).labels()
    with pytest.raises(DataError, match="missing.jsonl: file not found"):
        ArrowPool.load(tmp_path / "missing.jsonl")
    (tmp_path / "pool.csv").write_text("text\nx\n")
    with pytest.raises(ConfigError, match=r"\.jsonl, \.json or \.parquet"):
        ArrowPool.load(tmp_path / "pool.csv")


def test_custom_task_streamed_equals_loaded(tmp_path):
    path = _jsonl(tmp_path / "pool.jsonl", _rows())
    common = {"name": "custom", "train_path": path, "query_texts": ["cats"], "max_train": 25, "seed": 4}
    loaded, streamed = build_task(common), build_task({**common, "stream": True})
    assert isinstance(streamed.train, ArrowPool) and streamed.candidates is streamed.train
    assert list(streamed.train) == loaded.train
    assert streamed.labels.tolist() == loaded.labels.tolist()
    assert streamed.pool_hash() == loaded.pool_hash() and streamed.data_hash() == loaded.data_hash()


def test_large_pool_files_stream_unless_told_otherwise(tmp_path, monkeypatch):
    from rise_exp.data import arrow_pool

    path = _jsonl(tmp_path / "pool.jsonl", _rows())
    common = {"name": "custom", "train_path": path, "query_texts": ["cats"]}
    assert not arrow_pool.use_stream(path, None) and arrow_pool.use_stream(path, True)
    assert isinstance(build_task(common).train, list)  # a small file: records
    assert isinstance(arrow_pool.open_pool(path), list)
    monkeypatch.setattr(arrow_pool, "STREAM_AUTO_BYTES", 1)  # every file is "large" now
    assert isinstance(build_task(common).train, ArrowPool)
    assert isinstance(arrow_pool.open_pool(path, stream=None), ArrowPool)
    assert isinstance(build_task({**common, "stream": False}).train, list)  # an explicit setting wins
    assert isinstance(arrow_pool.open_pool(path, stream=False), list)
    assert not arrow_pool.use_stream("hf:org/pool", None) and arrow_pool.use_stream("hf:org/pool", True)  # when asked
    from rise_exp.run.serving import query_records  # query files always load, however large

    assert isinstance(query_records(path, ["one more"]), list) and len(query_records(path, ())) == len(_rows())


def test_encoded_pool_equals_eager_encoding(tiny_tokenizer, tmp_path):
    pool = ArrowPool.load(_jsonl(tmp_path / "pool.jsonl", _rows(12)))
    lazy, eager = EncodedPool(pool, tiny_tokenizer, mask_prompt=True), encode_records(list(pool), tiny_tokenizer)
    for a, b in zip(lazy, eager, strict=True):
        assert (
            a.row == b.row and np.array_equal(a.input_ids, b.input_ids) and np.array_equal(a.target_mask, b.target_mask)
        )
    assert lazy[7].row == 7 and np.array_equal(lazy[7].input_ids, eager[7].input_ids)
    assert [r.row for r in lazy[3:9:2]] == [3, 5, 7] and np.array_equal(lazy[-1].input_ids, eager[-1].input_ids)


def test_rise_index_of_a_streamed_pool_is_byte_identical(tiny_neox, tiny_tokenizer, sentences, tmp_path):
    from rise_exp.config.trainer import TrainerConfig
    from rise_exp.methods.base import MethodContext
    from rise_exp.methods.rise.method import RiseMethod

    model = tiny_neox()
    rows = [{"id": f"t{i}", "instruction": s[:15], "output": s} for i, s in enumerate(sentences[:20])]
    rows += [{"id": f"x{i}", "text": " ".join(sentences[i : i + 3])} for i in range(5)]  # chunked rows
    path = _jsonl(tmp_path / "pool.jsonl", rows)
    cfg = {"name": "rise", "kr": 16, "kh": 16, "kg": 8, "seed": 1, "chunk_len": 12, "chunk_overlap": 4}
    cfg["index"] = {"block_rows": 6, "batch_tokens": 96, "store_tokens": True}
    cpu = TrainerConfig(accelerator="cpu", devices=1, precision="32-true")
    built = {}
    for name, pool in (("list", load_jsonl(path)), ("arrow", ArrowPool.load(path))):
        ctx = MethodContext(model=model, tokenizer=tiny_tokenizer, work_dir=tmp_path / name, trainer=cpu, model_id="t")
        m = RiseMethod(cfg, ctx)
        m.build(pool)
        built[name] = m.index
    a, b = built["list"], built["arrow"]
    assert a.manifest["data_hash"] == b.manifest["data_hash"]
    assert np.array_equal(a.vectors(dtype="float32"), b.vectors(dtype="float32"))
    assert a.row_meta(21) == b.row_meta(21) == {"id": "x1", "preview": rows[21]["text"][:200]}
    assert all(np.array_equal(x, y) for x, y in zip(a.row_tokens(3), b.row_tokens(3), strict=True))


def test_cli_streams_a_pool_and_shares_its_index_with_a_loaded_run(tmp_path):
    path = _jsonl(tmp_path / "notes.jsonl", _rows(30))
    env = cli_env(tmp_path / "cache", HF_DATASETS_CACHE=str(tmp_path / "hf"))

    def run(stream: bool) -> str:
        args = ["task=custom", f"task.train_path={path}", "task.query_texts=[cats and rates]", f"task.stream={stream}"]
        args += ["method=rise", "model=tiny-pythia", "logger=none", f"hydra.run.dir={tmp_path}/run-{stream}"]
        res = run_cli(*args, cwd=tmp_path, env=env, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        return res.stdout + res.stderr

    first = run(True)
    assert "rise: indexing 30 of 30 rows" in first
    second = run(False)  # the same tokens: the loaded run finds the streamed run's index
    assert "reusing the index" in second
    m1, m2 = (json.loads((tmp_path / f"run-{s}" / "metrics.json").read_text()) for s in (True, False))
    assert m1["num_train"] == m2["num_train"] == 30 and m1["auprc@10"] == m2["auprc@10"]
