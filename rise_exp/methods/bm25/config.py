"""``method=bm25`` settings (bm25s, Lu 2024; k1 and b are the bm25s / Lucene defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from rise_exp.config.settings import Settings, setting


@dataclass(frozen=True)
class BM25Config(Settings):
    """Okapi BM25 over the same text fields the other methods see."""

    GROUP = "method"
    name: str = setting("bm25", "method name")
    k1: float = setting(1.5, "term-frequency saturation", ge=0)
    b: float = setting(0.75, "length normalisation", ge=0, le=1)
    variant: str = setting(
        "lucene", "bm25s scoring variant", choices=("robertson", "atire", "bm25l", "bm25+", "lucene")
    )
    stopwords: str | None = setting("en", "bm25s stopword list (null = none)")
    reuse: bool = setting(True, "reuse a finished index of the same settings and texts")
    dir: str | None = setting(None, "index directory (default: <cache>/indexes/<data>-bm25-<key>)")
