"""The round runner's small decisions, each a pure function: calls per
round, retries allowed, the seed of a test, which worker process serves
the next round, and which of a claim's bounds keeps its verdict open.
"""

from __future__ import annotations

import math
import random
import zlib
from typing import Any

from ..judge.claims import RATIO, Claim


def stable_seed(*parts: Any) -> int:
    return zlib.crc32(":".join(str(p) for p in parts).encode())


#: Auto calls per round: enough calls of the baseline to fill this many
#: seconds (the median of 3-5 calls drops a call hit by a burst of noise),
#: at most AUTO_CALLS_MAX, and no more than the slowest
#: environment can serve in AUTO_CALLS_SLOWEST_SECONDS, counting each
#: request's whole cost there (a TCG guest spends ~0.1-0.5 s on pytest's
#: own per-test work); see docs/verdicts.md.
AUTO_CALLS_SECONDS = 0.15
AUTO_CALLS_MAX = 10
AUTO_CALLS_SLOWEST_SECONDS = 0.5


def auto_calls(warm: dict[str, list[float]], baseline: str,
               requests: dict[str, list[float]] | None = None) -> int:
    """Calls per round, the same in every environment (a median of 5 calls
    and a single call estimate different things when call times are
    skewed), from the warm-up: the baseline's fastest call time (the first
    call in a process carries imports and cold caches) and each
    environment's fastest request (call plus dispatch and pytest's work)."""
    fastest = {n: min(t for t in ts if t > 0) for n, ts in warm.items() if any(t > 0 for t in ts)}
    if baseline not in fastest or not all(math.isfinite(t) for t in fastest.values()):
        return 1
    costs = {n: min(ts) for n, ts in (requests or {}).items() if ts}
    slowest = max([*fastest.values(), *costs.values()])
    k = math.ceil(AUTO_CALLS_SECONDS / fastest[baseline])
    k = min(k, math.floor(AUTO_CALLS_SLOWEST_SECONDS / slowest + 1e-9))
    return max(1, min(AUTO_CALLS_MAX, k))


#: A measured block's calls on each side go to a worker process this many
#: at a time (one request runs the test this many times in a row, each
#: call timed on its own), when the block has at least GROUP_MIN_CALLS:
#: a request's round trip and the first pytest protocol after the other
#: side's cost ~1.5-2 ms here, as much as half of a 3.5 ms call; the
#: second call of a request pays neither. Below GROUP_MIN_CALLS (calls of
#: ~40 ms and more) that cost is under 5% of a call, and each call keeps
#: its own request. See docs/verdicts.md.
CALLS_PER_REQUEST = 2
GROUP_MIN_CALLS = 4


def request_calls(k: int, grouped: bool = True) -> list[int]:
    """How a block's ``k`` calls on each side are sent: the calls of each
    request, in order (``grouped`` False: one call a request, as for a
    pytest-benchmark test, whose one call already repeats its function)."""
    if not grouped or k < GROUP_MIN_CALLS:
        return [1] * k
    out = [CALLS_PER_REQUEST] * (k // CALLS_PER_REQUEST)
    if k % CALLS_PER_REQUEST:
        out.append(k % CALLS_PER_REQUEST)
    return out


def max_retries(rounds: int) -> int:
    """Disturbed rounds retried per test at most: a quarter of the rounds, at least 2."""
    return max(2, rounds // 4)


def deciding_bound(claim: Claim, ratio: float, ci: tuple[float, float] | None = None) -> float | None:
    """The claim's bound that keeps its verdict open, the one an interval
    must shrink past to decide it either way: of the bounds (inside ``ci``
    when given), the one nearest the estimate - on the log scale for a
    ratio, the linear one for seconds."""
    linear = claim.unit != RATIO
    bounds = [b for b in (claim.lower, claim.upper) if b is not None and (linear or b > 0)
              and (ci is None or ci[0] <= b <= ci[1])]
    if not bounds or not (math.isfinite(ratio) if linear else ratio > 0):
        return None
    if linear:
        return min(bounds, key=lambda b: abs(b - ratio))
    return min(bounds, key=lambda b: abs(math.log(b) - math.log(ratio)))


class Schedule:
    """Which worker process serves the next round: every process once per
    cycle, in a random order each cycle, so drift over time spreads over
    the processes; a retried round goes back to the same process."""

    def __init__(self, slots: list[int], rng: random.Random):
        self.slots = slots
        self.rng = rng
        self._queue: list[int] = []

    def next(self) -> int:
        if not self._queue:
            self._queue = self.slots[:]
            self.rng.shuffle(self._queue)
        return self._queue.pop(0)

    def again(self, slot: int) -> None:
        self._queue.insert(0, slot)
