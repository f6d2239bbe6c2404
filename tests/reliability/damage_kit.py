"""Ways to damage a file of a cache entry, one list for the whole fault suite.

``delete``, ``truncate`` (to half), ``random_bytes`` (1,000 random bytes in place of the file),
``garbage_mid`` (4 KiB of garbage in the middle, same size), ``noise`` (valid-looking: 5% noise on every
tensor of a safetensors / npy file, a changed digit of a text file; same size) and ``same_stamp`` (other
bytes of the same size with the modification time restored, as ``touch -r`` does).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np


def delete(path: Path) -> None:
    path.unlink()


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(1000))


def garbage_mid(path: Path) -> None:
    data = bytearray(path.read_bytes())
    n = min(4096, len(data))
    start = (len(data) - n) // 2
    data[start : start + n] = np.random.default_rng(1).bytes(n)
    path.write_bytes(bytes(data))


def noise(path: Path) -> None:
    """Valid-looking change of the same size: the file still parses."""
    size = path.stat().st_size
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import save

        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata()
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        noisy = {k: t * 1.05 if t.is_floating_point() else t for k, t in tensors.items()}
        path.write_bytes(save(noisy, metadata=metadata))  # in place: the same inode
    elif path.suffix == ".npy":
        a = np.load(path)
        np.save(path, (a * 1.05 + 0.01).astype(a.dtype))
    else:
        text = path.read_bytes()
        i = next(i for i in range(len(text) // 2, len(text)) if chr(text[i]).isdigit() or chr(text[i]).isalpha())
        swapped = b"7" if chr(text[i]).isdigit() and text[i] != ord("7") else b"x" if text[i] != ord("x") else b"y"
        path.write_bytes(text[:i] + swapped + text[i + 1 :])
    assert path.stat().st_size == size, f"noise changed the size of {path}"


def same_stamp(path: Path) -> None:
    """Other bytes of the same size, the timestamps restored (``touch -r``)."""
    st = path.stat()
    noise(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


DAMAGES: dict[str, Callable[[Path], None]] = {
    "delete": delete,
    "truncate": truncate,
    "random_bytes": random_bytes,
    "garbage_mid": garbage_mid,
    "noise": noise,
    "same_stamp": same_stamp,
}
