"""Datasets and loaders over encoded rows, batched by a token budget and sharded per rank."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from torch.utils.data import DataLoader, Dataset, Sampler

from rise_exp.data.encoding import EncodedRow, collate, token_budget_batches
from rise_exp.lightning.sharding import rank_share


class EncodedDataset(Dataset):
    """A list of :class:`EncodedRow` as a map-style dataset."""

    def __init__(self, rows: Sequence[EncodedRow]) -> None:
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> EncodedRow:
        return self.rows[i]


class TokenBudgetSampler(Sampler[list[int]]):
    """Length-sorted batches of at most ``max_tokens`` padded tokens; batch order shuffled per epoch if asked.

    Under DDP each rank takes its padded share (:func:`rank_share`), so every rank steps equally often.
    """

    def __init__(
        self, rows: Sequence[EncodedRow], max_tokens: int, *, shuffle: bool = False, seed: int = 0, max_batch: int = 256
    ) -> None:
        self.batches = token_budget_batches(rows, max_tokens, max_batch=max_batch)
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next pass yields; without calls, each pass counts one epoch on."""
        self.epoch = epoch

    @property
    def sampler(self) -> TokenBudgetSampler:
        """Itself: Lightning calls ``set_epoch`` on ``batch_sampler.sampler`` before every epoch, so a run
        resumed from a checkpoint continues the shuffling where it stopped."""
        return self

    def __iter__(self) -> Iterator[list[int]]:
        order = list(range(len(self.batches)))
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(order)
            self.epoch += 1
        for i in rank_share(order, pad=True):
            yield self.batches[i]

    def __len__(self) -> int:
        return len(rank_share(range(len(self.batches)), pad=True))


def make_loader(
    rows: Sequence[EncodedRow],
    pad_id: int,
    max_tokens: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader yielding collated token-budget batches (see :func:`rise_exp.data.encoding.collate`)."""
    ds = EncodedDataset(rows)
    sampler = TokenBudgetSampler(ds.rows, max_tokens, shuffle=shuffle, seed=seed)
    return DataLoader(ds, batch_sampler=sampler, collate_fn=lambda b: collate(b, pad_id), num_workers=num_workers)


#: The sampler index of an empty batch (a rank without blocks).
EMPTY_BATCH = -1


class BlockShardSampler(Sampler[int]):
    """Batch indices of this rank's blocks: every ``world``-th block from ``rank``, block after block.

    ``blocks`` lists the batch indices of each block (the same list on every rank). A rank without
    blocks yields one :data:`EMPTY_BATCH`, so that every rank runs the prediction hooks and meets
    their barriers (Lightning skips the prediction loop of an empty loader).
    """

    def __init__(self, blocks: Sequence[Sequence[int]]) -> None:
        self.blocks = [list(b) for b in blocks]

    def _mine(self) -> list[int]:
        return [i for block in rank_share(self.blocks, pad=False) for i in block] or [EMPTY_BATCH]

    def __iter__(self) -> Iterator[int]:
        return iter(self._mine())

    def __len__(self) -> int:
        return len(self._mine())
