"""A cache directory the user cannot write is one line naming it, exit 2, and nothing in it changes.

Root writes anywhere, and tests run as root here, so a root run is started without the capabilities that
override file permissions (``setpriv --bounding-set=-dac_override,-dac_read_search``): it then meets the
directory's mode as any user would. An unprivileged user gets the same refusal from the mode alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import ROOT


def without_permission_override() -> list[str]:
    """The command prefix that makes this process's child obey file modes (empty when it already does)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv (util-linux): cannot drop the permission override")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def test_an_unwritable_cache_dir_is_one_line_and_stays_untouched(tmp_path):
    cache, work = tmp_path / "cache", tmp_path / "work"
    (cache / "indexes").mkdir(parents=True)
    (cache / "indexes" / "kept.txt").write_text("an earlier result")
    work.mkdir()
    for d in (cache / "indexes", cache):
        d.chmod(0o555)
    env = dict(os.environ, WANDB_MODE="offline", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), RISE_EXP_PROGRESS="0")
    try:
        proc = subprocess.run(
            [
                *without_permission_override(),
                sys.executable,
                "-m",
                "rise_exp",
                "logger=none",
                f"paths.cache_dir={cache}",
                f"hydra.run.dir={work}/run",
            ],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        for d in (cache, cache / "indexes"):
            d.chmod(0o755)
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert lines[0] == f"error: paths.cache_dir={cache}: {cache} is not writable", lines[0]
    assert sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*")) == ["indexes", "indexes/kept.txt"]
