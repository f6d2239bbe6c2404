"""A real two-node run on loopback: two processes, each its own node (NODE_RANK 0 and 1), gloo over
127.0.0.1, Lightning's multi-node environment, ``trainer.num_nodes=2 strategy=ddp``; the index they build
together is byte-identical to a one-process build."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.helpers import shard_bytes
from tests.reliability.fault_kit import manifest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_node_loopback_build_is_byte_identical(model, tiny_tokenizer, pool, clean_index, tmp_path):
    model.save_pretrained(tmp_path / "model")
    tiny_tokenizer.save_pretrained(tmp_path / "model")
    (tmp_path / "pool.json").write_text(json.dumps([dataclasses.asdict(r) for r in pool]))
    port = free_port()
    procs = []
    for node in (0, 1):
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "NODE_RANK": str(node),
            "WORLD_SIZE": "2",
            "LOCAL_RANK": "0",
            "PL_TORCH_DISTRIBUTED_BACKEND": "gloo",
            "GLOO_SOCKET_IFNAME": "lo",
            "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1",
        }
        for var in ("RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_JOB_NAME", "TORCHELASTIC_RUN_ID"):
            env.pop(var, None)
        args = [sys.executable, str(HERE / "two_node_worker.py"), str(tmp_path / "model")]
        args += [str(tmp_path / "pool.json"), str(tmp_path / "index")]
        procs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        outputs.append(out)
    for node, (p, out) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"node {node} failed:\n{out[-3000:]}"
    assert shard_bytes(tmp_path / "index") == shard_bytes(clean_index)
    got, want = manifest(tmp_path / "index"), manifest(clean_index)
    assert got == want, {k: (got.get(k), want.get(k)) for k in {*got, *want} if got.get(k) != want.get(k)}
