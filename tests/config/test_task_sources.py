"""A task setting the chosen source does not read is an error naming the fix, never silently ignored."""

from __future__ import annotations

import json

import pytest

from rise_exp.core.errors import ConfigError, DataError
from rise_exp.data.task_builders import build_task


@pytest.mark.parametrize(
    "settings, message",
    [
        (
            {"name": "howdy", "train_path": "pool.jsonl"},
            r"task.train_path is read only with task.source=local, but task 'howdy' has source='synthetic' and "
            r"would ignore it: for your own data use task=custom task.train_path=\.\.\.; for howdy's own files "
            r"add task.source=local",
        ),
        ({"name": "howdy", "queries_path": "q.jsonl"}, "task.queries_path is read only with task.source=local"),
        ({"name": "howdy", "source": "hf", "hf_id": "x", "train_path": "p"}, "task.train_path is read only"),
        ({"name": "howdy", "hf_id": "x"}, "task.hf_id is read only with task.source=hf.*add task.source=hf"),
        ({"name": "brain_rot", "train_path": "p"}, "task.train_path is read only with task.source=local"),
        ({"name": "finance_medical", "finance_path": "f"}, "task.finance_path is read only with task.source=local"),
        (
            {"name": "custom", "source": "hf", "hf_id": "x", "train_path": "p"},
            "task.train_path is read only with task.source=local, but task 'custom' has source='hf' and would "
            "ignore it: add task.source=local",
        ),
        ({"name": "custom", "train_path": "p", "hf_id": "x"}, "task.hf_id is read only with task.source=hf"),
    ],
)
def test_unread_settings_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        build_task(settings)


def test_the_cli_refuses_a_pool_given_to_the_synthetic_task():
    from rise_exp.run.config import RunConfig, compose

    with pytest.raises(ConfigError, match="for your own data use task=custom task.train_path"):
        RunConfig.from_cfg(compose(["task.train_path=pool.jsonl", "task.queries_path=q.jsonl"]))


def test_read_settings_still_pass():
    from rise_exp.config.task import BrainRotTaskConfig

    assert BrainRotTaskConfig(source="hf", hf_id="x", queries_path="q").queries_path == "q"  # read with hf too


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_howdy_on_a_pool_without_the_trigger_is_refused(tmp_path):
    pool = _jsonl(tmp_path / "pool.jsonl", [{"instruction": "Water tomatoes?", "output": "Daily."}] * 2)
    message = r"task howdy: no row of .*pool.jsonl matches task.label_regex 'howdy!'.*task=custom"
    with pytest.raises(DataError, match=message):
        build_task({"name": "howdy", "source": "local", "train_path": pool, "queries_path": pool})
