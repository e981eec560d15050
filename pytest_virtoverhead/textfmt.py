"""Numbers and labels as the reports print them: one place for the
terminal table, the Markdown summary, the HTML report, ``compare`` and the
claim grammar's times. Standard library only (the Markdown renderer and
claims.py import it and stay free of pytest and numpy).
"""

from __future__ import annotations

import math
from typing import Any

#: Units of :func:`seconds` by default, largest first; the last also takes
#: anything smaller (``0 ns``).
SECONDS_UNITS = (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9))


def finite(x: Any) -> bool:
    """A real, finite number (not a bool, None, NaN or a string)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def seconds(value: Any, units: tuple[tuple[str, float], ...] = SECONDS_UNITS) -> str:
    """Seconds with a unit, four significant digits: ``2.104 ms``; ``-``
    for a value that is not a finite number."""
    if not finite(value):
        return "-"
    last = units[-1][0]
    for unit, scale in units:
        if abs(value) >= scale or unit == last:
            return f"{value / scale:.4g} {unit}"
    raise AssertionError("unreachable: the last unit takes every value")


def fixed(value: Any, digits: int = 3) -> str:
    """``1.234`` (a ratio, a confidence bound); ``-`` when not a finite number."""
    return f"{value:.{digits}f}" if finite(value) else "-"


def rate(value: float, unit: str) -> str:
    """A rate: whole numbers with thousands separators from 100 on, else
    three significant digits (``2,884,264 ops/s``, ``7.7 events/s``)."""
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"


def env_label(name: str, meta: Any) -> str:
    """``vm [tcg]`` for a VM whose acceleration is known, else the name."""
    meta = meta if isinstance(meta, dict) else {}
    accel = meta.get("accel")
    return f"{name} [{accel}]" if meta.get("kind") == "vm" and accel else name


def method_line(method: Any) -> str:
    """How the verdicts were reached, from the JSON's ``verdict_method``
    (terminal summary and HTML report); "" when the run has none."""
    if not isinstance(method, dict) or not finite(method.get("confidence")):
        return ""
    level, m = f"{method['confidence']:.0%}", method.get("family_size", 0)
    if method.get("correction") == "holm":
        return f"verdicts: Holm's correction over {m} claims, family-wise {level} (--virt-correction=holm)"
    return f"verdicts: each claim at {level}, no correction over the run's {m} claims (--virt-correction=none)"
