"""Datasets and loaders over encoded rows, batched by a token budget."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from torch.utils.data import DataLoader, Dataset, Sampler

from rise_exp.data.encoding import EncodedRow, collate, token_budget_batches


class EncodedDataset(Dataset):
    """A list of :class:`EncodedRow` as a map-style dataset."""

    def __init__(self, rows: Sequence[EncodedRow]) -> None:
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> EncodedRow:
        return self.rows[i]


class TokenBudgetSampler(Sampler[list[int]]):
    """Length-sorted batches of at most ``max_tokens`` padded tokens; batch order shuffled per epoch if asked."""

    def __init__(self, rows: Sequence[EncodedRow], max_tokens: int, *, shuffle: bool = False, seed: int = 0,
                 max_batch: int = 256) -> None:
        self.batches = token_budget_batches(rows, max_tokens, max_batch=max_batch)
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0

    def _shard(self, order: list[int]) -> list[int]:
        """Under DDP each rank takes every ``world``-th batch (``use_distributed_sampler=False``)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            world, rank = dist.get_world_size(), dist.get_rank()
            order = order + order[: (-len(order)) % world]  # pad so every rank gets the same count
            return order[rank::world]
        return order

    def __iter__(self) -> Iterator[list[int]]:
        order = list(range(len(self.batches)))
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(order)
            self.epoch += 1
        for i in self._shard(order):
            yield self.batches[i]

    def __len__(self) -> int:
        return len(self._shard(list(range(len(self.batches)))))


def make_loader(rows: Sequence[EncodedRow], pad_id: int, max_tokens: int, *, shuffle: bool = False,
                seed: int = 0, num_workers: int = 0) -> DataLoader:
    """A DataLoader yielding collated token-budget batches (see :func:`rise_exp.data.encoding.collate`)."""
    ds = EncodedDataset(rows)
    sampler = TokenBudgetSampler(ds.rows, max_tokens, shuffle=shuffle, seed=seed)
    return DataLoader(ds, batch_sampler=sampler, collate_fn=lambda b: collate(b, pad_id), num_workers=num_workers)


class RankShardSampler(Sampler[int]):
    """Indices ``0..n-1``, every ``world``-th one per DDP rank, without padding (for prediction only:
    unequal shares are fine there, and duplicated rows would be written to an index twice)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def _mine(self) -> range:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return range(dist.get_rank(), self.n, dist.get_world_size())
        return range(self.n)

    def __iter__(self) -> Iterator[int]:
        return iter(self._mine())

    def __len__(self) -> int:
        return len(self._mine())
