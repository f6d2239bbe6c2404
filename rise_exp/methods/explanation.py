"""Per-token explanations of a query-row score: which tokens of the query and of the row made it.

A method whose score is a sum over token pairs (RISE: a signature is a sum of per-token outer products;
BM25: a sum of term weights; RapidIn on an adapter: a gradient is a sum of per-token gradients) splits it
exactly: every query token's share and every row token's share, each side summing to the score.
:meth:`~rise_exp.methods.base.AttributionMethod.explain` returns one :class:`PairExplanation` per
(query, row); a method without such a split says why in
:meth:`~rise_exp.methods.base.AttributionMethod.explain_unavailable`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TokenShares:
    """A text as consecutive pieces (tokens or words) and each piece's share of a score.

    ``shares[i]`` is None for a piece that is not scored (context only: a masked prompt token, the first
    token, a stop word, the text between words); the scored shares sum to the explained score.
    """

    pieces: list[str]
    shares: list[float | None]

    def __post_init__(self) -> None:
        if len(self.pieces) != len(self.shares):
            raise ValueError(f"{len(self.pieces)} pieces but {len(self.shares)} shares")

    @property
    def total(self) -> float:
        """The sum of the scored shares."""
        return math.fsum(s for s in self.shares if s is not None)

    def to_json(self, digits: int = 9) -> list[list[Any]]:
        """``[[piece, share or null], ...]`` with shares rounded to ``digits`` significant digits."""
        return [[p, None if s is None else float(f"{s:.{digits}g}")] for p, s in zip(self.pieces, self.shares)]


@dataclass(frozen=True)
class PairExplanation:
    """The shares of one (query, row) score.

    Attributes:
        query: Each query piece's share of the score (summing to ``explained``).
        row: Each row piece's share of the score (summing to ``explained``).
        explained: The score the shares add up to: the method's score of the pair recomputed exactly
            (it may differ from a stored score by the index's storage rounding; the writer records both).
    """

    query: TokenShares
    row: TokenShares
    explained: float


def token_pieces(tokenizer: Any, ids: Sequence[int], window: int = 6) -> list[str]:
    """The text of each token id, such that the pieces concatenate to the decoded text.

    Each piece is what decoding one more token adds to the ``window`` tokens before it (so the cost is
    linear in the length, and tokenizers that drop a leading space of the first token decode alike); a
    token that ends inside a multi-byte character adds nothing, and the next one carries the character.
    """

    def decode(part: Sequence[int]) -> str:
        return tokenizer.decode([int(t) for t in part], skip_special_tokens=False, clean_up_tokenization_spaces=False)

    pieces: list[str] = []
    for i in range(len(ids)):
        context = ids[max(0, i - window) : i]
        before, after = decode(context).rstrip("\ufffd"), decode([*context, ids[i]])
        if after.endswith("\ufffd"):  # an incomplete UTF-8 sequence: the next token completes it
            pieces.append("")
        elif after.startswith(before):
            pieces.append(after[len(before) :])
        else:  # a decoder that rewrote the context: show the token alone
            pieces.append(decode([ids[i]]))
    return pieces
