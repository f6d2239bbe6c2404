"""BM25 lexical baseline on ``bm25s`` (Lu 2024), over the same text fields the other methods see."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rise_exp.data.records import Record
from rise_exp.methods.base import AttributionMethod


class BM25Method(AttributionMethod):
    """Okapi BM25 scores of every training row for each query (query = its full prompt + response)."""

    name = "bm25"
    needs_model = False

    def build(self, train: Sequence[Record]) -> None:
        import bm25s

        self._n = len(train)
        corpus = bm25s.tokenize([r.full_text for r in train], stopwords=self.cfg.stopwords, show_progress=False)
        self._retriever = bm25s.BM25(k1=self.cfg.k1, b=self.cfg.b, method=self.cfg.variant)
        self._retriever.index(corpus, show_progress=False)
        s = self._retriever.scores
        self.index_bytes = int(sum(np.asarray(v).nbytes for v in s.values() if hasattr(v, "nbytes")))

    def score(self, queries: Sequence[Record]) -> np.ndarray:
        import bm25s

        out = np.zeros((len(queries), self._n), dtype=np.float32)
        vocab = self._retriever.vocab_dict
        for i, q in enumerate(queries):
            toks = bm25s.tokenize([q.full_text], stopwords=self.cfg.stopwords, show_progress=False, return_ids=False)[0]
            ids = [vocab[t] for t in toks if t in vocab]
            if ids:
                out[i] = self._retriever.get_scores(ids)
        return out
