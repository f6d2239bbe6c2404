"""BM25: lexical scores (a row's own text first, unknown words score nothing), and its persisted index: reused,
refused when it holds other settings, rebuilt on request, keyed by settings and texts."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from rise_exp.core.errors import ConfigError, IndexError_
from rise_exp.data.records import Record
from rise_exp.methods.base import MethodContext
from rise_exp.methods.bm25.method import BM25Method, texts_hash


def _bm25(tmp_path, **cfg) -> BM25Method:
    ctx = MethodContext(model=None, tokenizer=None, work_dir=tmp_path, index_root=tmp_path / "indexes")
    return BM25Method(cfg, ctx)


def test_scores_rank_a_rows_own_text_first_and_unknown_words_score_zero(make_records, tmp_path):
    pool = make_records(15, 0)
    method = _bm25(tmp_path)
    method.build(pool)
    scores = method.score([pool[4], pool[9], Record(id="q", text="zebra xylophone")])
    assert scores.shape == (3, 15) and scores.dtype == np.float32
    assert scores[0].argmax() == 4 and scores[1].argmax() == 9
    assert not scores[2].any()
    assert method.num_rows == 15 and method.index_bytes > 0
    assert method.rows_meta([9, 4]) == [{"id": r.id, "preview": r.full_text} for r in (pool[9], pool[4])]


def test_a_finished_index_is_reused_and_keyed_by_settings_and_texts(make_records, tmp_path, caplog):
    pool = make_records(10, 0)
    first = _bm25(tmp_path)
    first.build(pool)
    manifest = json.loads((first.index_path / "manifest.json").read_text())
    assert manifest["data_hash"] == texts_hash([r.full_text for r in pool]) and manifest["num_rows"] == 10
    stamp = (first.index_path / "manifest.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="rise_exp.methods.bm25.method"):
        again = _bm25(tmp_path)
        again.build(pool)
    assert again.index_path == first.index_path and "reusing the index" in caplog.text
    assert (first.index_path / "manifest.json").stat().st_mtime_ns == stamp
    other_settings, other_texts = _bm25(tmp_path, k1=1.2), _bm25(tmp_path)
    other_settings.build(pool)
    other_texts.build(pool[:9])
    assert len({first.index_path, other_settings.index_path, other_texts.index_path}) == 3


def test_an_index_of_other_settings_in_the_same_directory_is_refused_or_rebuilt(make_records, tmp_path):
    pool = make_records(8, 0)
    _bm25(tmp_path, dir=str(tmp_path / "ix")).build(pool)
    with pytest.raises(IndexError_, match="other settings or texts; set method.reuse=false"):
        _bm25(tmp_path, dir=str(tmp_path / "ix"), b=0.5).build(pool)
    rebuilt = _bm25(tmp_path, dir=str(tmp_path / "ix"), b=0.5, reuse=False)
    rebuilt.build(pool)
    assert json.loads((tmp_path / "ix" / "manifest.json").read_text())["method"]["b"] == 0.5
    assert not (tmp_path / "ix.building").exists()


def test_attaching_something_that_is_not_an_index_and_bad_settings_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexError_, match="not a finished bm25 index"):
        _bm25(tmp_path).attach(tmp_path / "empty")
    with pytest.raises(ConfigError, match="method.b must be <= 1"):
        _bm25(tmp_path, b=1.5)
    with pytest.raises(ConfigError, match="unknown method.variant 'okapi'"):
        _bm25(tmp_path, variant="okapi")
