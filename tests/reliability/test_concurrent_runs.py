"""Two CLI runs started together on one fresh cache build one tokenizer and one finetune, and agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers import ROOT

ARGS = ["task.n_train=60", "task.n_queries=6", "finetune.epochs=1", "logger=none", "method.kr=32", "method.kh=32"]


def test_two_concurrent_runs_share_one_fresh_cache(tmp_path):
    env = dict(os.environ, RISE_EXP_CACHE=str(tmp_path / "cache"), WANDB_MODE="offline", HF_HUB_OFFLINE="1")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "rise_exp", f"hydra.run.dir={tmp_path / f'run{i}'}", *ARGS],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
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
