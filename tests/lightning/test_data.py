"""lightning/data.py: token-budget batches (every row once, within the budget), a per-epoch shuffle that a resumed
run continues, collated loaders, and the block sampler of index builds."""

from __future__ import annotations

import numpy as np
import torch

from rise_exp.data.encoding import EncodedRow
from rise_exp.lightning.data import EMPTY_BATCH, BlockShardSampler, TokenBudgetSampler, make_loader


def _rows(lengths: list[int]) -> list[EncodedRow]:
    return [
        EncodedRow(row=i, input_ids=np.arange(1, n + 1), target_mask=np.r_[False, np.ones(n - 1, bool)])
        for i, n in enumerate(lengths)
    ]


LENGTHS = [5, 3, 9, 2, 7, 4, 8, 6]


def test_batches_hold_every_row_once_within_the_padded_token_budget():
    rows = _rows(LENGTHS)
    sampler = TokenBudgetSampler(rows, max_tokens=16)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(rows)))
    assert all(max(LENGTHS[i] for i in b) * len(b) <= 16 for b in batches)
    assert len(sampler) == len(batches)
    assert [max(LENGTHS[i] for i in b) for b in batches] == sorted(max(LENGTHS[i] for i in b) for b in batches)
    assert all(len(b) <= 2 for b in TokenBudgetSampler(rows, max_tokens=1000, max_batch=2))


def test_shuffled_epochs_differ_and_a_resumed_epoch_repeats_its_order():
    rows = _rows(LENGTHS * 3)
    sampler = TokenBudgetSampler(rows, max_tokens=12, shuffle=True, seed=3)
    epoch0, epoch1 = list(sampler), list(sampler)  # each pass counts one epoch on
    assert epoch0 != epoch1 and sorted(map(tuple, epoch0)) == sorted(map(tuple, epoch1))
    resumed = TokenBudgetSampler(rows, max_tokens=12, shuffle=True, seed=3)
    resumed.set_epoch(1)  # what Lightning does through batch_sampler.sampler after a resume
    assert resumed.sampler is resumed and list(resumed) == epoch1
    assert list(TokenBudgetSampler(rows, max_tokens=12)) == list(TokenBudgetSampler(rows, max_tokens=12))


def test_loader_yields_right_padded_collated_batches():
    rows = _rows([3, 5, 2])
    batches = list(make_loader(rows, pad_id=0, max_tokens=100))
    assert len(batches) == 1
    b = batches[0]
    assert b["input_ids"].shape == (3, 5) and sorted(b["row"].tolist()) == [0, 1, 2]
    assert b["attention_mask"].sum().item() == 10 and b["target_mask"].sum().item() == 7
    short = b["row"].tolist().index(2)
    assert b["input_ids"][short].tolist() == [1, 2, 0, 0, 0] and b["input_ids"].dtype == torch.long


def test_block_sampler_yields_the_blocks_batches_in_order_or_one_empty_batch():
    assert list(BlockShardSampler([[0, 1], [2], [3, 4, 5]])) == [0, 1, 2, 3, 4, 5]  # one process: every block
    assert len(BlockShardSampler([[0, 1], [2]])) == 3
    assert list(BlockShardSampler([])) == [EMPTY_BATCH]  # a rank without blocks still meets the barriers
