"""SimHash is warned about where it answers no faster than exact search (bits >= half the width)."""

from __future__ import annotations

import logging

import numpy as np

from rise_exp.config.run_settings import SearchConfig
from rise_exp.retrieval.ann import open_searcher


def test_simhash_with_half_the_width_in_bits_is_warned(caplog):
    x = np.random.default_rng(0).standard_normal((200, 64)).astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="rise_exp.retrieval.ann"):
        open_searcher(x, SearchConfig(backend="simhash", bits=24))  # under half the width: faster than exact
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="rise_exp.retrieval.ann"):
        open_searcher(x, SearchConfig(backend="simhash", bits=32))
    (record,) = caplog.records
    message = record.getMessage()
    assert message.startswith("search.bits=32 with vectors of width 64: SimHash multiplies 32 numbers a row")
    assert message.endswith("use bits < 32") and "\n" not in message
