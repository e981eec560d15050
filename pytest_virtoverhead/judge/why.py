"""Why a ratio is what it is: the resource counters measured around the
timed calls (:mod:`.rusage`), summarized per environment and against the
baseline, and the one-line account under a decided ratio.

Pure functions on plain data; nothing here imports pytest or numpy.
Every figure a line states was measured: CPU time split into user and
system time, the rest of the wall-time difference said to be outside the
process's CPU time, and counters shown with both sides.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

from ..guest.rusage import EXTRA_KEYS, KEYS

ALL_KEYS = KEYS + EXTRA_KEYS

#: Names of the counters in a "why" line.
LABELS = {"user_seconds": "user time", "system_seconds": "system time",
          "voluntary_switches": "voluntary switches", "involuntary_switches": "involuntary switches",
          "minor_faults": "minor faults", "major_faults": "major faults",
          "read_bytes": "bytes read from storage", "write_bytes": "bytes written to storage",
          "read_chars": "bytes read", "write_chars": "bytes written"}
#: Counters a line shows (with both sides) when either side reaches the
#: floor per call; at most MAX_COUNTERS, the largest relative change first.
COUNTER_FLOORS = {"voluntary_switches": 0.5, "involuntary_switches": 0.5, "minor_faults": 0.5,
                  "major_faults": 0.5, "read_bytes": 1024.0, "write_bytes": 1024.0}
MAX_COUNTERS = 3


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if not n:
        return math.nan
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def mean_counters(requests: Iterable[Mapping[str, Any]]) -> dict[str, float | None]:
    """Per key, the mean over a round's requests (each already per call);
    None for a key no request had (``/proc/self/io`` unreadable)."""
    requests = list(requests)
    out: dict[str, float | None] = {}
    for key in ALL_KEYS:
        values = [float(r[key]) for r in requests if r.get(key) is not None]
        out[key] = sum(values) / len(values) if values else None
    return out


def median_counters(rounds: Iterable[Mapping[str, Any]]) -> dict[str, float | None]:
    """Per key, the median over rounds of the per-call figures."""
    rounds = list(rounds)
    out: dict[str, float | None] = {}
    for key in ALL_KEYS:
        values = [float(r[key]) for r in rounds if r.get(key) is not None]
        out[key] = _median(values) if values else None
    return out


def paired_differences(env_rounds: Sequence[Mapping[str, Any]],
                       base_rounds: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Per key, the median over rounds of ``env - base`` (the baseline's
    figure from env's own block of the round, round by round)."""
    out: dict[str, float | None] = {}
    for key in ALL_KEYS:
        d = [float(a[key]) - float(b[key]) for a, b in zip(env_rounds, base_rounds)
             if a.get(key) is not None and b.get(key) is not None]
        out[key] = _median(d) if d else None
    return out


def relative(env: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, float | None]:
    """Per key, env's median over the baseline's (None where the baseline's is 0 or absent)."""
    out: dict[str, float | None] = {}
    for key in ALL_KEYS:
        a, b = env.get(key), base.get(key)
        out[key] = a / b if a is not None and b else None
    return out


def time_text(x: float) -> str:
    """A signed time, three significant digits: ``+0.33 us``, ``-1.2 ms``
    (microseconds down to 0.01 us, then ns)."""
    if not math.isfinite(x):
        return "n/a"
    sign = "+" if x >= 0 else "-"
    a = abs(x)
    for unit, scale, floor in (("s", 1.0, 1.0), ("ms", 1e-3, 1e-3), ("us", 1e-6, 1e-8)):
        if a >= floor:
            return f"{sign}{a / scale:.3g} {unit}"
    return f"{sign}{a / 1e-9:.3g} ns"


def count_text(x: float, key: str) -> str:
    """A per-call count or byte figure, unsigned: ``25.6 k``, ``0.02``, ``4 KiB``."""
    if key.endswith("_bytes") or key.endswith("_chars"):
        for unit, scale in (("GiB", 2.0 ** 30), ("MiB", 2.0 ** 20), ("KiB", 1024.0)):
            if abs(x) >= scale:
                return f"{x / scale:.3g} {unit}"
        return f"{x:.3g} B"
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g}"


def why_parts(time_diff: float, diff: Mapping[str, Any], env_fig: Mapping[str, Any],
              base_fig: Mapping[str, Any], resolved: bool = True) -> list[str]:
    """The pieces of a "why" line after its head.

    ``time_diff``: the wall-time difference per call (env - baseline, in
    seconds); ``diff``: the counters' paired differences per call;
    ``env_fig``/``base_fig``: each side's median counters per call;
    ``resolved``: whether the ratio's interval excludes 1. With a resolved
    difference, CPU time (then its system and user parts) is given as its
    share of the wall difference, and the rest as the part outside the
    process's CPU time (waiting, or time the environment's accounting does
    not see); without one, the CPU differences are given alone. Counters
    that reach their floor follow, with both sides."""
    parts = []
    du, ds = diff.get("user_seconds"), diff.get("system_seconds")
    shares = resolved and math.isfinite(time_diff) and time_diff != 0

    def share(d: float) -> str:
        return f": {d / time_diff:.0%} of the difference" if shares else ""

    if du is not None and ds is not None:
        cpu = du + ds
        split = sorted((("system time", ds), ("user time", du)), key=lambda t: -abs(t[1]))
        parts.append(f"CPU time {time_text(cpu)}{share(cpu)} ("
                     + ", ".join(f"{name} {time_text(d)}{share(d)}" for name, d in split) + ")")
        if shares:
            rest = time_diff - cpu
            parts.append(f"outside the process's CPU time {time_text(rest)}{share(rest)}")
    shown = []
    for key, floor in COUNTER_FLOORS.items():
        a, b = env_fig.get(key), base_fig.get(key)
        if a is None or b is None or max(abs(a), abs(b)) < floor:
            continue
        change = abs(math.log((abs(a) + floor) / (abs(b) + floor)))
        shown.append((change, f"{LABELS[key]} {count_text(a, key)} vs {count_text(b, key)}"))
    shown.sort(key=lambda t: -t[0])
    parts.extend(text for _, text in shown[:MAX_COUNTERS])
    return parts


def why_line(time_diff: float, diff: Mapping[str, Any] | None, env_fig: Mapping[str, Any] | None,
             base_fig: Mapping[str, Any] | None, env: str, baseline: str, resolved: bool = True) -> str | None:
    """``why (measured per call, container vs baremetal): time +0.35 us;
    CPU time +0.34 us: 97% of the difference (system time +0.33 us: 94% of
    the difference, user time +0.01 us: 3% of the difference); ...``; None
    without counters. Unresolved: ``time +31.8 us, within the interval``."""
    if not diff or not env_fig or not base_fig:
        return None
    parts = why_parts(time_diff, diff, env_fig, base_fig, resolved)
    if not parts:
        return None
    head = f"time {time_text(time_diff)}" + ("" if resolved else " (the interval holds no difference)")
    return f"why (measured per call, {env} vs {baseline}): {head}; " + "; ".join(parts)
