"""The timer and its resolution. Standard library only, and cheap to import:
the worker reports the resolution in its ``hello`` reply, before anything
else is imported (see :mod:`.measure` for the timing loop)."""

from __future__ import annotations

import math
import time

TIMER = time.perf_counter


def timer_resolution() -> float:
    """The smallest observed nonzero step of the timer (or its stated one)."""
    stated = time.get_clock_info("perf_counter").resolution
    best = math.inf
    for _ in range(20):
        t0 = TIMER()
        t1 = TIMER()
        while t1 == t0:
            t1 = TIMER()
        best = min(best, t1 - t0)
    return max(stated, best)
