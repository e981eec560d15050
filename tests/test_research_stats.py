"""The statistics that only the benchmarks (benchmarks/samplestats.py) or
only these tests (tests/research_stats.py) use, against values computed by
hand."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import research_stats

_SPEC = importlib.util.spec_from_file_location(
    "samplestats", Path(__file__).resolve().parent.parent / "benchmarks" / "samplestats.py")
samplestats = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(samplestats)


def test_ratio_of_medians():
    assert samplestats.ratio_of_medians([2, 4, 6], [1, 2, 3]) == 2.0
    assert samplestats.ratio_of_medians([1], [0]) == math.inf


def test_empty_and_nonfinite_samples_are_refused():
    with pytest.raises(ValueError, match="at least one sample"):
        samplestats.ratio_of_medians([], [1])
    with pytest.raises(ValueError, match="non-finite"):
        samplestats.ratio_of_medians([1, float("nan")], [1])


def test_bootstrap_constant_samples_give_a_point_interval():
    assert samplestats.bootstrap_ratio_ci([2.0] * 5, [1.0] * 7) == (2.0, 2.0)


def test_bootstrap_two_point_case():
    # Resamples of [1, 3] (size 2) have medians 1 (p=1/4), 2 (p=1/2), 3
    # (p=1/4); the baseline [1] always has median 1. Each tail holds 25% of
    # the mass, more than 2.5%, so the 95% interval is exactly [1, 3].
    assert samplestats.bootstrap_ratio_ci([1.0, 3.0], [1.0], n_resamples=4000, seed=1) == (1.0, 3.0)


def test_bootstrap_is_repeatable_and_seeded():
    rng = np.random.default_rng(7)
    a, b = rng.normal(2, 0.1, 20), rng.normal(1, 0.05, 20)
    assert samplestats.bootstrap_ratio_ci(a, b, seed=3) == samplestats.bootstrap_ratio_ci(a, b, seed=3)
    lo, hi = samplestats.bootstrap_ratio_ci(a, b, seed=3)
    assert lo < samplestats.ratio_of_medians(a, b) < hi


def test_bootstrap_confidence_is_checked():
    with pytest.raises(ValueError, match="between 0 and 1"):
        samplestats.bootstrap_ratio_ci([1], [1], confidence=1.5)


def test_permutation_exact_small_case():
    # Splits of {1,2,3,4} into two pairs; |median difference| per split:
    # {1,2}|{3,4}: 2, {1,3}|{2,4}: 1, {1,4}|{2,3}: 0, and the mirror images.
    # Two of six splits are at least as extreme as the observed 2.
    assert research_stats.permutation_test([1, 2], [3, 4]) == pytest.approx(2 / 6)


def test_permutation_identical_groups():
    assert research_stats.permutation_test([1, 1, 1], [1, 1, 1]) == 1.0


def test_permutation_monte_carlo_is_never_zero():
    a = np.arange(30, dtype=float)
    b = a + 100
    p = research_stats.permutation_test(a, b, n_permutations=999, seed=1)
    assert p == pytest.approx(1 / 1000)


def test_relative_half_width():
    assert samplestats.relative_half_width(2.0, (1.9, 2.1)) == pytest.approx(0.05)
    assert samplestats.relative_half_width(0.0, (0, 1)) == math.inf
