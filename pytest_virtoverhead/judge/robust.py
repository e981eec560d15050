"""Robust summaries of a few values, the parts :func:`.stats.cluster_estimate`
is built from: the normal-consistent MAD scale, the variance of a median
of n values for small n, and Yuen's trimmed mean with its winsorized
variance (scipy's trimmed mean and winsorizing). numpy and scipy are
imported only when :func:`trimmed_mean` runs.
"""

from __future__ import annotations

import math
from typing import Sequence

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
    import numpy as np  # here: importing this module must load neither numpy nor scipy
    from scipy.stats import mstats, trim_mean

    x = np.asarray(values, dtype=float)
    n = int(x.size)
    if n < 2:
        raise ValueError("a trimmed mean's error needs at least two values")
    h = n - 2 * int(trim * n)  # scipy's count of values cut from each end
    wins = np.asarray(mstats.winsorize(x, limits=(trim, trim)))
    # Yuen's one-sample standard error by hand: scipy has it only inside its two-sample ttest_ind(trim=).
    var = (n - 1) * float(wins.var(ddof=1)) / (h * (h - 1)) if h > 1 else math.inf
    return float(trim_mean(x, trim)), var, float(h - 1)
