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


def test_a_task_bar_is_advanced_from_inside_and_a_log_keeps_its_last_line(monkeypatch, capsys):
    from rise_exp.core.progress import advance, task

    monkeypatch.setenv("RISE_EXP_PROGRESS", "1")
    advance(5)  # no task open: nothing happens
    with task(4, "step", unit="row") as b:
        for _ in range(4):
            advance()
        assert b.n == 4
    err = capsys.readouterr().err
    assert "step:" in err and "4/4" in err  # not a terminal: the closed bar leaves its final state in the log
