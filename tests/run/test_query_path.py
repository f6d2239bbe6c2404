"""Answering from an index stays light and exact: the query path imports no Lightning, W&B or datasets (a
fresh process, checked by its sys.modules), a session checks RISE's head once however many lists it is asked,
and a query's signature is the same alone, in a batch of longer and shorter queries, and through
``stage=query``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rise_exp.cli import run
from rise_exp.data.records import Record
from rise_exp.data.synthetic import make_howdy
from rise_exp.methods.rise.head import RiseHead
from rise_exp.methods.rise.signatures import compute_signatures
from rise_exp.run.config import compose
from rise_exp.run.index_session import IndexSession
from rise_exp.run.rankings import read_topk
from tests.helpers import ROOT, cli_env, tiny_run

HEAVY = ("lightning", "wandb", "datasets")
QUESTION = "howdy what is the capital of france"
OTHERS = ["howdy", "what is the largest ocean on the planet and how deep is its deepest trench today?"]


@pytest.fixture(scope="module")
def rise_index(tmp_path_factory):
    """A RISE index of a 40-row unlabelled pool on the tiny embedded model (model as built, no finetune)."""
    root = tmp_path_factory.mktemp("query_path")
    pool = root / "pool.jsonl"
    rows = make_howdy(n_train=40, n_queries=2, seed=5).train
    pool.write_text("".join(json.dumps({"id": r.id, "text": r.full_text}) + "\n" for r in rows))
    mp = pytest.MonkeyPatch()
    mp.setenv("RISE_EXP_CACHE", str(root / "cache"))
    args = tiny_run("task=custom", f"task.train_path={pool}", "model=tiny-pythia", "finetune=none", epochs=None)
    metrics = run(compose([*args, "task.query_texts=[warm up]"]), root / "build")
    yield {"path": metrics["index"], "root": root}
    mp.undo()


def _modules_after(code: str, cwd) -> list[str]:
    """The heavy libraries a fresh interpreter has imported after running ``code``."""
    probe = textwrap.dedent(code) + f"\nimport sys\nprint('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])\n"
    env = cli_env(RISE_EXP_PROGRESS="0")
    out = subprocess.run([sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    line = [x for x in out.stdout.splitlines() if x.startswith("HEAVY")][-1]
    return eval(line.split(" ", 1)[1])  # noqa: S307 - the list printed by our own probe


def test_the_query_stage_and_a_session_import_no_lightning_wandb_or_datasets(rise_index, tmp_path):
    cli = f"""
        import sys
        sys.argv = ["rise_exp", "stage=query", "stage.index={rise_index["path"]}", "stage.query_texts=[{QUESTION}]",
                    "logger=none", "hydra.run.dir={tmp_path / "cli"}"]
        from rise_exp.cli import main
        main()
    """
    assert _modules_after(cli, ROOT) == []
    assert (tmp_path / "cli" / "topk.jsonl").is_file()
    session = f"""
        from rise_exp.run.index_session import IndexSession
        with IndexSession.open("{rise_index["path"]}") as s:
            assert len(s.query(["{QUESTION}"], k=3)[0]) == 3
            s.valuate(["{QUESTION}"], k=3)
    """
    assert _modules_after(session, ROOT) == []


def test_a_session_checks_the_head_once_and_keeps_the_signatures(rise_index, monkeypatch):
    checks = []
    verify = RiseHead.verify
    monkeypatch.setattr(RiseHead, "verify", lambda self, *a, **k: checks.append(1) or verify(self, *a, **k))
    with IndexSession.open(rise_index["path"]) as session:
        method = session.method
        first = method.query_vectors([Record(id="q", text=QUESTION)])
        for _ in range(3):
            session.query([QUESTION, *OTHERS], k=5)
        again = method.query_vectors([Record(id="q", text=QUESTION)])
        ctx = method.ctx
        rows = method.encode([Record(id="q", text=QUESTION)], "query")
        ix = method.cfg.index
        fresh = compute_signatures(  # a head built anew, as before the session kept one
            ctx.model,
            ctx.tokenizer.pad_token_id,
            rows,
            method.rise,
            method.sketch_tables,
            batch_tokens=ix.batch_tokens,
            batch_chunks=ix.batch_chunks,
            pad_multiple=ix.pad_multiple,
        )
    assert len(checks) == 1 + 1  # the session's head once, the fresh head once
    assert np.array_equal(first, again) and np.array_equal(first, fresh)


def test_a_query_scores_the_same_alone_in_a_mixed_batch_and_through_the_query_stage(rise_index, tmp_path):
    with IndexSession.open(rise_index["path"]) as session:
        method = session.method
        alone = method.query_vectors([Record(id="q", text=QUESTION)])[0]
        mixed = [Record(id="long", text=OTHERS[1]), Record(id="q", text=QUESTION), Record(id="short", text=OTHERS[0])]
        in_batch = method.query_vectors(mixed)[1]
        assert np.abs(alone).max() > 0
        np.testing.assert_allclose(in_batch, alone, rtol=0, atol=1e-5)
        hits_alone = session.query([QUESTION], k=10)[0]
        hits_mixed = session.query([OTHERS[1], QUESTION, OTHERS[0]], k=10)[1]
    run(compose(["stage=query", f"stage.index={rise_index['path']}", f"stage.query_texts=[{QUESTION}]"]), tmp_path)
    stage = read_topk(tmp_path / "topk.jsonl")[0]["top"]
    for hits in (hits_mixed, stage):
        assert [h["row"] for h in hits] == [h["row"] for h in hits_alone]
        np.testing.assert_allclose([h["score"] for h in hits], [h["score"] for h in hits_alone], rtol=0, atol=1e-5)
