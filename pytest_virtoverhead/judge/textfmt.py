"""Numbers, labels and verdicts as the reports print them: one place for
the terminal table, the Markdown summary, the HTML report, ``compare`` and
the claim grammar's times. Number formatting, environment labels, the
order of verdicts (which needs attention first), plain-text tables, and
NaN/infinity cleaning for JSON. Standard library only (the Markdown
renderer and claims.py import it and stay free of pytest and numpy).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

from .verdict import FAIL, INCONCLUSIVE, PASS, SKIPPED  # the verdicts (str-valued enum), re-exported

#: How much a verdict needs attention: the worst of several is the one
#: with the highest number. A verdict not listed (a later kind) ranks
#: :data:`UNKNOWN_SEVERITY`: after ``fail``, before ``inconclusive``.
VERDICT_SEVERITY = {FAIL: 4, INCONCLUSIVE: 2, PASS: 1, SKIPPED: 0}
UNKNOWN_SEVERITY = 3

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


def change(value: Any) -> str:
    """A relative change as a signed percentage: ``+10.0%`` for 0.1;
    ``-`` when not a finite number."""
    return f"{value * 100:+.1f}%" if finite(value) else "-"


def rate(value: float, unit: str) -> str:
    """A rate: whole numbers with thousands separators from 100 on, else
    three significant digits (``2,884,264 ops/s``, ``7.7 events/s``)."""
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"


def interval(ci: Any, fmt: Callable[[Any], str] = fixed, *, empty: str | None = None) -> str:
    """``[1.020, 1.050]``: both ends by ``fmt`` (``-`` for a missing end).
    With ``empty``: that text instead when ``ci`` is not a pair or neither
    end is a number."""
    if empty is not None and (not isinstance(ci, (list, tuple)) or len(ci) != 2
                              or not any(finite(v) for v in ci)):
        return empty
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def estimate_format(unit: Any) -> Callable[[Any], str]:
    """How a claim's estimate reads: :func:`fixed` for a ratio (``unit``
    ``"ratio"``, the default), :func:`seconds` for a time."""
    return fixed if (unit or "ratio") == "ratio" else seconds


def seconds_scale(values: Iterable[Any], units: tuple[tuple[str, float], ...] = SECONDS_UNITS) -> tuple[float, str]:
    """``(scale, unit)`` for an axis of times: the largest unit the largest
    positive value reaches (1 s for none), else the last."""
    top = max((v for v in values if finite(v) and v > 0), default=1.0)
    for unit, scale in units:
        if top >= scale:
            return scale, unit
    return units[-1][1], units[-1][0]


def env_label(name: str, meta: Any) -> str:
    """``vm [tcg]`` for a VM whose acceleration is known, else the name."""
    meta = meta if isinstance(meta, dict) else {}
    accel = meta.get("accel")
    return f"{name} [{accel}]" if meta.get("kind") == "vm" and accel else name


def host_envs(environments: Any) -> list[str]:
    """The names of the environments that run on the host itself (kind
    ``baremetal``), for the line saying what the host is; ``["baremetal"]``
    when there is none."""
    envs = environments if isinstance(environments, dict) else {}
    return [n for n, m in envs.items() if isinstance(m, dict) and m.get("kind") == "baremetal"] or ["baremetal"]


def method_line(method: Any) -> str:
    """How the verdicts were reached, from the JSON's ``verdict_method``
    (terminal summary and HTML report); "" when the run has none."""
    if not isinstance(method, dict) or not finite(method.get("confidence")):
        return ""
    level, m = level_text(method["confidence"]), method.get("family_size", 0)
    if method.get("correction") == "holm":
        return f"verdicts: Holm's correction over {m} claims, family-wise {level} (--virt-correction=holm)"
    return f"verdicts: each claim at {level}, no correction over the run's {m} claims (--virt-correction=none)"


def severity(verdict: Any) -> int:
    """:data:`VERDICT_SEVERITY` of ``verdict``."""
    return VERDICT_SEVERITY.get(verdict, UNKNOWN_SEVERITY)


def worst_verdict(verdicts: Iterable[Any]) -> Any:
    """The verdict that needs attention most (the first of equals); None
    for none."""
    return max(verdicts, key=severity, default=None)


def by_severity(counts: dict[str, int]) -> list[tuple[str, int]]:
    """``{verdict: n}`` as pairs, the verdict that needs attention most
    first (equals by name)."""
    return sorted(counts.items(), key=lambda kv: (-severity(kv[0]), kv[0]))


def text_table(head: Sequence[str], rows: Sequence[Sequence[str]], right: Iterable[int] = ()) -> list[str]:
    """A plain-text table: the head, a rule of dashes, the rows; columns
    two spaces apart, those in ``right`` right-aligned, trailing spaces cut."""
    right = set(right)
    # A cell is one line: a newline (a parametrize id may hold one) would break the table.
    rows = [[one_line(c) for c in r] for r in rows]
    widths = [max([len(head[i])] + [len(r[i]) for r in rows]) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                         for i, c in enumerate(cells)).rstrip()

    return [line(head), line(["-" * w for w in widths])] + [line(r) for r in rows]


def one_line(text: str) -> str:
    """``text`` with its line breaks and tabs written as escapes (``\\n``)."""
    return text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


def level_text(confidence: float) -> str:
    """A confidence level as a percentage with the digits it has:
    ``0.95`` -> ``95%``, ``0.999`` -> ``99.9%`` (``{:.0%}`` would say
    ``100%``), ``0.9999`` -> ``99.99%``."""
    return f"{round(confidence * 100, 6):g}%"


def json_safe(value: Any) -> Any:
    """``value`` as JSON can hold it (``json.dumps(allow_nan=False)``):
    every float that is not finite (NaN, infinity) becomes None, through
    dicts (their keys made strings), lists and tuples (tuples become
    lists). Also for one number: ``json_safe(nan)`` is None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [json_safe(x) for x in value]
    if isinstance(value, dict):
        return {str(k): json_safe(x) for k, x in value.items()}
    return value
