"""Resident-memory measurements: this process's high-water mark, and the peak within one run."""

from __future__ import annotations

import ctypes
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any


def process_peak_rss_mb() -> float:
    """Peak resident memory of this process image, in MiB.

    Linux: ``VmHWM`` of ``/proc/self/status``, which starts afresh at ``exec`` (``ru_maxrss`` does not:
    a child started by fork + exec inherits the parent's mark). Elsewhere falls back to ``ru_maxrss``.
    """
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        text = ""
    m = re.search(r"^VmHWM:\s+(\d+)\s+kB", text, re.M)
    if m:
        return int(m.group(1)) / 1024.0
    import resource

    per_mib = 2**20 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / per_mib


def current_rss_mb() -> float:
    """Resident memory of this process now, in MiB."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def anon_rss_mb() -> float:
    """Anonymous resident memory of this process now (what it allocated, without mapped files), in MiB.

    Linux: ``RssAnon`` of ``/proc/self/status``; elsewhere the whole resident set.
    """
    try:
        m = re.search(r"^RssAnon:\s+(\d+)\s+kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        m = None
    return int(m.group(1)) / 1024.0 if m else current_rss_mb()


_TRIM: Any = None


def release_free_memory() -> None:
    """Give the heap's freed pages back to the system (glibc ``malloc_trim``; a no-op elsewhere).

    glibc raises its mmap threshold after large frees, so big per-batch buffers come from the heap and,
    once freed, stay resident; a long index build then looks as if it grew with the pool.
    """
    global _TRIM
    if _TRIM is None:
        try:
            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


class PeakRss:
    """Context manager sampling the resident memory every ``interval`` seconds; ``peak_mb`` is the largest.

    Unlike the process high-water mark, this is the peak of one run even when a multirun executes many
    runs in the same process (a sampled peak: spikes shorter than ``interval`` can be missed).
    """

    _active: list[PeakRss] = []

    @classmethod
    def current(cls) -> PeakRss | None:
        """The innermost sampler now running (the run's), if any."""
        return cls._active[-1] if cls._active else None

    def __init__(self, interval: float = 0.05, measure: Callable[[], float] = current_rss_mb) -> None:
        self.interval, self.measure = interval, measure
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, self.measure())
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakRss:
        self.peak_mb = self.measure()
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)
        self._thread.start()
        PeakRss._active.append(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self in PeakRss._active:
            PeakRss._active.remove(self)
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, self.measure())
