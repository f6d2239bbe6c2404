"""BM25 scores split into word shares.

bm25s scores a row as ``sum over the query's words w (repeats included) of weight(w, row)``, the weight being
the stored ``idf(w) * tf-saturation(w, row)``. A query word's share is its weight in the row (0 for a word the
pool never uses); a row word's share is the weight of its term times the term's count in the query, split
equally over the term's occurrences in the row (BM25 saturates term frequency, so the split among
occurrences is a convention; the per-term total is exact). Stop words and the text between words are not
scored. Both sides sum to the score.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from rise_exp.methods.explanation import PairExplanation, TokenShares

#: bm25s' default word pattern (``bm25s.tokenize``), applied to the lower-cased text.
WORD = re.compile(r"(?u)\b\w\w+\b")
#: The piece that carries the weight of terms whose occurrences lie past a truncated row text.
ELSEWHERE = " […]"


def words(text: str, kept: Sequence[str]) -> list[tuple[str, str | None]]:
    """``text`` as ``(piece, term)`` pieces that concatenate to it: each word with its term (None for a stop
    word: ``kept`` is bm25s' token list of ``text``, stop words removed) and the text between words."""
    lower = text.lower()
    if len(lower) != len(text):  # a character whose lower case is longer: show the lower-cased text
        text = lower
    out: list[tuple[str, str | None]] = []
    pos, k = 0, 0
    for m in WORD.finditer(lower):
        if m.start() > pos:
            out.append((text[pos : m.start()], None))
        term = m.group()
        keep = k < len(kept) and kept[k] == term
        k += keep
        out.append((text[m.start() : m.end()], term if keep else None))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], None))
    return out


class Bm25Explainer:
    """Word shares from a bm25s index's stored term weights.

    Args:
        retriever: The loaded ``bm25s.BM25``.
        stopwords: The stop word list it was built with.
    """

    def __init__(self, retriever, stopwords: str | None) -> None:
        self.retriever, self.stopwords = retriever, stopwords

    def tokens(self, text: str) -> list[str]:
        import bm25s

        return bm25s.tokenize([text], stopwords=self.stopwords, show_progress=False, return_ids=False)[0]

    def weights(self, terms: Sequence[str], row: int) -> dict[str, float]:
        """``{term: weight(term, row)}`` for the terms in the index's vocabulary."""
        s, vocab = self.retriever.scores, self.retriever.vocab_dict
        out = {}
        for term in set(terms):
            if term in vocab:
                lo, hi = int(s["indptr"][vocab[term]]), int(s["indptr"][vocab[term] + 1])
                hit = np.flatnonzero(s["indices"][lo:hi] == row)
                out[term] = float(s["data"][lo + hit[0]]) if hit.size else 0.0
        return out

    def pair(self, query: str, row_text: str, row: int, truncated: bool = False) -> PairExplanation:
        """The shares of the BM25 score of ``query`` for pool row ``row`` (its text ``row_text``; ``truncated``:
        a preview, whose missing occurrences' weight goes to a final ``[…]`` piece)."""
        q_terms = self.tokens(query)
        weight = self.weights(q_terms, row)
        q_pieces = words(query, q_terms)
        q_shares = [None if t is None else weight.get(t, 0.0) for _, t in q_pieces]
        count = Counter(q_terms)
        r_pieces = words(row_text, self.tokens(row_text))
        seen = Counter(t for _, t in r_pieces if t is not None)
        r_shares: list[float | None] = [
            None if t is None else (weight.get(t, 0.0) * count[t] / seen[t] if t in count else 0.0) for _, t in r_pieces
        ]
        missing = sum(weight[t] * count[t] for t in weight if weight[t] and not seen[t])
        pieces = [p for p, _ in r_pieces]
        if missing or truncated:
            pieces.append(ELSEWHERE)
            r_shares.append(missing)
        explained = sum(weight.get(t, 0.0) for t in q_terms)
        query_shares = TokenShares([p for p, _ in q_pieces], q_shares)
        return PairExplanation(query=query_shares, row=TokenShares(pieces, r_shares), explained=explained)
