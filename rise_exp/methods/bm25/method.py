"""BM25 lexical baseline on ``bm25s`` (Lù 2024), over the same text fields the other methods see.

The index persists like the vector methods' (``<cache>/indexes/<data>-bm25-<key>``, the key hashing the
settings and the pool's texts): ``manifest.json``, bm25s' own files and ``rows.jsonl`` (id and text
preview per row), written to a temporary directory and renamed into place, so later runs reuse it and
``stage=query`` answers from it alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rise_exp.core.errors import IndexError_
from rise_exp.core.hashing import config_hash
from rise_exp.core.locks import cache_lock
from rise_exp.core.names import safe_component
from rise_exp.data.records import Record
from rise_exp.methods.base import AttributionMethod
from rise_exp.methods.explanation import PairExplanation

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
ROWS = "rows.jsonl"
PREVIEW_CHARS = 200


def texts_hash(texts: Sequence[str]) -> str:
    """Hash of the exact texts an index was built from."""
    sha = hashlib.sha256()
    for t in texts:
        sha.update(t.encode("utf-8"))
        sha.update(b"\0")
    return sha.hexdigest()[:16]


class BM25Method(AttributionMethod):
    """Okapi BM25 scores of every training row for each query (query = its full prompt + response)."""

    name = "bm25"
    needs_model = False
    share_unit = "word"

    def settings(self) -> dict[str, Any]:
        """The settings the scores depend on."""
        c = self.cfg
        return {"name": self.name, "k1": c.k1, "b": c.b, "variant": c.variant, "stopwords": c.stopwords}

    def index_dir(self, data_hash: str) -> Path:
        """``method.dir``, else a directory of the index cache keyed by the settings and the texts."""
        if self.cfg.dir:
            return Path(self.cfg.dir)
        root = Path(self.ctx.index_root) if self.ctx.index_root else Path(self.ctx.work_dir)
        key = config_hash({"method": self.settings(), "data": data_hash})
        return root / f"{safe_component(self.ctx.data_name)}-bm25-{key}"

    def build(self, train: Sequence[Record]) -> None:
        texts = [r.full_text for r in train]
        data_hash = texts_hash(texts)
        path = self.index_dir(data_hash)
        with cache_lock(path, f"the bm25 index {path}"):
            if not self._reusable(path, data_hash):
                self._write(path, train, texts, data_hash)
            else:
                log.info("bm25: reusing the index in %s", path)
        self.attach(path)

    def _reusable(self, path: Path, data_hash: str) -> bool:
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError):
            return False
        if manifest.get("method") != self.settings() or manifest.get("data_hash") != data_hash:
            if self.cfg.reuse:
                raise IndexError_(
                    f"{path} holds a bm25 index of other settings or texts; set method.reuse=false to rebuild it, "
                    f"or choose a new method.dir"
                )
            return False
        return self.cfg.reuse

    def _write(self, path: Path, train: Sequence[Record], texts: list[str], data_hash: str) -> None:
        """Build into ``<path>.building`` and rename it; a failed write (disk full) leaves nothing behind."""
        tmp = path.with_name(path.name + ".building")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            self._write_into(tmp, path, train, texts, data_hash)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise OSError(exc.errno, exc.strerror or str(exc), exc.filename or str(path)) from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _write_into(self, tmp: Path, path: Path, train: Sequence[Record], texts: list[str], data_hash: str) -> None:
        import bm25s

        tmp.mkdir(parents=True)
        corpus = bm25s.tokenize(texts, stopwords=self.cfg.stopwords, show_progress=False)
        retriever = bm25s.BM25(k1=self.cfg.k1, b=self.cfg.b, method=self.cfg.variant)
        retriever.index(corpus, show_progress=False)
        retriever.save(str(tmp), show_progress=False)
        with open(tmp / ROWS, "w") as fh:
            for r in train:
                fh.write(json.dumps({"id": r.id, "preview": r.full_text[:PREVIEW_CHARS]}) + "\n")
        manifest = {
            "method": self.settings(),
            "data_hash": data_hash,
            "num_rows": len(train),
            "status": "complete",
            "serving": {"run": dict(self.ctx.run_names)},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)

    def attach(self, path: str | os.PathLike) -> None:
        """Use the finished BM25 index at ``path``."""
        import bm25s

        path = Path(path)
        try:
            manifest = json.loads((path / MANIFEST).read_text())
            self._retriever = bm25s.BM25.load(str(path), show_progress=False)
        except (OSError, ValueError) as e:
            raise IndexError_(f"{path}: not a finished bm25 index ({e})") from None
        self.index_path, self._n = path, int(manifest["num_rows"])
        s = self._retriever.scores
        self.index_bytes = int(sum(np.asarray(v).nbytes for v in s.values() if hasattr(v, "nbytes")))

    @property
    def num_rows(self) -> int:
        """Rows of the attached index."""
        return self._n

    def rows_meta(self, rows: Sequence[int]) -> list[dict[str, Any]]:
        """Id and text preview of the given rows (from the index's ``rows.jsonl``)."""
        wanted = set(int(r) for r in rows)
        found = {}
        with open(self.index_path / ROWS) as fh:
            for i, line in enumerate(fh):
                if i in wanted:
                    found[i] = json.loads(line)
        return [found[int(r)] for r in rows]

    def explain_unavailable(self) -> str | None:
        return None

    def explain(
        self, queries: Sequence[Record], rows: Sequence[Sequence[int]], pool: Sequence[Record] | None = None
    ) -> list[list[PairExplanation]]:
        """Word shares from the stored term weights (:mod:`~rise_exp.methods.bm25.explain`); a row's words come
        from ``pool``, else from the index's text preview (the weight of words past it on a final piece)."""
        from rise_exp.methods.bm25.explain import Bm25Explainer

        explainer = Bm25Explainer(self._retriever, self.cfg.stopwords)
        wanted = sorted({int(i) for line in rows for i in line})
        meta = {} if pool is not None else dict(zip(wanted, self.rows_meta(wanted)))
        out = []
        for q, line in zip(queries, rows):
            pairs = []
            for i in line:
                text = pool[int(i)].full_text if pool is not None else meta[int(i)]["preview"]
                cut = pool is None and len(text) >= PREVIEW_CHARS
                pairs.append(explainer.pair(q.full_text, text, int(i), truncated=cut))
            out.append(pairs)
        return out

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
