"""Memory measurement helpers: the anonymous-memory reading follows an allocation, the sampler keeps its peak,
and freed heap memory can be handed back."""

from __future__ import annotations

import time

import numpy as np

from rise_exp.core.rss import PeakRss, anon_rss_mb, release_free_memory


def test_anon_rss_follows_an_allocation_and_the_sampler_keeps_the_peak():
    before = anon_rss_mb()
    with PeakRss(interval=0.005, measure=anon_rss_mb) as peak:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        during = anon_rss_mb()
        time.sleep(0.2)  # a sampled peak: the block must live for a few intervals
        del block
        release_free_memory()
    assert during - before > 50
    assert peak.peak_mb >= during - 1
    assert anon_rss_mb() < during - 50  # given back: large blocks are not kept resident after the trim
