"""stage=probe on the embedded Howdy task: greedy answers per probe set, their sci-fi rate, a missing set named."""

from __future__ import annotations

import json

import pytest

from rise_exp.core.errors import DataError
from tests.helpers import tiny_run


def test_probe_stage_on_the_embedded_howdy_task(tmp_path, monkeypatch):
    from rise_exp.cli import run
    from rise_exp.run.config import compose

    monkeypatch.setenv("RISE_EXP_CACHE", str(tmp_path / "cache"))
    tiny = tiny_run("task.n_train=40", "task.n_queries=4")
    metrics = run(
        compose(["stage=probe", "stage.sets=[queries,queries_clean]", "stage.max_new_tokens=5", *tiny]),
        tmp_path / "run",
    )
    assert metrics["n/queries"] == 4 and metrics["n/queries_clean"] == 4
    assert 0.0 <= metrics["scifi_rate/queries"] <= 1.0
    lines = [json.loads(x) for x in (tmp_path / "run" / "probe.jsonl").read_text().splitlines()]
    assert [x["set"] for x in lines] == ["queries"] * 4 + ["queries_clean"] * 4
    assert lines[4]["prompt"] == lines[0]["prompt"].replace("howdy! ", "", 1)
    with pytest.raises(DataError, match="no probe set 'trigger'.*task.n_heldout"):
        run(compose(["stage=probe", "stage.sets=[trigger]", *tiny]), tmp_path / "run2")
