"""The calibration's settings (parts, sessions, targets, seeds), its log
and the figures it takes of a list (quantiles, half-widths)."""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

#: benchmarks/, where the entry script and RESULTS.md are.
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(HERE)
RESULTS_MD = os.path.join(HERE, "RESULTS.md")

PARTS = ["aa-call", "aa-bench", "aa-container", "aa-xdist", "floor", "scale", "compare"]
SESSIONS = {"aa-call": 20, "aa-bench": 20, "aa-container": 20, "aa-xdist": 20, "floor": 5, "scale": 1, "compare": 6}
QUICK_SESSIONS = {"aa-call": 2, "aa-bench": 2, "aa-container": 2, "aa-xdist": 2, "floor": 1, "scale": 1,
                  "compare": 2}
#: Rounds in --quick (smoke) runs: just enough for an interval.
QUICK_ROUNDS = 4
FLOOR_ROUNDS = 20
SCALE_SAMPLES = 100_000
SCALE_TESTS = 5
SCALE_CLAIMS = ["control ~= baremetal +- 5%", "container ~= baremetal +- 5%"]
RSS_LIMIT_MB = 500.0
COVERAGE_TARGET = (18, 20)  # k of n
FLAG_RATE_TARGET = 0.05
FLOOR_TARGET = 0.02

SECTION_TITLE = "Verdict calibration"
BEGIN = "<!-- verdict-calibration:begin (benchmarks/calibration.py --write-results writes this section) -->"
END = "<!-- verdict-calibration:end -->"

SEED_BASE = {"aa-call": 1000, "aa-bench": 2000, "aa-container": 3000, "aa-xdist": 3500, "floor-bm": 4000, "floor-ctr": 4500,
             "scale": 5000, "compare": 6000}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# statistics of the figures (plain Python: nothing here should depend on the
# plugin's own statistics)


def quantile(xs: list[float], q: float) -> float:
    xs = sorted(x for x in xs if x is not None and math.isfinite(x))
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def spread(xs: list[float]) -> dict[str, Any]:
    vals = [x for x in xs if x is not None and math.isfinite(x)]
    return {"n": len(vals), "p10": quantile(vals, 0.1), "median": quantile(vals, 0.5), "p90": quantile(vals, 0.9),
            "min": min(vals) if vals else math.nan, "max": max(vals) if vals else math.nan}


def rel_half_width(ratio: float | None, ci: list[Any] | None) -> float:
    if ratio is None or not ci or ci[0] is None or ci[1] is None or not ratio:
        return math.nan
    return (ci[1] - ci[0]) / 2 / ratio


def covers(ci: list[Any] | None, value: float = 1.0) -> bool | None:
    if not ci or ci[0] is None or ci[1] is None:
        return None
    return ci[0] <= value <= ci[1]
