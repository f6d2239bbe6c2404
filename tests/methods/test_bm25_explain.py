"""BM25 word shares: each side sums to the method's own score; a row word's share is its term's weight times
the term's count in the query, split over the term's occurrences; a truncated preview keeps the sum."""

from __future__ import annotations

import pytest

from rise_exp.data.records import Record
from rise_exp.methods.base import MethodContext
from rise_exp.methods.bm25.explain import ELSEWHERE, words
from rise_exp.methods.bm25.method import BM25Method

POOL = [
    Record(id="a", instruction="What is the loan rate?", output="The bank loan rate is low; the loan is cheap."),
    Record(id="b", text="Stars and ships: the robot flew the ship past a star."),
    Record(id="c", text="The doctor gave the patient a dose for the fever."),
    Record(id="d", text="A river runs by the mountain city " + "and the river is long " * 30),
]
QUERIES = [
    Record(id="q0", text="Which bank has the best loan rate, and what loan?"),
    Record(id="q1", text="river ship"),
]


@pytest.fixture
def bm25(tmp_path):
    m = BM25Method({"name": "bm25"}, MethodContext(model=None, tokenizer=None, work_dir=tmp_path))
    m.build(POOL)
    return m


def test_word_shares_sum_to_the_bm25_score(bm25):
    scores = bm25.score(QUERIES)
    rows = [[0, 1, 2], [3, 1]]
    for qi, line in enumerate(bm25.explain(QUERIES, rows, pool=POOL)):
        for j, pair in enumerate(line):
            assert "".join(pair.query.pieces) == QUERIES[qi].full_text
            assert "".join(pair.row.pieces) == POOL[rows[qi][j]].full_text
            assert pair.query.total == pytest.approx(scores[qi, rows[qi][j]], rel=1e-6, abs=1e-6)
            assert pair.row.total == pytest.approx(scores[qi, rows[qi][j]], rel=1e-6, abs=1e-6)
            assert pair.explained == pytest.approx(scores[qi, rows[qi][j]], rel=1e-6, abs=1e-6)
    (pair,) = bm25.explain(QUERIES[:1], [[0]], pool=POOL)[0]
    share = dict(zip(pair.row.pieces, pair.row.shares))
    query = dict(zip(pair.query.pieces, pair.query.shares))
    # "loan": twice in the query, three times in the row: each row occurrence carries 2 x weight / 3
    assert share["loan"] == pytest.approx(2 * query["loan"] / 3) and share["loan"] > 0
    assert share["the"] is None and query["the"] is None  # stop words are not scored
    assert share["cheap"] == 0.0  # an indexed word the query does not use


def test_a_truncated_preview_puts_the_rest_on_a_final_piece(bm25):
    """Without the pool, rows come from the index's 200-character previews; the long row's later occurrences
    of 'river' are past it, and their weight lands on the last piece so the row side still sums."""
    (pair,) = bm25.explain(QUERIES[1:], [[3]])[0]
    assert pair.row.pieces[-1] == ELSEWHERE
    assert pair.row.total == pytest.approx(bm25.score(QUERIES[1:])[0, 3], rel=1e-6)


def test_words_keep_the_text_and_mark_stop_words():
    pieces = words("The Robot's ship!", ["robot", "ship"])
    assert "".join(p for p, _ in pieces) == "The Robot's ship!"
    assert [t for _, t in pieces if t] == ["robot", "ship"]
