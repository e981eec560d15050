"""What a worker sees of its environment: kernel, CPU model and set, memory,
clock source, interpreter, cgroup limits (the ``hello`` reply).

Imported by the worker at its start (so a VM guest's prestarted worker has
it before the start point); standard library only, and lean: ``platform``
only where /proc/cpuinfo names no CPU model.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def cpu_model() -> str | None:
    """The CPU's model name (/proc/cpuinfo), else what platform says."""
    info = _read("/proc/cpuinfo") or ""
    for line in info.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or None


def _mem_total_mb() -> int | None:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return None


def _cgroup_limits() -> dict[str, Any]:
    """CPU quota and memory limit of this process's cgroup (v2 or v1)."""
    out: dict[str, Any] = {"cgroup_version": None, "cpu_quota": None, "memory_limit_mb": None}
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        out["cgroup_version"] = 2
        cpu_max = _read("/sys/fs/cgroup/cpu.max")
        if cpu_max and not cpu_max.startswith("max"):
            quota, period = cpu_max.split()
            out["cpu_quota"] = int(quota) / int(period)
        mem = _read("/sys/fs/cgroup/memory.max")
        if mem and mem != "max":
            out["memory_limit_mb"] = int(mem) // (1024 * 1024)
    elif os.path.isdir("/sys/fs/cgroup/memory") or os.path.isdir("/sys/fs/cgroup/cpu"):
        out["cgroup_version"] = 1
        quota = _read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
        period = _read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
        if quota and period and int(quota) > 0:
            out["cpu_quota"] = int(quota) / int(period)
        mem = _read("/sys/fs/cgroup/memory/memory.limit_in_bytes")
        if mem and int(mem) < 1 << 60:
            out["memory_limit_mb"] = int(mem) // (1024 * 1024)
    return out


#: platform.python_implementation()'s spelling, without importing platform.
_IMPLEMENTATIONS = {"cpython": "CPython", "pypy": "PyPy", "ironpython": "IronPython", "jython": "Jython"}


def _python_version() -> str:
    """platform.python_version(): the version token of sys.version."""
    return sys.version.split()[0]


def facts() -> dict[str, Any]:
    """What the worker can see of its environment."""
    try:
        cpuset = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpuset = list(range(os.cpu_count() or 1))
    from .clock import timer_resolution

    uname = os.uname()
    data: dict[str, Any] = {
        "kernel": uname.release,
        "machine": uname.machine,
        "hostname": uname.nodename,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpuset": cpuset,
        "memory_total_mb": _mem_total_mb(),
        "clocksource": _read("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
        "python": _python_version(),
        "python_implementation": _IMPLEMENTATIONS.get(sys.implementation.name, sys.implementation.name),
        "executable": sys.executable,
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "timer_resolution": timer_resolution(),
    }
    data.update(_cgroup_limits())
    return data
