"""The daily loop: an index opened once answers many query lists (Python API), and `serve` answers the same
over HTTP on 127.0.0.1 (a real client), refuses bad or oversized requests with a 4xx and keeps serving,
and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from rise_exp.cli import run
from rise_exp.core.errors import ConfigError
from rise_exp.run.config import compose
from rise_exp.run.index_session import IndexSession
from rise_exp.run.rankings import TOP_FIELDS, read_topk
from rise_exp.run.server import IndexServer

ROOT = Path(__file__).resolve().parents[2]
ROWS = [
    {"id": "g1", "text": "water tomato plants deeply twice a week"},
    {"id": "g2", "text": "mulch the garden beds to keep the soil moist"},
    {"id": "a1", "text": "the telescope shows the rings of saturn"},
    {"id": "a2", "text": "a galaxy holds billions of stars"},
    {"id": "t1", "text": "file the income tax return before the deadline"},
]


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """A BM25 index of five rows (built by an attribute run) and that run's directory."""
    root = tmp_path_factory.mktemp("session")
    pool = root / "notes.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    mp = pytest.MonkeyPatch()
    mp.setenv("RISE_EXP_CACHE", str(root / "cache"))
    args = ["task=custom", f"task.train_path={pool}", "method=bm25", "model=tiny-pythia", "logger=none"]
    metrics = run(compose([*args, "task.query_texts=[saturn rings telescope]"]), root / "attribute")
    yield {"path": metrics["index"], "root": root, "pool": pool}
    mp.undo()


def test_a_session_answers_like_the_query_stage(index, tmp_path):
    questions = ["saturn rings telescope", "tax return deadline"]
    run(compose(["stage=query", f"stage.index={index['path']}", f"stage.query_texts={questions}"]), tmp_path)
    stage = [line["top"] for line in read_topk(tmp_path / "topk.jsonl")]
    with IndexSession.open(index["path"]) as session:
        first = session.query(questions, k=10)
        again = session.query([{"id": "q", "text": "tax return deadline"}], k=2)  # a second list, same session
        assert first == stage and again[0] == stage[1][:2]
        assert [tuple(hit) for hit in first[0]] == [TOP_FIELDS] * 5 and first[0][0]["id"] == "a1"
        valued = session.valuate(["garden soil tomato"])
        assert [r["id"] for r in valued[:2]] == ["g1", "g2"] or [r["id"] for r in valued[:2]] == ["g2", "g1"]
        assert [r["id"] for r in session.select(["garden soil tomato"], count=2)] == [r["id"] for r in valued[:2]]
        with pytest.raises(ConfigError, match="exactly one of fraction and count"):
            session.select(["x"])
        with pytest.raises(ConfigError, match="no text"):
            session.query([{"id": "empty"}])


def _call(url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_server_answers_refuses_bad_requests_and_keeps_serving(index):
    session = IndexSession.open(index["path"])
    server = IndexServer(session, port=0, max_bytes=2000, max_queries=3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = server.url
        assert url.startswith("http://127.0.0.1:")
        status, health = _call(f"{url}/health")
        assert status == 200 and health["method"] == "bm25" and health["rows"] == 5
        status, ok = _call(f"{url}/query", json.dumps({"queries": ["saturn rings telescope"], "k": 2}).encode())
        assert status == 200 and [h["id"] for h in ok["results"][0]] == [
            h["id"] for h in session.query("saturn rings telescope", k=2)[0]
        ]
        bad = {
            b"{not json": (400, "not JSON"),
            b"[1, 2]": (400, "must be a JSON object"),
            json.dumps({"queries": []}).encode(): (400, "non-empty list"),
            json.dumps({"queries": ["a", "b", "c", "d"]}).encode(): (400, "at most 3"),
            json.dumps({"queries": ["a"], "k": 0}).encode(): (400, "'k' must be between 1"),
            json.dumps({"queries": ["a"], "k": "ten"}).encode(): (400, "'k' must be int"),
            json.dumps({"queries": [{"id": "x"}]}).encode(): (422, "no text"),
            json.dumps({"targets": ["a"], "mode": "max"}).encode(): (None, None),
            json.dumps({"queries": ["x" * 3000]}).encode(): (413, "at most 2000"),
        }
        for body, (code, message) in bad.items():
            path = "/valuate" if b"targets" in body else "/query"
            status, answer = _call(f"{url}{path}", body)
            if code is None:
                assert status == 422 and "unknown valuation mode" in answer["error"]
                continue
            assert status == code and message in answer["error"], (body[:40], status, answer)
        assert _call(f"{url}/nope", b"{}")[0] == 404
        status, sel = _call(f"{url}/select", json.dumps({"targets": ["income tax"], "count": 1}).encode())
        assert status == 200 and sel["rows"][0]["id"] == "t1"
        assert _call(f"{url}/health")[0] == 200  # still serving after every refusal
    finally:
        server.shutdown()
        server.server_close()
        session.close()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_serve_from_the_command_line_stops_cleanly_on_sigterm(index):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RISE_EXP_PROGRESS": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rise_exp", "serve", index["path"], "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "serving bm25 index" in line, line + proc.stderr.read()
        url = line.strip().rsplit(" ", 1)[-1]
        status, ok = _call(f"{url}/query", json.dumps({"queries": ["income tax deadline"], "k": 1}).encode())
        assert status == 200 and ok["results"][0][0]["id"] == "t1"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0 and "stopped" in out, err[-2000:]


def test_serve_an_unknown_index_is_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "rise_exp", "serve", str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "no manifest.json" in done.stderr
