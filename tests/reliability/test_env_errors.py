"""Environment errors of the command line are one line naming the path and the problem, exit 2, with no
traceback and nothing half-written: an unwritable run directory, a run directory under a file, a cache
directory that is a file, a pool path that is a directory, a file size limit hit while building an index
(``ulimit -f``); and a hostile ``task.title`` keeps the index inside the cache."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from rise_exp.core.names import safe_component

ROOT = Path(__file__).resolve().parents[2]


def start(cwd: Path, *overrides: str, fsize: int | None = None) -> subprocess.Popen:
    env = dict(os.environ, WANDB_MODE="offline", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), RISE_EXP_PROGRESS="0")
    env["RISE_EXP_CACHE"] = str(cwd / "cache")

    def limit() -> None:  # what ``ulimit -f`` does: writes past fsize bytes fail with EFBIG
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.Popen(
        [sys.executable, "-m", "rise_exp", "logger=none", *overrides],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limit,
    )


def pool(where: Path, n: int = 60) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    path = where / "pool.jsonl"
    words = "the bank rate loan stock patient doctor star ship moon rocket cat".split()
    with open(path, "w") as fh:
        for i in range(n):
            text = " ".join(words[(i + j) % len(words)] for j in range(8 + i % 50))
            fh.write(json.dumps({"id": f"r{i}", "instruction": f"row {i}", "output": text, "label": i % 2}) + "\n")
    return path


def one_line(proc: subprocess.Popen, name: str) -> str:
    _, err = proc.communicate(timeout=900)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert proc.returncode == 2, (name, proc.returncode, err[-3000:])
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, (name, err[-3000:])
    return lines[0]


def test_environment_errors_are_one_line_exit_2(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    bm25 = ["method=bm25", "task=custom", "task.query_texts=[bank rate, star ship]"]
    cases = {
        "proc": ["hydra.run.dir=/proc/x"],
        "under_a_file": [f"hydra.run.dir={a_file}/run"],
        "cache_is_a_file": [f"hydra.run.dir={tmp_path / 'r3'}", f"paths.cache_dir={a_file}"],
        "pool_is_a_dir": [f"hydra.run.dir={tmp_path / 'r4'}", *bm25, f"task.train_path={tmp_path}"],
        "pool_dir_named_jsonl": [f"hydra.run.dir={tmp_path / 'r5'}", *bm25, f"task.train_path={tmp_path / 'd.jsonl'}"],
    }
    (tmp_path / "d.jsonl").mkdir()
    expected = {
        "proc": "/proc/x",
        "under_a_file": f"{a_file}",
        "cache_is_a_file": f"paths.cache_dir={a_file} is a file, not a directory",
        "pool_is_a_dir": f"{tmp_path}: is a directory",
        "pool_dir_named_jsonl": f"{tmp_path / 'd.jsonl'}: is a directory",
    }
    procs = {}
    for name, overrides in cases.items():
        (tmp_path / name).mkdir()
        procs[name] = start(tmp_path / name, *overrides)
    for name, proc in procs.items():
        line = one_line(proc, name)
        assert expected[name] in line, (name, line)
    assert a_file.read_text() == "not a directory"


def test_a_file_size_limit_during_an_index_build_is_one_line_and_the_rerun_recovers(tmp_path):
    data = pool(tmp_path / "data", n=400)
    common = ["method=bm25", "task=custom", f"task.train_path={data}", "task.query_texts=[bank rate, star ship]"]
    limited = start(tmp_path, f"hydra.run.dir={tmp_path / 'r1'}", *common, fsize=48_000)
    line = one_line(limited, "ulimit -f")
    assert "File too large" in line and str(tmp_path / "cache") in line, line
    cache = tmp_path / "cache"
    assert not [p for p in cache.rglob("*") if p.name.endswith((".tmp", ".building"))]
    rerun = start(tmp_path, f"hydra.run.dir={tmp_path / 'r2'}", *common)
    _, err = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, err[-3000:]
    assert (tmp_path / "r2" / "scores.npy").is_file()


def test_a_hostile_task_title_keeps_the_index_in_the_cache(tmp_path):
    data = pool(tmp_path / "data")
    overrides = ["method=bm25", "task=custom", f"task.train_path={data}", "task.query_texts=[bank rate]"]
    titles = ["../../ESCAPE", f"{tmp_path}/ABS"]
    procs = [
        start(tmp_path, f"hydra.run.dir={tmp_path / f'r{i}'}", *overrides, f"task.title={title}")
        for i, title in enumerate(titles)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:]
    indexes = sorted(p.name.split("-bm25-")[0] for p in (tmp_path / "cache" / "indexes").iterdir() if p.is_dir())
    assert indexes == sorted(safe_component(t) for t in titles) and indexes[0] == "ESCAPE"
    assert not list(tmp_path.parent.parent.glob("ESCAPE*")) and not list(tmp_path.glob("ABS*"))


def test_environment_errors_reported_by_libraries_are_recognised():
    import errno

    from safetensors import SafetensorError

    from rise_exp.core.errors import describe_os_error, environment_cause

    efbig = 'Error while serializing: IoError(Os { code: 27, kind: FileTooLarge, message: "File too large" })'
    assert environment_cause(SafetensorError(efbig)).errno == errno.EFBIG
    assert environment_cause(RuntimeError("[Errno 28] No space left on device")).errno == errno.ENOSPC
    try:
        try:
            raise OSError(errno.EACCES, "Permission denied", "/x/y")
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert describe_os_error(environment_cause(outer)) == "cannot create or write /x/y: Permission denied"
    assert environment_cause(ValueError("a bug")) is None and environment_cause(OSError("no errno")) is None
    assert describe_os_error(OSError(errno.EFBIG, "File too large"), "a file under /r") == (
        "cannot create or write a file under /r: File too large (the file size limit, ulimit -f, was reached)"
    )
