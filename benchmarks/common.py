"""Helpers shared by the benchmark scripts (not a test module, not installed).

- :func:`machine`: what the numbers were measured on (CPU, cores, kernel, load);
- :func:`quantiles`: median / p10 / p90 of a list;
- :func:`measure_env`: start an environment several times (start to worker
  ready, first call) and time warm no-op calls into the last one;
- :func:`noop`: an empty job, importable by the worker as ``common.noop``.

Jobs are named by module, so a script that passes a function defined here to
``env.run`` must import this file as the module ``common`` (the scripts put
their own directory first on ``sys.path``), not run it as ``__main__``.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from pytest_virtoverhead.envs import Environment, EnvSpec, RunContext, backend_class  # noqa: E402
from pytest_virtoverhead.guest import envfacts  # noqa: E402


def noop() -> None:
    """An empty job."""
    return None


def cpu_model() -> str:
    return envfacts.cpu_model() or "unknown CPU"


def machine() -> dict[str, Any]:
    """The machine the numbers come from, with its load right now."""
    return {
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "os": _os_release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def _os_release() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def quantiles(xs: list[float]) -> tuple[float, float, float]:
    """(median, p10, p90) of ``xs`` (nearest rank for the tails)."""
    xs = sorted(xs)
    pick = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]  # noqa: E731
    return statistics.median(xs), pick(0.1), pick(0.9)


def make_env(kind: str, options: dict[str, str], ctx: RunContext, name: str | None = None) -> Environment:
    return Environment(backend_class(kind)(EnvSpec(name or kind, kind, options), ctx))


def measure_env(kind: str, options: dict[str, str], starts: int, calls: int, ctx: RunContext,
                job: Callable[[], Any] = os.getpid, warmup: int = 50,
                log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Start ``kind`` ``starts`` times (a fresh environment each time: start
    to worker ready, i.e. Environment.start() including the ``hello`` reply,
    then the first call); in the last one, time ``calls`` warm calls of
    ``job`` after ``warmup`` untimed ones. Times are host wall clock, seconds.

    Returns {"start", "first", "call": [seconds...], "boot": [backend boot
    seconds (VMs)], "metadata": the last environment's metadata, "metas":
    every start's metadata}.
    """
    out: dict[str, Any] = {"start": [], "first": [], "call": [], "boot": [], "metadata": {}, "metas": []}
    for i in range(starts):
        env = make_env(kind, options, ctx)
        try:
            t0 = time.perf_counter()
            env.start()
            out["start"].append(time.perf_counter() - t0)
            if "boot_seconds" in env.metadata:
                out["boot"].append(env.metadata["boot_seconds"])
            out["metas"].append(env.metadata)
            t0 = time.perf_counter()
            env.run(job)
            out["first"].append(time.perf_counter() - t0)
            if i == starts - 1:
                for _ in range(warmup):
                    env.run(job)
                for _ in range(calls):
                    t0 = time.perf_counter()
                    env.run(job)
                    out["call"].append(time.perf_counter() - t0)
                out["metadata"] = env.metadata
        finally:
            env.stop()
        if log:
            log(f"{kind} start {i + 1}/{starts}: {out['start'][-1]:.3f} s")
    return out


#: A VM start's phases (VMBackend metadata ``boot_phases``: host seconds
#: since the domain's creation began) as (label, from, to); a missing
#: phase (``restored`` in a boot, ``start point`` in a restore) is skipped.
VM_PHASES = [
    ("libvirt creates the domain (QEMU starts)", None, "created"),
    ("QEMU loads the saved state", "created", "restored"),
    ("kernel boot and module loads, to the start point", "created", "start point"),
    ("saving the state (first start of a configuration)", "start point", "saved"),
    ("9p mount, /dev, /proc, scratch disk", ("saved", "start point", "resumed"), "starting worker"),
    ("interpreter, site, worker imports, ready", "starting worker", "ready"),
]


def vm_phase_values(metas: list[dict[str, Any]]) -> list[tuple[str, list[float]]]:
    """Per phase, the seconds it took in each start that had it."""
    out = []
    for label, start, end in VM_PHASES:
        values = []
        for meta in metas:
            ph = meta.get("boot_phases") or {}
            starts = start if isinstance(start, tuple) else (start,)
            begin = next((ph[s] for s in starts if s is not None and s in ph), 0.0 if None in starts else None)
            if end in ph and begin is not None:
                values.append(ph[end] - begin)
        if values:
            out.append((label, values))
    return out


def cpu_ticks() -> tuple[int, int]:
    """(all CPU time, steal time) so far, /proc/stat ticks: steal is what a
    hypervisor under this machine took from its CPUs."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields[:8]), fields[7]
    except (OSError, IndexError, ValueError):
        return 0, 0
