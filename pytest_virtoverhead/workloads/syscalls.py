"""System-call workload: a tight loop of a cheap syscall.

A container runs the host's own kernel, so a syscall costs the same there
unless seccomp filters it (a few ns per call; moby/moby#37902 measured +0.3%
for getpid). In a KVM guest a plain syscall does not exit to the hypervisor;
under QEMU TCG every instruction is emulated. The Python call overhead
(~50 ns) is part of each operation.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ._common import finish, positive_int


def getppid(n: int = 500_000) -> dict[str, Any]:
    """Call ``os.getppid()`` ``n`` times (a real syscall every time: glibc
    does not cache it).

    Records ``n`` "ops" (rate in ops/s). Returns ``seconds``, ``rate`` and
    ``ops_per_s`` (ops/s), ``unit`` ("ops/s"), ``ops``, ``ns_per_op``.
    With the defaults one call takes about 50-100 ms on the host.
    """
    positive_int("n", n)
    call = os.getppid
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    seconds = time.perf_counter() - t0
    out = finish(n, "ops", seconds, syscall="getppid")
    out.update(ops=n, ops_per_s=out["rate"], ns_per_op=out["seconds"] / n * 1e9)
    return out
