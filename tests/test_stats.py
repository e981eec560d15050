"""Statistics against values computed by hand."""

import json
import math

import numpy as np
import pytest
from virthelp import evaluated

from pytest_virtoverhead.judge import robust, stats, textfmt
from pytest_virtoverhead.render import markdown
from pytest_virtoverhead.render.report import claim_lines, table_lines
from pytest_virtoverhead.results import run_document


def test_median():
    assert stats.median([3, 1, 2]) == 2
    assert stats.median([4, 1, 3, 2]) == 2.5


def test_empty_and_nonfinite_samples_are_refused():
    with pytest.raises(ValueError, match="at least one sample"):
        stats.median([])
    with pytest.raises(ValueError, match="non-finite"):
        stats.median([1, float("nan")])


def test_summarize():
    s = stats.summarize([1, 2, 3, 4])
    assert s["n"] == 4 and s["median"] == 2.5 and s["mean"] == 2.5
    assert s["min"] == 1 and s["max"] == 4
    assert s["stdev"] == pytest.approx(math.sqrt(5 / 3))
    assert s["iqr"] == pytest.approx(1.5)  # quartiles 1.75 and 3.25


# --------------------------------------------------------------------------
# the round-level, process-aware estimate


def test_t_quantiles_match_tables():
    # Student's t tables: t(0.975; df)
    for df, value in ((1, 12.7062), (3, 3.1824), (5, 2.5706), (10, 2.2281), (30, 2.0423)):
        assert stats.t_quantile(0.975, df) == pytest.approx(value, abs=1e-4)
    assert stats.t_quantile(0.975, math.inf) == pytest.approx(1.95996, abs=1e-5)
    assert stats.t_quantile(0.995, 4) == pytest.approx(4.6041, abs=1e-4)
    assert stats.t_sf2(2.0, 5) == pytest.approx(0.10194, abs=1e-5)


#: What the package's own Student's t (an incomplete beta by its continued
#: fraction, the quantile by bisection; replaced by scipy.stats.t) gave.
HAND_T_QUANTILES = {(1, 0.9): 3.0776835371752895, (1, 0.995): 63.65674116284936, (2, 0.975): 4.302652729749752,
                    (3.5, 0.9): 1.576576605136779, (3.5, 0.995): 5.085702223090266, (7, 0.975): 2.3646242515924314,
                    (29.3, 0.975): 2.044320421499833, (1000, 0.995): 2.5807546980659026}
HAND_T_TAILS = {(1, 1.0): 0.5000000000000004, (4, 2.776): 0.050022778319976424, (5, 2.0): 0.10193947882985835,
                (12.5, -1.3): 0.2170620106342881, (60, 3.1): 0.002945748669367593}


def test_scipy_t_agrees_with_the_former_hand_formula():
    for (df, p), value in HAND_T_QUANTILES.items():
        assert stats.t_quantile(p, df) == pytest.approx(value, rel=1e-9)
    for (df, t), value in HAND_T_TAILS.items():
        assert stats.t_sf2(t, df) == pytest.approx(value, rel=1e-9)
        assert stats.t_sf(abs(t), df) == pytest.approx(value / 2, rel=1e-9)
        assert stats.t_sf(-abs(t), df) == pytest.approx(1 - value / 2, rel=1e-9)
    with pytest.raises(ValueError):
        stats.t_quantile(0.4, 5)
    with pytest.raises(ValueError):
        stats.t_quantile(0.975, 0)
    assert math.isnan(stats.t_sf2(math.nan, 5)) and math.isnan(stats.t_sf2(1.0, 0))


def test_paired_log_ratios():
    d = stats.paired_log_ratios([2.0, 3.0], [1.0, 3.0])
    assert list(d) == pytest.approx([math.log(2), 0.0])
    with pytest.raises(ValueError, match="differ in number"):
        stats.paired_log_ratios([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        stats.paired_log_ratios([0.0], [1.0])


# Robust within-cluster scale of [x-0.1, x, x+0.1] twice: residuals from the
# cluster medians -0.1, 0, 0.1, -0.1, 0, 0.1; MAD 0.1; sigma = 1.4826 * 0.1 *
# sqrt(6 / 4); a cluster median's variance sigma^2 * (pi / 2) / 3.
_SIGMA = 1.4826 * 0.1 * math.sqrt(6 / 4)
# the variance of a median of 3 normal values: 1.346 sigma^2 / 3 (pi/2 for many)
_WITHIN = _SIGMA ** 2 * 1.346 / 3


def test_cluster_estimate_uses_the_cluster_medians_when_processes_differ():
    # Cluster medians 0.2 and 0.6 (theta 0.4); their variance 0.08 exceeds
    # what the rounds' own spread explains (0.0148): G - 1 = 1 degree of freedom.
    e = stats.cluster_estimate([0.1, 0.2, 0.3, 0.5, 0.6, 0.7], [1, 1, 1, 2, 2, 2])
    assert _WITHIN == pytest.approx(0.014794, abs=1e-6)
    assert e.theta == pytest.approx(0.4)
    assert e.se == pytest.approx(math.sqrt(0.08 / 2))
    assert e.df == 1 and e.method == "processes"
    assert e.lo == pytest.approx(0.4 - 12.7062 * 0.2, abs=1e-3)
    assert e.ratio == pytest.approx(math.exp(0.4))


def test_cluster_estimate_pools_when_processes_do_not_differ():
    # Cluster medians equal (0.1 and 0.1): no process effect; the rounds'
    # robust spread gives the variance, with N - G = 4 degrees of freedom.
    e = stats.cluster_estimate([0.0, 0.1, 0.2, 0.2, 0.1, 0.0], [1, 1, 1, 2, 2, 2])
    assert e.theta == pytest.approx(0.1)
    assert e.se == pytest.approx(math.sqrt(_WITHIN / 2))
    assert e.df == 4 and e.method.startswith("processes (pooled")


def test_one_wild_round_barely_moves_the_estimate():
    # A round thrown 25% off (a burst of noise) in one cluster: the median
    # keeps the estimate and the interval where the other rounds put them.
    calm = [0.0, 0.01, -0.01] * 4
    wild = calm[:]
    wild[0] = 0.25
    labels = [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    a, b = stats.cluster_estimate(calm, labels), stats.cluster_estimate(wild, labels)
    assert abs(b.theta - a.theta) < 0.005 and b.hi < 0.03


def test_difference_is_welch():
    a = stats.Estimate(0.10, 0.03, 3.0, 0, 0, 4, 12, 0.95, "processes")
    b = stats.Estimate(0.15, 0.04, 3.0, 0, 0, 4, 12, 0.95, "processes")
    d = stats.difference(a, b)
    assert d.theta == pytest.approx(0.05) and d.se == pytest.approx(0.05)
    # Welch-Satterthwaite: 0.05^4 / (0.03^4/3 + 0.04^4/3)
    assert d.df == pytest.approx(0.05 ** 4 / (0.03 ** 4 / 3 + 0.04 ** 4 / 3))


def test_rounds_needed():
    e = stats.Estimate(0.0, 0.01, 11.0, -0.022, 0.022, 4, 12, 0.95, "processes")
    z = 1.959964
    # The interval (at large df) must shrink from z*se to the gap log(1.01).
    assert stats.rounds_needed(e, 1.01) == pytest.approx(12 * (z * 0.01 / math.log(1.01)) ** 2, rel=1e-5)
    assert stats.rounds_needed(e, 1.0) == math.inf


def _coverage(effect_sd, processes, per_process, trials, rng, shift=0.0, bimodal=False):
    hits = 0
    labels = np.repeat(np.arange(processes), per_process)
    for _ in range(trials):
        proc = rng.normal(0, effect_sd, processes)
        noise = rng.normal(0, 0.02, processes * per_process)
        if bimodal:  # half the rounds land 6% slower (a second timing mode), in both environments alike
            env = rng.integers(0, 2, noise.size) * 0.06
            base = rng.integers(0, 2, noise.size) * 0.06
            noise = noise + env - base
        d = shift + proc[labels] + noise
        e = stats.cluster_estimate(d, labels)
        hits += e.lo <= shift <= e.hi
    return hits / trials


@pytest.mark.parametrize("effect_sd", [0.0, 0.01, 0.04])
def test_interval_covers_a_known_truth_with_a_process_effect(effect_sd):
    # 4 processes x 3 rounds, round noise 2%, process effect none to twice it:
    # a 95% interval covers the true log ratio (here 0.05, a paired effect)
    # in 93-99% of 1500 simulated runs.
    rng = np.random.default_rng(11)
    cov = _coverage(effect_sd, 4, 3, 1500, rng, shift=0.05)
    assert 0.93 <= cov <= 0.995


def test_pooling_samples_as_independent_would_not_cover():
    # The old method's failure, reproduced: rounds treated as independent
    # draws, ignoring a process effect twice the round noise, cover far too
    # little; the cluster estimate above does not.
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(1000):
        proc = rng.normal(0, 0.04, 4)
        d = proc[np.repeat(np.arange(4), 3)] + rng.normal(0, 0.02, 12)
        e = stats.cluster_estimate(d)  # one cluster: rounds as units
        hits += e.lo <= 0 <= e.hi
    assert hits / 1000 < 0.85


def test_interval_covers_with_bimodal_rounds():
    rng = np.random.default_rng(3)
    assert 0.93 <= _coverage(0.0, 4, 5, 1500, rng, bimodal=True) <= 0.995


def test_interval_covers_when_bursts_throw_rounds_off():
    # 10% of rounds thrown 20% either way (a shared machine's bursts): the
    # robust interval still covers a known paired effect of 3%, and stays
    # narrow (median half-width under 3%).
    rng = np.random.default_rng(8)
    labels = np.repeat(np.arange(4), 3)
    hits, widths = 0, []
    for _ in range(1500):
        d = 0.03 + rng.normal(0, 0.02, 12) + (rng.random(12) < 0.1) * rng.choice([-0.2, 0.2], 12)
        e = stats.cluster_estimate(d, labels)
        hits += e.lo <= 0.03 <= e.hi
        widths.append(e.half_width)
    assert 0.93 <= hits / 1500 <= 0.995
    assert float(np.median(widths)) < 0.03


def test_trimmed_mean_by_hand():
    # 10 values, 20% trimmed: g = 2 from each end, h = 6 kept (3..8), mean
    # 5.5; winsorized [3,3,3,4,5,6,7,8,8,8]: squared deviations from 5.5 sum
    # to 42.5, s_w^2 = 42.5 / 9; se^2 = 9 * s_w^2 / (6 * 5) = 42.5 / 30.
    mean, var, df = robust.trimmed_mean([1, 2, 3, 4, 100, 5, 6, 7, 8, 9])
    assert mean == pytest.approx(5.5) and var == pytest.approx(42.5 / 30) and df == 5
    # below 5 values nothing is trimmed: the plain mean, s^2 / n, n - 1
    mean, var, df = robust.trimmed_mean([1.0, 2.0, 3.0, 6.0])
    assert mean == pytest.approx(3.0) and var == pytest.approx((14 / 3) / 4) and df == 3
    with pytest.raises(ValueError):
        robust.trimmed_mean([1.0])


def test_one_slow_process_does_not_move_the_estimate():
    # 12 processes, one round each: eleven agree on +2%, one process (an
    # unlucky memory layout) runs 30% slower. The trimmed estimate stays at
    # +2% with a narrow interval; a plain mean would sit at +4.3%.
    d = np.log(np.array([1.02, 1.021, 1.019, 1.02, 1.022, 1.018, 1.02, 1.021, 1.019, 1.02, 1.02, 1.3]))
    e = stats.cluster_estimate(d, np.arange(12))
    assert e.method == "processes (one round each) (trimmed)" and e.df == 7
    assert e.ratio == pytest.approx(1.02, abs=0.001)
    assert e.ci[0] > 1.015 and e.ci[1] < 1.025


def test_one_round_per_process_covers_with_bursts():
    # The default shape (12 processes, one round each), process effect equal
    # to the round noise (2%) and 10% of rounds thrown 20% off: the trimmed
    # interval covers a known effect of 3% in 93-99% of runs and its median
    # half-width stays under 2.5% (an untrimmed mean's is about 4%).
    rng = np.random.default_rng(21)
    labels = np.arange(12)
    hits, widths = 0, []
    for _ in range(1500):
        d = (0.03 + rng.normal(0, 0.02, 12) + rng.normal(0, 0.02, 12)
             + (rng.random(12) < 0.1) * rng.choice([-0.2, 0.2], 12))
        e = stats.cluster_estimate(d, labels)
        hits += e.lo <= 0.03 <= e.hi
        widths.append(e.half_width)
    assert 0.93 <= hits / 1500 <= 0.99
    assert float(np.median(widths)) < 0.025


def test_small_sample_median_variance_factors():
    # n * Var(median of n) for standard normal samples, by simulation: the
    # table the pooled branch uses (1 for one or two values, pi/2 for many).
    rng = np.random.default_rng(2)
    for n in range(1, 11):
        x = rng.standard_normal((100_000, n))
        assert robust.median_variance(n) == pytest.approx(n * float(np.median(x, axis=1).var()), rel=0.03)
    assert robust.median_variance(50) == pytest.approx(math.pi / 2)


# -- edge cases, on judged claims ----------------------------------------------
#
# An absolute claim's interval never goes below zero; one round gives no
# p-value (null, not 0); a confidence level keeps its digits.

MS = 1e-3


def test_absolute_claim_interval_stays_above_zero():
    # Two processes, one round each, 1.0 and 2.6 ms: the linear t interval
    # was 1.8 +- 12.706 * 0.8 ms = [-8.36, 11.96] ms (below zero, so a
    # claim "<= 3 us" was inconclusive). On the log scale: geometric mean
    # sqrt(1.0 * 2.6) = 1.61245 ms, se of the log = ln(2.6) / 2 = 0.477756,
    # interval 1.61245 ms * 2.6 ** (+-12.706205 / 2), 2.6 ** 6.353103 = 432.88:
    # [3.7249e-6, 0.69800] s.
    res = evaluated(["control <= 3 us"], {"baremetal": [1 * MS, 1 * MS], "control": [1.0 * MS, 2.6 * MS]}, 2)
    (c,) = res.claims
    assert c.ratio == pytest.approx(1.61245 * MS, rel=1e-5)
    assert c.ci == pytest.approx((3.7249e-6, 0.69800), rel=1e-4)
    assert c.ci[0] > 0
    # Every value is ~500 times the bound: the whole interval violates it.
    assert c.verdict == "fail"


def test_time_scale_falls_back_to_linear_for_values_that_are_not_positive():
    est = stats.cluster_estimate([-1.0, 1.0, 3.0], confidence=0.95, scale=stats.TIME)
    assert est.scale == stats.LINEAR and est.ratio == 1.0


def test_one_round_has_no_p_value_and_no_interval():
    res = evaluated(["control <= 1.05 * baremetal"], {"baremetal": [10 * MS], "control": [11 * MS]}, 1)
    (c,) = res.claims
    assert c.ratio == pytest.approx(1.1)
    assert all(math.isnan(x) for x in c.ci)
    assert c.p_value is None or math.isnan(c.p_value)  # before: 0.0 ("p=0")
    assert c.verdict == "inconclusive"
    assert ", p=" not in "\n".join(claim_lines([res], False))
    doc = run_document([res], {}, seed=1, baseline="baremetal", rounds=1).to_json()
    (claim,) = json.loads(json.dumps(doc))["claims"]
    assert claim["p_value"] is None and claim["ci"] == [None, None]


def test_zero_spread_keeps_its_exact_p_value():
    est = stats.cluster_estimate([0.1, 0.1, 0.1], confidence=0.95)
    assert est.se == 0 and est.p_value == 0.0


@pytest.mark.parametrize("confidence, text", [(0.95, "95%"), (0.999, "99.9%"), (0.9999, "99.99%"),
                                              (0.9, "90%"), (0.995, "99.5%")])
def test_confidence_level_keeps_its_digits(confidence, text):
    assert textfmt.level_text(confidence) == text


def test_confidence_999_is_not_shown_as_100_percent():
    res = evaluated(["control <= 2 * baremetal"],
                    {"baremetal": [10 * MS] * 4, "control": [11 * MS, 12 * MS, 11 * MS, 12 * MS]}, 4, 0.999)
    table = "\n".join(table_lines([res], {}, confidence=0.999))
    assert "99.9% CI" in table and "100% CI" not in table
    (c,) = res.claims
    assert "99.9% CI" in c.message()
    doc = run_document([res], {}, seed=1, baseline="baremetal", rounds=4,
                       statistics={"confidence": 0.999}).to_json()
    md = markdown.render(doc)
    assert "99.9% CI" in md and "99.9% intervals" in md and "100%" not in md
