"""CPU workloads: sysbench's prime test, in Python and vectorised with numpy.

sysbench ``cpu`` runs "events"; each event walks every integer ``c`` from 3
up to (not including) ``--cpu-max-prime`` and tests it by trial division by
2, 3, ... up to ``sqrt(c)``, stopping at the first divisor, and counts the
primes. The score is events per second. The functions here do the same
arithmetic, so their rate is in the same unit (events/s), but an event costs
far more in the interpreter than in C: compare environments with each other,
not with sysbench's absolute numbers.
"""

from __future__ import annotations

import time
from math import isqrt
from typing import Any, Callable

from ._common import finish, positive_int


def prime_count(max_prime: int) -> int:
    """What one sysbench event counts: the primes ``c`` with
    ``3 <= c < max_prime``, found by trial division up to ``sqrt(c)``.

    This leaves out 2, so it is pi(max_prime - 1) - 1: 24 for 100 (there are
    25 primes below 100), 1228 for 10000.
    """
    found = 0
    for c in range(3, max_prime):
        for d in range(2, isqrt(c) + 1):
            if c % d == 0:
                break
        else:
            found += 1
    return found


def _timed_events(count: Callable[[int], int], max_prime: int, events: int) -> dict[str, Any]:
    """Run ``events`` events of ``count(max_prime)``, timed, and build the
    result dict shared by the prime workloads."""
    positive_int("max_prime", max_prime, 3)
    positive_int("events", events)
    t0 = time.perf_counter()
    for _ in range(events):
        found = count(max_prime)
    seconds = time.perf_counter() - t0
    out = finish(events, "events", seconds, max_prime=max_prime, primes=found)
    out["events"] = events
    out["events_per_s"] = out["rate"]
    return out


def primes(max_prime: int = 10000, events: int = 10) -> dict[str, Any]:
    """sysbench's cpu test in pure Python: ``events`` times, count the primes
    below ``max_prime`` by trial division (see :func:`prime_count`).

    Records ``events`` "events" (rate in events/s). Returns ``seconds``,
    ``rate`` and ``events_per_s`` (events/s), ``unit`` ("events/s"),
    ``events``, ``max_prime`` and ``primes`` (the count of one event).
    On the host one call with the defaults takes about 35-50 ms
    (~200-280 events/s with CPython 3.11; sysbench itself does ~4500).
    """
    return _timed_events(prime_count, max_prime, events)


def prime_count_numpy(max_prime: int) -> int:
    """:func:`prime_count` vectorised with numpy, doing the same divisions.

    The undecided candidates are kept in an ascending array. At divisor
    ``d`` the candidates below ``d*d`` have survived every divisor up to
    their square root, so they are primes and leave the array; the others
    are divided by ``d`` and the divisible ones leave as composites. Each
    candidate is therefore divided exactly as often as in sysbench's loop
    (up to its first divisor or its square root), but a whole array at a time.
    """
    import numpy as np  # lazily: only this variant needs it

    alive = np.arange(3, max_prime, dtype=np.int64)
    found = 0
    d = 2
    while alive.size:
        k = int(np.searchsorted(alive, d * d))  # alive[:k] < d*d: primes
        found += k
        alive = alive[k:]
        if alive.size:
            alive = alive[alive % d != 0]
        d += 1
    return found


def primes_numpy(max_prime: int = 10000, events: int = 50) -> dict[str, Any]:
    """sysbench's cpu test vectorised with numpy (see :func:`prime_count_numpy`).

    Same work per event as :func:`primes` and sysbench, done in array
    operations: it weighs numpy's C loops (and its ~100 small array
    operations per event) rather than the bytecode interpreter. Records
    ``events`` "events"; returns the same keys as :func:`primes`
    (rate in events/s). numpy is imported before the timed loop. On the
    host one call with the defaults takes about 35-40 ms (~1300 events/s).
    """
    prime_count_numpy(3)  # import numpy outside the timed loop
    return _timed_events(prime_count_numpy, max_prime, events)
