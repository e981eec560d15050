"""Measuring CPUs for pytest-xdist workers: how many workers a run asks
for, which CPUs ``--virt-cpus`` offers them, one each, and the usage error
when there are fewer CPUs than workers.

Two measuring sessions on one CPU would each time the other's work, so a
worker measures alone on its CPU. ``--virt-cpus=auto`` offers one CPU per
physical core (SMT siblings share a core's caches and execution units),
leaving out the core of the lowest CPU, which keeps the host's own
housekeeping (pytest-xdist's controller, docker and libvirt daemons, the
kernel's work), unless it is the only core. An explicit list is taken as
written; ``all`` pins nothing and so serves one worker only.

Standard library only; no pytest.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Sequence

from ..judge.optionvalues import parse_cpus

#: Where Linux names the CPUs sharing a core with CPU N.
SIBLINGS = "/sys/devices/system/cpu/cpu{}/topology/thread_siblings_list"


def tx_count(specs: Iterable[str]) -> int:
    """Workers of xdist's ``--tx`` specs: ``2*popen`` is two, ``popen`` one."""
    total = 0
    for spec in specs:
        m = re.match(r"\s*(\d+)\s*\*", spec)
        total += int(m.group(1)) if m else 1
    return total


def core_of(cpu: int) -> str:
    """The core CPU ``cpu`` belongs to, as the kernel lists its threads
    (``0,4``); the CPU itself where the topology is not readable."""
    try:
        with open(SIBLINGS.format(cpu)) as f:
            return f.read().strip() or str(cpu)
    except OSError:
        return str(cpu)


def auto_cpus(available: Iterable[int], core: Callable[[int], str] = core_of) -> list[int]:
    """The CPUs ``--virt-cpus=auto`` shares out, highest first (a serial
    run's auto takes the last CPU too): one per core, without the core of
    the lowest CPU when there is another core."""
    avail = sorted(set(available))
    if not avail:
        return []
    cores: dict[str, int] = {}
    for cpu in avail:
        cores.setdefault(core(cpu), cpu)  # the lowest thread of each core
    housekeeping = core(avail[0])
    if len(cores) > 1:
        cores.pop(housekeeping, None)
    return sorted(cores.values(), reverse=True)


def offered(text: str, available: Iterable[int], core: Callable[[int], str] = core_of) -> list[int] | None:
    """The CPUs ``--virt-cpus=text`` offers workers; None for ``all``
    (no pinning). ValueError for a malformed list, as a serial run says."""
    avail = sorted(available)
    word = text.strip().lower()
    if word == "auto":
        return auto_cpus(avail, core)
    cpus = parse_cpus(text, avail)
    return None if cpus is None else list(cpus)


def assign(text: str, workers: int, how: str, available: Sequence[int],
           core: Callable[[int], str] = core_of) -> list[tuple[int, ...] | None]:
    """One CPU set per worker (a single CPU each; None: unpinned, for one
    worker under ``all``); ValueError saying why and what to pass when
    ``workers`` (asked for by ``how``: ``-n 4``) exceed the CPUs offered."""
    avail = sorted(available)
    cpus = offered(text, avail, core)
    why = "two measuring sessions on one CPU would each time the other's work"
    if cpus is None:
        if workers <= 1:
            return [None] * workers
        raise ValueError(
            f"{how}: {workers} pytest-xdist workers would share every CPU under --virt-cpus=all ({why}); "
            f"name the CPUs to share out, one per worker, e.g. --virt-cpus={_span(avail[:workers])}")
    if workers <= len(cpus):
        return [(cpu,) for cpu in cpus[:workers]]
    word = text.strip().lower()
    if word == "auto":
        house = [c for c in avail if core(c) == core(avail[0])] if len(avail) > len(cpus) else []
        siblings = sorted(set(avail) - set(cpus) - set(house))
        why_not = ([f"CPU {_span(house)} kept for the host's housekeeping"] if house else []) + (
            [f"CPU {_span(siblings)} SMT sibling(s) of a measuring CPU"] if siblings else [])
        offer = (f"--virt-cpus=auto offers {len(cpus)} measuring CPU(s) here: {_span(cpus)}"
                 + (f" ({'; '.join(why_not)})" if why_not else ""))
    else:
        offer = f"--virt-cpus={text.strip()} names {len(cpus)} CPU(s): {_span(cpus)}"
    fix = [f"-n {len(cpus)}" + (" (or -n auto)" if word == "auto" else "")]
    if len(avail) >= workers:
        fix.append(f"--virt-cpus={_span(sorted(avail, reverse=True)[:workers])} to measure on {workers} CPUs")
    return _refuse(f"{how}: {workers} pytest-xdist workers need {workers} measuring CPUs, one each ({why}), "
                   f"but {offer}. Pass {' or '.join(fix)} (CPUs available here: {_span(avail)})")


def _refuse(message: str) -> list[tuple[int, ...] | None]:
    raise ValueError(message)


def _span(cpus: Iterable[int]) -> str:
    """``0-3,6``: a CPU list as --virt-cpus reads it."""
    xs = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        parts.append(str(xs[i]) if i == j else f"{xs[i]}-{xs[j]}")
        i = j + 1
    return ",".join(parts)
