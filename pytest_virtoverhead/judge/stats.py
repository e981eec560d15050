"""Statistics of a comparison, as pure numpy functions.

The verdict engine (see docs/verdicts.md):

- :func:`paired_log_ratios`: one log ratio per round, environment over
  baseline, from the two environments' summaries of the same round;
- :func:`cluster_estimate`: the log ratio and its confidence interval with
  the worker process (pair) as the cluster, from a one-way random effects
  model with robust (median, MAD) summaries, so variation between processes
  is inside the interval and a burst of noise in one round is not;
- :func:`ratio_estimate`: the two together, the one estimate of an
  overhead ratio from paired rounds;
- :func:`difference`: the change between two such estimates (two saved
  runs: the ratio of ratios), Welch-Satterthwaite;
- :func:`rounds_needed`: how many rounds an inconclusive claim would need;
- :func:`claim_p_values` and :func:`holm`: a claim's p-values and Holm's
  correction over a run's claims.

Student's t is scipy's (:func:`t_quantile`, :func:`t_sf`, :func:`t_sf2`,
scipy imported when a comparison first needs it), the robust summaries
:mod:`.robust`. Imports neither pytest, docker nor libvirt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import numpy

from .robust import MAD_SCALE, TRIM, median_variance, trimmed_mean


class _LazyNumpy:
    """numpy, imported on first use. The plugin loads this module (through
    session and report) in every pytest run, and importing numpy takes ~0.1 s,
    which a run without --virt-compare must not pay."""

    def __getattr__(self, name: str):
        import numpy

        globals()["np"] = numpy
        return getattr(numpy, name)


np = _LazyNumpy()

def preload() -> None:
    """Import scipy.stats in a background thread (once): a comparison needs
    it for its first estimate (the import takes ~0.5-1.5 s here), and its
    session meanwhile mostly waits for worker processes to start. Called
    once the environments are up: during their start the import's hold on
    the interpreter slowed the starting threads, and a Ctrl-C then landed
    in pytest's report of a longer sys.modules more often."""
    import sys
    import threading

    global _preloading
    if _preloading or "scipy.stats" in sys.modules:
        return
    _preloading = True
    threading.Thread(target=_t, name="virt-import-scipy", daemon=True).start()


_preloading = False


def _t():
    """scipy.stats.t, imported on first use: importing scipy.stats takes
    longer than numpy, and only a comparison needs it."""
    from scipy.stats import t

    return t


def t_sf2(t: float, df: float) -> float:
    """Two-sided tail P(|T| >= |t|) of Student's t with ``df`` degrees of freedom."""
    if math.isnan(t) or not df > 0:
        return math.nan
    if math.isinf(df):
        return 2 * NormalDist().cdf(-abs(t))
    return float(2 * _t().sf(abs(t), df))


def t_sf(t: float, df: float) -> float:
    """One-sided tail P(T >= t) of Student's t with ``df`` degrees of freedom."""
    if math.isnan(t) or not df > 0:
        return math.nan
    if math.isinf(df):
        return 1 - NormalDist().cdf(t)
    return float(_t().sf(t, df))


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t with ``df`` degrees of freedom."""
    if not 0.5 < p < 1:
        raise ValueError("t_quantile: p must be between 0.5 and 1")
    if not df > 0:
        raise ValueError("t_quantile: needs at least one degree of freedom")
    if math.isinf(df):
        return NormalDist().inv_cdf(p)
    return float(_t().ppf(p, df))


def as_array(samples: Sequence[float], what: str) -> numpy.ndarray:
    """``samples`` as a one-dimensional float array; ValueError (naming
    ``what``) when it is empty, not one-dimensional or holds a non-finite value."""
    arr = np.asarray(samples, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what} needs at least one sample")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains a non-finite sample")
    return arr


def median(samples: Sequence[float]) -> float:
    return float(np.median(as_array(samples, "median")))


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Descriptive statistics of one group of samples."""
    arr = as_array(samples, "summarize")
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
        if math.isnan(self.se) or math.isnan(self.theta):
            return math.nan  # one round: no interval, so no test either (never 0)
        if not (self.se > 0):
            return 1.0 if self.theta == 0 else 0.0
        return t_sf2(self.theta / self.se, self.df)


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


NAN_ESTIMATE_METHOD = "none"
#: Estimate.scale of an estimate of a time (seconds), not of a log ratio.
LINEAR = "linear"
TIME = "time"  # cluster_estimate of positive times: on the log scale, never below 0 (Estimate.scale "log")


def paired_log_ratios(env_values: Sequence[float], base_values: Sequence[float]) -> numpy.ndarray:
    """log(env / base) per round, for rounds paired by position."""
    a = as_array(env_values, "the environment's rounds")
    b = as_array(base_values, "the baseline's rounds")
    if a.size != b.size:
        raise ValueError(f"paired rounds differ in number: {a.size} and {b.size}")
    if np.any(a <= 0) or np.any(b <= 0):
        raise ValueError("round summaries must be positive times to take a ratio")
    return np.log(a) - np.log(b)


def cluster_estimate(d: "Sequence[float] | numpy.ndarray", clusters: Sequence[int] | None = None, *,
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
    if scale == TIME:  # a linear interval of 2 processes went to -0.57 ms for values all near 1.8 ms
        positive = bool(arr.size) and bool(np.all(arr[np.isfinite(arr)] > 0))
        arr, scale = (np.log(arr), "log") if positive else (arr, LINEAR)
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


def ratio_estimate(env_values: Sequence[float], base_values: Sequence[float], clusters: Sequence[int] | None = None,
                   *, confidence: float = 0.95) -> Estimate:
    """The estimate of the ratio ``env / base`` from rounds paired by
    position: each pair's log ratio (:func:`paired_log_ratios`) over the
    clusters (:func:`cluster_estimate`); an estimate of nothing (NaN) when
    there are no rounds. The one estimate of an overhead ratio: a run's
    ratio, and (two of them through :func:`difference`) the ratio of ratios
    of two runs that ``pytest-virtoverhead compare`` judges."""
    if len(env_values) == 0 and len(base_values) == 0:
        return cluster_estimate([], confidence=confidence)
    return cluster_estimate(paired_log_ratios(env_values, base_values), clusters, confidence=confidence)


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
