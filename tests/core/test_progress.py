"""core/progress.py: RISE_EXP_PROGRESS=0 hides every bar; anything else shows them."""

from __future__ import annotations

from rise_exp.core.progress import bar, enabled


def test_the_environment_switch_turns_bars_off_and_on(monkeypatch, capsys):
    monkeypatch.setenv("RISE_EXP_PROGRESS", "0")
    assert not enabled()
    with bar(3, "hidden") as b:
        assert b.disable
        b.update(3)
    assert "hidden" not in capsys.readouterr().err
    monkeypatch.setenv("RISE_EXP_PROGRESS", "1")
    assert enabled()
    with bar(3, "shown", unit="row") as b:
        assert not b.disable
        b.update(3)
    err = capsys.readouterr().err
    assert "shown:" in err and "row/s" in err  # not a terminal: drawn once, refreshed at most every 30 s
    monkeypatch.delenv("RISE_EXP_PROGRESS")
    assert enabled()
