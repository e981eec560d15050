"""Where a compared test's time goes: a per-phase account.

The round runner charges each stretch of wall time to a named phase
(environment start, worker-process start, collection, warm-up, garbage
collection, measured calls, request overhead, the reporting run,
statistics); the run document keeps the account per test (``cost``) and
summed over the session, and the harness prints it. Plain arithmetic, no
imports beyond the standard library.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterable, Iterator

#: The phases, in the order a test meets them, with what each one holds.
PHASES: dict[str, str] = {
    "env_start": "environments started (backend, worker interpreter, hello), in parallel",
    "process_start": "worker processes started (interpreter, imports)",
    "collection": "pytest sessions opened in the worker processes (plugins, collection)",
    "warmup": "warm-up rounds (one unmeasured call per process and environment)",
    "gc": "garbage collections before each round",
    "measured": "measured work: the call phases timed (or pytest-benchmark's own timing)",
    "requests": "the rest of each measured request: dispatch and pytest's per-test protocol",
    "reporting": "the unmeasured run whose pytest reports reach the host",
    "statistics": "intervals and verdicts",
}


class PhaseClock:
    """Seconds and counts per phase; ``with clock.phase(name):`` or
    :meth:`add`. ``other`` is what the wall time holds beyond them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self._t0 = time.monotonic()
        self.wall: float | None = None

    def add(self, name: str, seconds: float, count: int = 1) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + max(0.0, seconds)
        self.counts[name] = self.counts.get(name, 0) + count

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - t0)

    def stop(self) -> None:
        self.wall = time.monotonic() - self._t0

    def to_json(self) -> dict[str, object]:
        return account(self.seconds, self.counts, self.wall)


def account(seconds: dict[str, float], counts: dict[str, int] | None = None,
            wall: float | None = None) -> dict[str, object]:
    """``{"wall": s, "phases": {name: {"seconds", "count", "share"}}}``;
    ``other`` is the wall time beyond the named phases (never below 0),
    ``share`` each phase's part of the wall time."""
    counts = counts or {}
    known = sum(seconds.values())
    total = wall if wall is not None else known
    rows: dict[str, dict[str, float]] = {}
    for name in [*PHASES, *sorted(set(seconds) - set(PHASES))]:
        if name in seconds:
            rows[name] = {"seconds": round(seconds[name], 6), "count": counts.get(name, 0)}
    if wall is not None:
        rows["other"] = {"seconds": round(max(0.0, wall - known), 6), "count": 0}
    for row in rows.values():
        row["share"] = round(row["seconds"] / total, 4) if total > 0 else 0.0
    return {"wall": round(total, 6), "phases": rows}


def total(accounts: Iterable[dict]) -> dict[str, object]:
    """The session's account: each phase summed over its tests' accounts."""
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    wall = 0.0
    for acc in accounts:
        wall += float(acc.get("wall") or 0.0)
        for name, row in (acc.get("phases") or {}).items():
            if name == "other":
                continue
            seconds[name] = seconds.get(name, 0.0) + float(row.get("seconds") or 0.0)
            counts[name] = counts.get(name, 0) + int(row.get("count") or 0)
    return account(seconds, counts, wall)
