"""core/locks.py: the lock file of a cache entry, a second holder that waits (and says so once), the no-op for
launched data-parallel ranks, and the rank read from a launcher's environment."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from rise_exp.core.locks import cache_lock, launched_rank, lock_path


def test_lock_path_is_next_to_the_entry(tmp_path):
    assert lock_path(tmp_path / "models" / "tiny-abc") == tmp_path / "models" / "tiny-abc.lock"
    assert lock_path(tmp_path / "plan.json") == tmp_path / "plan.json.lock"


def test_the_lock_file_is_created_with_missing_parents(tmp_path):
    entry = tmp_path / "not" / "yet" / "entry"
    with cache_lock(entry, "the entry"):
        assert lock_path(entry).exists()
    assert not entry.exists()  # only the lock is made; the entry is the caller's


def test_a_second_holder_waits_for_the_first_and_says_so(tmp_path, caplog):
    entry = tmp_path / "entry"
    order: list[str] = []
    inside = threading.Event()

    def first() -> None:
        with cache_lock(entry, "the first build"):
            order.append("first in")
            inside.set()
            time.sleep(0.3)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(5)
    with caplog.at_level(logging.INFO, logger="rise_exp.core.locks"):
        started = time.monotonic()
        with cache_lock(entry, "the second build"):
            waited = time.monotonic() - started
            order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"]
    assert waited > 0.1
    waits = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    assert len(waits) == 1 and "the second build" in waits[0] and str(lock_path(entry)) in waits[0]


def test_an_uncontended_lock_does_not_log_and_is_released_on_error(tmp_path, caplog):
    entry = tmp_path / "entry"
    with caplog.at_level(logging.INFO, logger="rise_exp.core.locks"):
        with pytest.raises(RuntimeError):
            with cache_lock(entry, "a build that fails"):
                raise RuntimeError("boom")
        with cache_lock(entry, "the next build"):  # not left held by the failed one
            pass
    assert not [r for r in caplog.records if "waiting" in r.getMessage()]


def test_disabled_lock_neither_creates_nor_waits(tmp_path):
    entry = tmp_path / "entry"
    with cache_lock(entry, "rank 0's build"):
        with cache_lock(entry, "a launched rank", enabled=False):  # would deadlock if it took the lock
            assert True
    assert lock_path(entry).exists()
    other = tmp_path / "other"
    with cache_lock(other, "nothing", enabled=False):
        pass
    assert not lock_path(other).exists()


@pytest.mark.parametrize(
    "env, rank",
    [
        ({}, 0),
        ({"RANK": "3"}, 3),
        ({"SLURM_PROCID": "5"}, 5),
        ({"RANK": "1", "SLURM_PROCID": "2"}, 2),
        ({"LOCAL_RANK": "1"}, 1),
        ({"NODE_RANK": "1", "LOCAL_RANK": "0"}, 1),
        ({"NODE_RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}, 5),
        ({"GROUP_RANK": "2", "LOCAL_WORLD_SIZE": "2"}, 4),
        ({"RANK": "0", "NODE_RANK": "1"}, 0),  # RANK wins over the node variables
        ({"RANK": "x", "LOCAL_RANK": ""}, 0),  # not numbers: ignored
    ],
)
def test_launched_rank_reads_the_launchers_environment(monkeypatch, env, rank):
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_NODEID", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert launched_rank() == rank
