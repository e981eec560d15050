"""A permutation test of two independent groups: research only (no part of
the plugin or the benchmarks uses it), kept with its tests in
tests/test_research_stats.py."""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np

DEFAULT_PERMUTATIONS = 10000


def permutation_test(a: Sequence[float], b: Sequence[float], *,
                     n_permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0) -> float:
    """Two-sided p-value for "a and b come from one distribution", on the
    absolute difference of medians.

    Exact (every split of the pooled samples) when there are at most
    ``n_permutations`` splits; otherwise Monte Carlo with the (k+1)/(n+1)
    estimate, so a p-value is never 0.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("permutation_test needs finite samples in both groups")
    pooled = np.concatenate([x, y])
    n, k = pooled.size, x.size
    observed = abs(np.median(x) - np.median(y))
    tol = 1e-12 * max(1.0, abs(observed))
    n_splits = math.comb(n, k)
    if n_splits <= n_permutations:
        hits = 0
        idx = np.arange(n)
        for chosen in itertools.combinations(range(n), k):
            mask = np.zeros(n, dtype=bool)
            mask[list(chosen)] = True
            stat = abs(np.median(pooled[mask]) - np.median(pooled[idx[~mask]]))
            hits += stat >= observed - tol
        return hits / n_splits
    rng = np.random.default_rng(seed)
    perms = rng.permuted(np.tile(pooled, (n_permutations, 1)), axis=1)
    stats = np.abs(np.median(perms[:, :k], axis=1) - np.median(perms[:, k:], axis=1))
    hits = int(np.count_nonzero(stats >= observed - tol))
    return (hits + 1) / (n_permutations + 1)
