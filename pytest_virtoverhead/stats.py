"""Statistics of a comparison, as pure numpy functions.

- the ratio of medians (environment time / baseline time),
- its percentile-bootstrap confidence interval, resampling each group
  independently (the two groups are independent samples),
- a permutation test of the difference of medians (exact when the number of
  splits is small, Monte Carlo otherwise).

Every random draw takes an explicit seed so a run can be repeated. Imports
neither pytest, docker nor libvirt.
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence


class _LazyNumpy:
    """numpy, imported on first use. The plugin loads this module (through
    session and report) in every pytest run, and importing numpy takes ~0.1 s,
    which a run without --virt-compare must not pay."""

    def __getattr__(self, name: str):
        import numpy

        globals()["np"] = numpy
        return getattr(numpy, name)


np = _LazyNumpy()

DEFAULT_RESAMPLES = 5000
DEFAULT_PERMUTATIONS = 10000


def _array(samples: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray(samples, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what} needs at least one sample")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains a non-finite sample")
    return arr


def median(samples: Sequence[float]) -> float:
    return float(np.median(_array(samples, "median")))


def ratio_of_medians(env: Sequence[float], baseline: Sequence[float]) -> float:
    """median(env) / median(baseline); inf when the baseline median is 0."""
    num = median(env)
    den = median(baseline)
    if den == 0:
        return math.inf if num > 0 else math.nan
    return num / den


def bootstrap_ratio_ci(env: Sequence[float], baseline: Sequence[float], *,
                       confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``median(env) / median(baseline)``."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    a = _array(env, "the environment")
    b = _array(baseline, "the baseline")
    rng = np.random.default_rng(seed)
    med_a = np.median(a[rng.integers(0, a.size, size=(n_resamples, a.size))], axis=1)
    med_b = np.median(b[rng.integers(0, b.size, size=(n_resamples, b.size))], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = med_a / med_b
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(ratios, [alpha, 1 - alpha])
    return float(lo), float(hi)


def permutation_test(a: Sequence[float], b: Sequence[float], *,
                     n_permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0) -> float:
    """Two-sided p-value for "a and b come from one distribution", on the
    absolute difference of medians.

    Exact (every split of the pooled samples) when there are at most
    ``n_permutations`` splits; otherwise Monte Carlo with the (k+1)/(n+1)
    estimate, so a p-value is never 0.
    """
    x = _array(a, "the first group")
    y = _array(b, "the second group")
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


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Descriptive statistics of one group of samples."""
    arr = _array(samples, "summarize")
    q1, q3 = np.quantile(arr, [0.25, 0.75])
    return {
        "n": int(arr.size),
        "median": float(np.median(arr)),
        "mean": float(arr.mean()),
        "stdev": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        "min": float(arr.min()),
        "max": float(arr.max()),
        "iqr": float(q3 - q1),
    }


def relative_half_width(ratio: float, ci: tuple[float, float]) -> float:
    """Half the interval's width relative to the ratio (0.02 = +-2%)."""
    if not ratio or not math.isfinite(ratio):
        return math.inf
    return (ci[1] - ci[0]) / 2 / ratio
