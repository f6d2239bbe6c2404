"""closed_loop/packing.py: blocks of exactly the block length, whole texts, a short selection cycled."""

from __future__ import annotations

import numpy as np

from rise_exp.closed_loop.packing import num_blocks, pack_blocks, pack_stream


def test_pack_blocks_exact_length_whole_texts_and_cycling():
    texts = [np.array([10, 11, 0]), np.array([20, 0]), np.array([30, 31, 32, 0])]
    stream = pack_stream(texts, [0, 1, 2], 20, seed=3)
    assert len(stream) == 20
    first = stream[:9]  # one full pass: each text exactly once, whole
    pieces = np.split(first, np.where(first == 0)[0][:-1] + 1)
    assert sorted(tuple(p) for p in pieces) == sorted(tuple(t) for t in texts)
    blocks = pack_blocks(texts, [1], n_blocks=3, block_len=4, seed=0)  # a one-text selection is cycled
    assert [b.input_ids.tolist() for b in blocks] == [[20, 0, 20, 0]] * 3
    assert all(b.target_mask.tolist() == [False, True, True, True] for b in blocks)
    assert num_blocks(1000, 0.3, 2.0, 50) == 12 and num_blocks(1000, 0.3, 2.0, 50, train_tokens=500) == 10
