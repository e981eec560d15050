"""Descriptive statistics of independent samples that only the benchmark
scripts use (moved out of the plugin's package, whose verdicts rest on the
paired, process-aware estimate of :mod:`pytest_virtoverhead.judge.stats`):

- :func:`ratio_of_medians`: ``median(env) / median(baseline)``;
- :func:`bootstrap_ratio_ci`: its percentile bootstrap interval;
- :func:`relative_half_width`: half an interval's width over the ratio.

Every random draw takes an explicit seed so a run can be repeated.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from pytest_virtoverhead.judge.stats import as_array

DEFAULT_RESAMPLES = 5000


def ratio_of_medians(env: Sequence[float], baseline: Sequence[float]) -> float:
    """median(env) / median(baseline); inf when the baseline median is 0."""
    num = float(np.median(as_array(env, "median")))
    den = float(np.median(as_array(baseline, "median")))
    if den == 0:
        return math.inf if num > 0 else math.nan
    return num / den


def bootstrap_ratio_ci(env: Sequence[float], baseline: Sequence[float], *,
                       confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``median(env) / median(baseline)``."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    a = as_array(env, "the environment")
    b = as_array(baseline, "the baseline")
    rng = np.random.default_rng(seed)
    med_a = np.median(a[rng.integers(0, a.size, size=(n_resamples, a.size))], axis=1)
    med_b = np.median(b[rng.integers(0, b.size, size=(n_resamples, b.size))], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = med_a / med_b
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(ratios, [alpha, 1 - alpha])
    return float(lo), float(hi)


def relative_half_width(ratio: float, ci: tuple[float, float]) -> float:
    """Half the interval's width relative to the ratio (0.02 = +-2%)."""
    if not ratio or not math.isfinite(ratio):
        return math.inf
    return (ci[1] - ci[0]) / 2 / ratio
