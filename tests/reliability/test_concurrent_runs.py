"""Two CLI runs started together on one fresh cache build one tokenizer and one finetune, and agree."""

from __future__ import annotations

import json

from tests.helpers import start_cli

ARGS = ["task.n_train=60", "task.n_queries=6", "finetune.epochs=1", "logger=none", "method.kr=32", "method.kh=32"]


def test_two_concurrent_runs_share_one_fresh_cache(tmp_path):
    procs = [
        start_cli(f"hydra.run.dir={tmp_path / f'run{i}'}", *ARGS, cache=tmp_path / "cache", merge_stderr=True)
        for i in (0, 1)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outs)
    log = "\n".join(outs)
    assert log.count("BPE tokenizer on") == 1, log
    assert log.count("finetuned ") == 1 and log.count("reusing cached finetune") == 1, log
    cache = tmp_path / "cache"
    assert len([p for p in (cache / "models").iterdir() if p.is_dir()]) == 1
    assert len([p for p in (cache / "finetune").iterdir() if p.is_dir()]) == 1
    metrics = [json.loads((tmp_path / f"run{i}" / "metrics.json").read_text()) for i in (0, 1)]
    timing = ("seconds", "rss")
    same = [{k: v for k, v in m.items() if not any(t in k for t in timing)} for m in metrics]
    assert same[0] == same[1] and "auprc@10" in same[0]
