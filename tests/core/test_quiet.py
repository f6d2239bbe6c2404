"""core/quiet.py: a library's quieting runs right after its own import (which may reset its loggers), once,
and at once when the library is already imported; quieting imports nothing up front."""

from __future__ import annotations

import subprocess
import sys

from rise_exp.core.quiet import after_import
from tests.helpers import ROOT, cli_env


def test_a_hook_runs_after_the_import_once_and_at_once_when_already_imported(tmp_path, monkeypatch):
    (tmp_path / "chatty_lib.py").write_text("import logging\nlogging.getLogger('chatty_lib').setLevel(logging.DEBUG)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    calls = []
    after_import("chatty_lib", lambda: calls.append(sys.modules["chatty_lib"].__name__))
    assert calls == []
    import chatty_lib  # noqa: F401

    assert calls == ["chatty_lib"]
    import chatty_lib  # noqa: F401, F811  (a second import runs nothing)

    after_import("chatty_lib", lambda: calls.append("again"))  # already imported: runs now
    assert calls == ["chatty_lib", "again"]
    monkeypatch.delitem(sys.modules, "chatty_lib")


def test_quieting_imports_no_library_and_quiets_lightning_after_its_import():
    probe = (
        "import sys, logging\n"
        "from rise_exp.core.quiet import quiet_libraries\n"
        "quiet_libraries()\n"
        "assert not {'lightning', 'transformers', 'bm25s'} & set(sys.modules), sorted(sys.modules)\n"
        "import lightning\n"
        "print(logging.getLogger('lightning.pytorch').level, logging.getLogger('lightning.fabric').level)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["30", "30"]  # WARNING, though Lightning sets INFO when it is imported
