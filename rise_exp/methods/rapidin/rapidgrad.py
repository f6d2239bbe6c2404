"""RapidGrad: the gradient compressor of RapidIn (Lin et al., ACL 2024).

A ``P``-dim vector is zero-padded to ``D = ceil(P / K) * K``, shuffled by ``shuffle_lambda`` cheap
structured permutations, multiplied by a fixed random sign vector and sum-pooled into ``K`` buckets of
``D / K`` consecutive entries. Each structured permutation views the vector as an ``a x (D / a)`` matrix
(``a`` a random product of prime factors of ``D``) and permutes its rows (even steps) or, viewed as
``(D / a) x a``, its columns (odd steps); their composition is a permutation of all ``D`` entries that
costs ``O(D)`` to apply and ``O(sum a)`` to store, never a ``D x D`` matrix. The map is linear, so
``<C(x), C(y)>`` is an unbiased estimate of ``<x, y>`` over the random signs, exact when ``K >= P``.
"""

from __future__ import annotations

import numpy as np
import torch

from rise_exp.core.errors import ConfigError


def prime_factors(n: int) -> list[int]:
    """Prime factors of ``n`` with multiplicity, ascending."""
    out: list[int] = []
    f = 2
    while f * f <= n:
        while n % f == 0:
            out.append(f)
            n //= f
        f += 1
    if n > 1:
        out.append(n)
    return out


class RapidGrad:
    """Seeded shuffle + sign-flip + sum-pool compressor from ``dim`` to ``k`` entries.

    Args:
        dim: Length ``P`` of the input vectors.
        k: Number of output buckets ``K``.
        shuffle_lambda: Number of structured permutations applied in turn (``method.shuffle_lambda``).
        seed: Seed of the permutations and signs (``method.seed``).
        device: Where the permutation indices and signs live.
    """

    def __init__(self, dim: int, k: int, shuffle_lambda: int, seed: int, device: torch.device | str = "cpu"):
        if dim < 1 or k < 1:
            raise ConfigError(f"RapidGrad needs dim >= 1 and k >= 1, got dim={dim}, k={k}")
        if shuffle_lambda < 0:
            raise ConfigError(f"rapidin.shuffle_lambda must be >= 0, got {shuffle_lambda}")
        self.dim, self.k, self.shuffle_lambda, self.seed = dim, k, shuffle_lambda, seed
        self.padded = -(-dim // k) * k
        rng = np.random.default_rng(seed)
        factors = prime_factors(self.padded)
        self.steps: list[tuple[int, int, torch.Tensor]] = []  # (axis, a, permutation of range(a))
        for s in range(shuffle_lambda):
            if len(factors) >= 2:
                size = int(rng.integers(1, len(factors)))
                a = int(np.prod(rng.permutation(factors)[:size], dtype=np.int64))
            else:
                a = self.padded
            self.steps.append((s % 2, a, torch.from_numpy(rng.permutation(a)).to(device)))
        signs = rng.integers(0, 2, size=self.padded, dtype=np.int8) * 2 - 1
        self.signs = torch.from_numpy(signs.astype(np.float32)).to(device)

    def __call__(self, vecs: torch.Tensor) -> torch.Tensor:
        """Compress ``[B, dim]`` (or ``[dim]``) float vectors to ``[B, k]`` (or ``[k]``)."""
        squeeze = vecs.dim() == 1
        x = vecs.unsqueeze(0) if squeeze else vecs
        if x.shape[-1] != self.dim:
            raise ValueError(f"RapidGrad built for dim {self.dim}, got vectors of dim {x.shape[-1]}")
        x = x.to(self.signs.device, torch.float32)
        if self.padded > self.dim:
            x = torch.nn.functional.pad(x, (0, self.padded - self.dim))
        b = x.shape[0]
        for axis, a, perm in self.steps:
            if axis == 0:
                x = x.reshape(b, a, -1)[:, perm, :]
            else:
                x = x.reshape(b, -1, a)[:, :, perm]
        x = x.reshape(b, self.padded) * self.signs
        out = x.reshape(b, self.k, self.padded // self.k).sum(dim=-1)
        return out[0] if squeeze else out
