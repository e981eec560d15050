"""Statistics of a comparison, as pure numpy functions.

The verdict engine (see docs/verdicts.md):

- :func:`paired_log_ratios`: one log ratio per round, environment over
  baseline, from the two environments' summaries of the same round;
- :func:`cluster_estimate`: the log ratio and its confidence interval with
  the worker process (pair) as the cluster, from a one-way random effects
  model with robust (median, MAD) summaries, so variation between processes
  is inside the interval and a burst of noise in one round is not;
- :func:`difference`: the change between two such estimates (two saved
  runs), Welch-Satterthwaite;
- :func:`rounds_needed`: how many rounds an inconclusive claim would need.

Older helpers (ratio of medians, percentile bootstrap of independent
samples, permutation test) serve descriptive figures only.

Every random draw takes an explicit seed so a run can be repeated. Imports
neither pytest, docker nor libvirt.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import numpy


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


def _array(samples: Sequence[float], what: str) -> numpy.ndarray:
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


# --------------------------------------------------------------------------
# Student's t, written out because numpy has none and scipy is not a
# dependency: the regularized incomplete beta function by its continued
# fraction (modified Lentz), and the quantile by bisection on the CDF.


def _betacf(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_sf2(t: float, df: float) -> float:
    """Two-sided tail P(|T| >= |t|) of Student's t with ``df`` degrees of freedom."""
    if math.isnan(t) or not df > 0:
        return math.nan
    if math.isinf(df):
        return 2 * (1 - NormalDist().cdf(abs(t)))
    return _betainc(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t with ``df`` degrees of freedom."""
    if not 0.5 < p < 1:
        raise ValueError("t_quantile: p must be between 0.5 and 1")
    if not df > 0:
        raise ValueError("t_quantile: needs at least one degree of freedom")
    if math.isinf(df) or df > 1e7:
        return NormalDist().inv_cdf(p)
    tail = 2 * (1 - p)
    lo, hi = 0.0, 1.0
    while t_sf2(hi, df) > tail:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_sf2(mid, df) > tail:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


# --------------------------------------------------------------------------
# the round-level, process-aware estimate


@dataclass(frozen=True)
class Estimate:
    """A log ratio with its interval (all on the log scale).

    ``theta`` is the mean over clusters of each cluster's median log ratio;
    ``se`` its standard error, ``df`` the degrees of freedom of the t
    interval ``[lo, hi]``; ``n_clusters`` processes (or rounds when the run
    had one process), ``n`` rounds. ``method`` says which.
    """

    theta: float
    se: float
    df: float
    lo: float
    hi: float
    n_clusters: int
    n: int
    confidence: float
    method: str
    #: ``log``: theta is a log ratio (``ratio`` and ``ci`` exponentiate
    #: it); ``linear``: theta is the quantity itself (seconds, for the
    #: fixed-cost and absolute claims), ``ratio`` and ``ci`` are theta and
    #: the interval as they are.
    scale: str = "log"

    @property
    def ratio(self) -> float:
        """The estimate on its own scale: a ratio (log scale) or seconds (linear)."""
        return self.theta if self.scale == LINEAR else _exp(self.theta)

    @property
    def ci(self) -> tuple[float, float]:
        if self.scale == LINEAR:
            return self.lo, self.hi
        return _exp(self.lo), _exp(self.hi)

    @property
    def half_width(self) -> float:
        """Half the interval's width on the log scale (0.02 ~ +-2%)."""
        return (self.hi - self.lo) / 2

    @property
    def p_value(self) -> float:
        """Two-sided p-value of "the ratio is 1" from the same t statistic."""
        if not (self.se > 0):
            return math.nan if math.isnan(self.theta) else (1.0 if self.theta == 0 else 0.0)
        return t_sf2(self.theta / self.se, self.df)


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


NAN_ESTIMATE_METHOD = "none"
#: Estimate.scale of an estimate of a time (seconds), not of a log ratio.
LINEAR = "linear"


def paired_log_ratios(env_values: Sequence[float], base_values: Sequence[float]) -> numpy.ndarray:
    """log(env / base) per round, for rounds paired by position."""
    a = _array(env_values, "the environment's rounds")
    b = _array(base_values, "the baseline's rounds")
    if a.size != b.size:
        raise ValueError(f"paired rounds differ in number: {a.size} and {b.size}")
    if np.any(a <= 0) or np.any(b <= 0):
        raise ValueError("round summaries must be positive times to take a ratio")
    return np.log(a) - np.log(b)


#: Normal-consistent MAD: sigma = MAD_SCALE * median(|x - median|).
MAD_SCALE = 1.4826
#: Large-sample variance of a median over that of a mean (pi / 2) for
#: normal data; for 3-5 values it slightly overstates it (conservative).
MEDIAN_VARIANCE = math.pi / 2
#: n * Var(median of n) / sigma^2 for normal data and small n (seeded
#: simulation, 400,000 draws each; tests/test_stats.py checks them): a
#: median of 1 or 2 values is a mean, and an even n averages the two
#: middle values, which is why the factor zigzags up towards pi / 2.
SMALL_MEDIAN_VARIANCE = {1: 1.0, 2: 1.0, 3: 1.346, 4: 1.192, 5: 1.434, 6: 1.283, 7: 1.478, 8: 1.347,
                         9: 1.497, 10: 1.381}


def median_variance(n: int) -> float:
    """Variance of the median of ``n`` values over that of one value, times n."""
    return SMALL_MEDIAN_VARIANCE.get(int(n), MEDIAN_VARIANCE)


#: Share of the cluster values trimmed from each end (Tukey and McLaughlin;
#: Yuen): 20%, the usual choice, which keeps ~95% of a mean's efficiency on
#: normal data. Below 5 clusters nothing is trimmed (floor(0.2 * G) = 0).
TRIM = 0.2


def trimmed_mean(values: Sequence[float], trim: float = TRIM) -> tuple[float, float, float]:
    """(trimmed mean, its squared standard error, degrees of freedom) of
    independent values: Yuen's trimmed t. ``g = floor(trim * n)`` values
    are dropped from each end for the mean; the standard error comes from
    the winsorized variance (the dropped values set to the nearest kept
    one): ``se^2 = (n - 1) s_w^2 / (h (h - 1))`` with ``h = n - 2g`` kept
    values and ``h - 1`` degrees of freedom. With ``g = 0`` this is the
    plain mean, ``s^2 / n`` and ``n - 1``."""
    x = np.sort(np.asarray(values, dtype=float))
    n = int(x.size)
    if n < 2:
        raise ValueError("a trimmed mean's error needs at least two values")
    g = int(math.floor(trim * n + 1e-9))
    h = n - 2 * g
    kept = x[g:n - g]
    wins = np.clip(x, kept[0], kept[-1])
    var = (n - 1) * float(wins.var(ddof=1)) / (h * (h - 1)) if h > 1 else math.inf
    return float(kept.mean()), var, float(h - 1)


def cluster_estimate(d: Sequence[float] | numpy.ndarray, clusters: Sequence[int] | None = None, *,
                     confidence: float = 0.95, scale: str = "log") -> Estimate:
    """Log ratio over clusters (worker processes) with a t interval.

    The model is one-way random effects: a round's log ratio is the true
    one, plus its process (pair)'s effect, plus the round's own noise, which
    on a shared machine is heavy-tailed (a burst of noise can move a round
    by 20%). Each cluster contributes the median of its rounds; the
    estimate is the mean of the G cluster medians. Its variance is the
    larger of two estimates (the process variance component truncated at
    zero, as the ANOVA estimator does):

    - from the cluster medians alone: ``s^2 / G`` with G-1 degrees of
      freedom (the cluster-robust t of Cameron and Miller, which stays
      honest with 4-8 clusters where a normal or percentile-bootstrap
      interval covers too little). From 5 clusters on, the mean of the
      cluster medians is a 20% trimmed mean with Yuen's winsorized
      variance and ``h - 1`` degrees of freedom (:func:`trimmed_mean`): a
      process whose layout makes it 30% slower, or a round caught by a
      burst of noise, then moves neither the estimate nor its error;
    - from the rounds' spread around their cluster's median, robustly (MAD,
      corrected for the G medians fitted), times the variance of a median
      of the cluster's size (:func:`median_variance`: 1 for one or two
      rounds, up to pi/2 for many): ``sigma^2 * mean(f(n_g) / n_g) / G``
      with N-G degrees of freedom. This one serves when the processes do
      not differ more than the rounds' noise explains.

    Simulated coverage of 95% intervals (tests/test_stats.py,
    docs/verdicts.md): 94.7-98% for 4 or 6 processes of 3-5 rounds, with
    process effects from none to twice the round noise and with 10-15% of
    rounds thrown 20% off. With a single cluster the rounds are the units
    (the median, with the same robust scale); with one round per cluster,
    the clusters' values alone. ``method`` says which.

    The values need not be log ratios: with ``scale="linear"`` they are
    any per-round values (a time, a difference of times in seconds), and
    the estimate's ``ratio`` and ``ci`` are in their unit, not exponentiated.
    """
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    arr = np.asarray(d, dtype=float)
    if arr.ndim != 1:
        raise ValueError("cluster_estimate needs a flat list of log ratios")
    labels = np.zeros(arr.size, dtype=int) if clusters is None else np.asarray(clusters)
    if labels.shape != arr.shape:
        raise ValueError("cluster_estimate: one cluster label per round")
    keep = np.isfinite(arr)
    arr, labels = arr[keep], labels[keep]
    n = int(arr.size)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, math.nan, math.nan, 0, 0, confidence, NAN_ESTIMATE_METHOD, scale)
    groups = [arr[labels == g] for g in np.unique(labels)]
    g = len(groups)
    medians = np.array([float(np.median(x)) for x in groups])
    sizes = np.array([x.size for x in groups], dtype=float)
    residuals = np.concatenate([x - m for x, m in zip(groups, medians)])
    within = math.nan
    if n > g:
        sigma = MAD_SCALE * float(np.median(np.abs(residuals))) * math.sqrt(n / (n - g))
        within = sigma ** 2 * float(np.mean([median_variance(k) / k for k in sizes]))
    if g >= 2:
        theta, between, between_df = trimmed_mean(medians, TRIM)
        trimmed = " (trimmed)" if between_df < g - 1 else ""  # fewer medians kept than G
        if n > g and within / g > between:
            var, df, method = within / g, float(n - g), "processes (pooled: no process effect seen)" + trimmed
        else:
            var, df = between, between_df
            method = ("processes" if n > g else "processes (one round each)") + trimmed
    else:
        theta = float(medians[0])
        if n < 2:
            return Estimate(theta, math.nan, math.nan, math.nan, math.nan, g, n, confidence, "rounds", scale)
        var, df, method = within, float(n - 1), "rounds (one process: process variation not included)"
    se = math.sqrt(var)
    t = t_quantile((1 + confidence) / 2, df)
    return Estimate(theta, se, df, theta - t * se, theta + t * se, g, n, confidence, method, scale)


def difference(a: Estimate, b: Estimate, *, confidence: float = 0.95) -> Estimate:
    """``b - a`` on the log scale (exp of it: B's ratio over A's), with a
    Welch-Satterthwaite t interval from the two estimates' standard errors."""
    theta = b.theta - a.theta
    va, vb = a.se ** 2, b.se ** 2
    var = va + vb
    n_clusters, n = min(a.n_clusters, b.n_clusters), a.n + b.n
    method = f"difference of {a.method}/{b.method}"
    if not (math.isfinite(var) and math.isfinite(theta)):
        return Estimate(theta, math.nan, math.nan, math.nan, math.nan, n_clusters, n, confidence, method)
    if var == 0:
        return Estimate(theta, 0.0, math.inf, theta, theta, n_clusters, n, confidence, method)
    denom = (va ** 2 / a.df if va else 0.0) + (vb ** 2 / b.df if vb else 0.0)
    df = var ** 2 / denom if denom > 0 else math.inf
    se = math.sqrt(var)
    t = t_quantile((1 + confidence) / 2, df)
    return Estimate(theta, se, df, theta - t * se, theta + t * se, n_clusters, n, confidence, method)


def rounds_needed(est: Estimate, bound: float) -> float:
    """Rounds after which an interval of today's spread would exclude the
    claim's ``bound`` (a ratio; seconds for a linear estimate), assuming the standard error falls as one
    over the square root of the rounds and the degrees of freedom grow
    large: ``n * (z*se / |theta - log bound|)^2``, a lower estimate (with a
    process effect, more rounds shrink only the rounds' share). inf when
    the estimate sits on the bound; nan when unknown."""
    if not (est.se > 0) or est.n == 0:
        return math.nan
    if est.scale == LINEAR:
        gap = abs(est.theta - bound)
    elif not bound > 0:
        return math.nan
    else:
        gap = abs(est.theta - math.log(bound))
    if gap == 0:
        return math.inf
    z = NormalDist().inv_cdf((1 + est.confidence) / 2)
    return est.n * (z * est.se / gap) ** 2


# --------------------------------------------------------------------------
# many claims: one-sided p-values of a claim's two conclusions, and Holm's
# step-down over a run's family of them (--virt-correction=holm; see
# docs/verdicts.md, "Many claims")


def t_sf(t: float, df: float) -> float:
    """One-sided tail P(T >= t) of Student's t with ``df`` degrees of freedom."""
    if math.isnan(t) or not df > 0:
        return math.nan
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    half = t_sf2(t, df) / 2
    return half if t >= 0 else 1.0 - half


def _tail(distance: float, se: float, df: float) -> float:
    """P(T >= distance / se), with se = 0 read as an exact value."""
    if se == 0:
        return 0.0 if distance > 0 else 1.0 if distance < 0 else 0.5
    return t_sf(distance / se, df)


def claim_p_values(theta: float, se: float, df: float, lower: float | None,
                   upper: float | None) -> tuple[float, float]:
    """(p_pass, p_fail) of a claim ``lower <= quantity <= upper`` (either
    bound may be None) from an estimate ``theta`` with standard error ``se``
    and ``df`` degrees of freedom (bounds on theta's scale: the log of a
    ratio's bound, or seconds). Two hypotheses, one of them true:

    - p_pass tests "the claim is violated"; rejecting it means ``pass``.
      One bound: P(T >= (upper - theta) / se), or (theta - lower) / se;
      two bounds: the larger of the two (both must be cleared: the
      intersection-union test, the TOST of equivalence testing);
    - p_fail tests "the claim holds"; rejecting it means ``fail``. One
      bound: 1 - p_pass. Two bounds: with d = how far theta lies beyond
      the nearer bound and w = upper - lower, P(T >= d/se) +
      P(T >= (w + d)/se), the largest chance, over every true value
      inside the bounds (at a bound, by the convexity of the t tails),
      that theta lies d or more beyond one of them.

    Either p-value is at most (1 - c) / 2 exactly when the two-sided
    interval at confidence c decides the claim that way (for two bounds,
    p_fail adds the second, tiny term). NaN inputs give (1, 1): nothing is
    decided."""
    if lower is None and upper is None:
        raise ValueError("claim_p_values: a claim has at least one bound")
    if any(math.isnan(x) for x in (theta, se, df)) or not se >= 0 or not df > 0:
        return 1.0, 1.0
    if lower is not None and upper is not None:
        p_pass = max(_tail(theta - lower, se, df), _tail(upper - theta, se, df))
        d = max(theta - upper, lower - theta)
        p_fail = min(1.0, _tail(d, se, df) + _tail(upper - lower + d, se, df))
        return p_pass, p_fail
    if upper is not None:
        p_pass = _tail(upper - theta, se, df)
        return p_pass, _tail(theta - upper, se, df)
    p_pass = _tail(theta - lower, se, df)  # type: ignore[operator]
    return p_pass, _tail(lower - theta, se, df)  # type: ignore[operator]


def holm_adjusted(pvalues: Sequence[float]) -> list[float]:
    """Holm's adjusted p-values, in the input's order: sorted ascending,
    the k-th smallest (from 1) of m is multiplied by m - k + 1, made
    non-decreasing along the sorted order, and capped at 1. A hypothesis
    is rejected at family-wise level alpha when its adjusted p-value is at
    most alpha. NaN counts as 1."""
    p = [1.0 if math.isnan(x) else min(1.0, max(0.0, float(x))) for x in pvalues]
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [1.0] * m
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return out


def holm(pvalues: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down test (Holm 1979) at family-wise level ``alpha``:
    the k-th smallest of m p-values is rejected while every smaller one and
    it are at most alpha / (m - k + 1); the first that is not stops it.
    Valid whatever the dependence between the tests. Returns, in the
    input's order, which hypotheses are rejected."""
    if not 0 < alpha < 1:
        raise ValueError("holm: alpha must be between 0 and 1")
    p = [1.0 if math.isnan(x) else float(x) for x in pvalues]
    m = len(p)
    rejected = [False] * m
    for k, i in enumerate(sorted(range(m), key=lambda i: p[i])):
        if p[i] > alpha / (m - k):
            break
        rejected[i] = True
    return rejected
