"""Select stage: keep the top (or bottom) fraction or count of a pool by value against targets, and write
the kept rows as JSONL ready for training (``task=custom task.train_path=<run dir>/selected.jsonl``).

With ``stage.index`` the values come from that index (its manifest names the method and model) and the
rows from ``stage.pool_path``, which must be the pool the index was built from (its hash is checked);
``stage.stream`` reads it as a memory-mapped Arrow pool instead of a list of records.
Without it the configured task's candidates are indexed (or the cached index reused) and valued
against the task's queries or the given targets.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rise_exp.core.errors import DataError
from rise_exp.data.arrow_pool import open_pool
from rise_exp.data.records import Record
from rise_exp.retrieval.valuation import chosen_rows
from rise_exp.run.config import RunConfig
from rise_exp.run.pipeline import prepare_for_method
from rise_exp.run.rankings import write_selection
from rise_exp.run.runner import BuiltMethod, build_on, publish, valuation_values
from rise_exp.run.serving import open_index_method, stage_queries


def check_pool(method: Any, pool: Sequence[Record], index_dir: str) -> None:
    """Refuse a pool that is not the one the index was built from (hash of its exact tokens or texts)."""
    from rise_exp.data.encoding import rows_hash
    from rise_exp.methods.bm25.method import texts_hash

    if getattr(method, "index", None) is not None:
        got, want = rows_hash(method.encode(pool, "train")), method.index.manifest.get("data_hash")
    else:
        got = texts_hash([r.full_text for r in pool])
        want = json.loads((Path(index_dir) / "manifest.json").read_text()).get("data_hash")
    if got != want:
        raise DataError(
            f"stage.pool_path holds another pool than the index {index_dir} was built from "
            f"(hash {got} != {want}); select from the pool the index was built on, or index this one"
        )


def run(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Value the pool, keep the chosen rows, write selected.jsonl (records + value) and selection.jsonl."""
    st = run.stage
    if st.index:
        method = open_index_method(st.index, run_dir / "method", run.trainer)
        fields = dict(st.pool_fields)
        pool = open_pool(st.pool_path, fields=fields, stream=st.stream)
        check_pool(method, pool, st.index)
        targets = stage_queries(st)
        built = BuiltMethod(method, len(pool), 0.0)
    else:
        prep = prepare_for_method(run, run_dir)
        pool = prep.task.candidates
        targets = stage_queries(st, prep.task.queries)
        built = build_on(run.method, prep.ctx, pool)
    values, seconds = valuation_values(built, targets, st.mode)
    kept = chosen_rows(values, st.keep, st.fraction, st.count)
    with open(run_dir / "selected.jsonl", "w") as f:
        for i in sorted(kept.tolist()):  # pool order: ready to train on
            f.write(json.dumps({**pool[i].to_dict(), "value": float(values[i])}) + "\n")
    meta = [{"id": pool[i].id, "label": pool[i].label, "text": pool[i].full_text} for i in kept.tolist()]
    write_selection(run_dir / "selection.jsonl", kept.tolist(), values[kept].tolist(), meta)
    metrics = {
        "num_pool": len(pool),
        "num_selected": len(kept),
        "num_targets": len(targets),
        "value_seconds": seconds,
        "value_mean_selected": float(values[kept].mean()),
        "value_mean_pool": float(values.mean()),
    }
    labels = [pool[i].label for i in kept]
    if all(x is not None for x in labels) and labels:
        metrics["share_positive_selected"] = float(np.mean(labels))
    publish(
        run,
        run_dir,
        metrics,
        stage="select",
        files=["selected.jsonl", "selection.jsonl"],
        headline=["num_pool", "num_selected", "value_mean_selected", "value_mean_pool", "share_positive_selected"],
        title=f"select: {st.keep} {st.fraction or st.count} of the pool by {built.method.name} value",
    )
    return metrics
