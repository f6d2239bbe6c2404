"""BM25 lexical baseline (bm25s)."""
