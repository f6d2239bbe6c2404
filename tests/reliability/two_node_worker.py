"""One "node" of the two-node loopback test: build the RISE index with trainer num_nodes=2, strategy ddp.

Run as ``python two_node_worker.py <model dir> <pool.json> <index dir>`` with Lightning's multi-node
environment (MASTER_ADDR, MASTER_PORT, NODE_RANK, WORLD_SIZE, LOCAL_RANK) set by the test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from rise_exp.config.trainer import TrainerConfig
from rise_exp.data.records import Record
from tests.reliability.fault_kit import rise

if __name__ == "__main__":
    torch.set_num_threads(1)
    model_dir, pool_file, index_dir = (Path(a) for a in sys.argv[1:4])
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir)
    pool = [Record(**row) for row in json.loads(pool_file.read_text())]
    trainer = TrainerConfig(accelerator="cpu", devices=1, num_nodes=2, strategy="ddp")
    rise(model, tokenizer, index_dir, trainer=trainer).build(pool)
