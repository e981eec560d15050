"""Readings of ``/proc`` and cgroup files: a process tree's memory and CPU
time, a cgroup's, a kernel's own view of its memory, a path's storage.

Standard library only: the backends call these on the host, and a worker
calls :func:`guest_memory` inside a VM.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def proc_status(pid: int) -> dict[str, int]:
    """``/proc/<pid>/status`` memory fields in bytes (VmRSS, VmHWM, ...)."""
    out: dict[str, int] = {}
    for line in read_text(f"/proc/{pid}/status").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            out[key] = int(parts[0]) * 1024
    return out


def proc_cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU seconds of ``pid`` (all its threads), plus those of
    its children it has waited for when ``children``: ``/proc/<pid>/stat``."""
    text = read_text(f"/proc/{pid}/stat")
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state): utime is field 14, cstime field 17.
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _CLK_TCK


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (``/proc/<pid>/task/*/children``)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                kids = [int(x) for x in read_text(f"/proc/{parent}/task/{task}/children").split()]
            except (OSError, ValueError):
                continue
            for kid in kids:
                if kid not in out:
                    out.append(kid)
                    todo.append(kid)
    return out


def tree_memory(pid: int) -> tuple[int, int, int]:
    """(sum of VmRSS, sum of VmHWM, processes) over ``pid`` and its live
    descendants. The sum of high-water marks bounds the tree's peak from
    above (the processes need not have peaked at the same moment)."""
    rss = hwm = n = 0
    for p in [pid, *descendants(pid)]:
        try:
            st = proc_status(p)
        except OSError:
            continue
        rss += st.get("VmRSS", 0)
        hwm += st.get("VmHWM", 0)
        n += 1
    return rss, hwm, n


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` (with its waited-for children) and of its live
    descendants (their own threads only, so nothing counts twice)."""
    total = proc_cpu_seconds(pid, children=True)
    for p in descendants(pid):
        try:
            total += proc_cpu_seconds(p, children=False)
        except (OSError, ValueError, IndexError):
            continue
    return total


CGROUP_ROOT = "/sys/fs/cgroup"


def cgroup_dirs(pid: int, root: str = CGROUP_ROOT) -> dict[str, str]:
    """{controller: directory} of ``pid``'s cgroups from ``/proc/<pid>/cgroup``:
    v1 hierarchies by controller (``memory``, ``cpuacct``), the v2 one as ``""``."""
    out: dict[str, str] = {}
    for line in read_text(f"/proc/{pid}/cgroup").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            for mount in (os.path.join(root, "unified"), root):
                if os.path.exists(os.path.join(mount, "cgroup.controllers")) or mount == root:
                    candidate = mount + path
                    if os.path.isdir(candidate):
                        out[""] = candidate
                        break
            continue
        for ctl in controllers.split(","):
            for mount in (os.path.join(root, ctl), os.path.join(root, controllers)):
                if os.path.isdir(mount + path):
                    out[ctl] = mount + path
                    break
    return out


def _int_file(path: str) -> int | None:
    try:
        text = read_text(path).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _stat_file(path: str) -> dict[str, int]:
    out = {}
    try:
        for line in read_text(path).splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                out[key] = int(value)
    except OSError:
        pass
    return out


def cgroup_memory(dirs: Mapping[str, str]) -> dict[str, Any] | None:
    """The cgroup's memory accounting: ``current``, ``peak`` (the kernel's
    high-water mark: v1 ``memory.max_usage_in_bytes``, v2 ``memory.peak``),
    ``anon`` (v1 ``total_rss``, v2 ``anon``) in bytes, with ``version`` and
    the files read; None without a memory cgroup."""
    if "memory" in dirs:
        d = dirs["memory"]
        cur = _int_file(os.path.join(d, "memory.usage_in_bytes"))
        if cur is None:
            return None
        stat = _stat_file(os.path.join(d, "memory.stat"))
        return {"version": 1, "dir": d, "current": cur,
                "current_file": "memory.usage_in_bytes",
                "peak": _int_file(os.path.join(d, "memory.max_usage_in_bytes")),
                "peak_file": "memory.max_usage_in_bytes",
                "anon": stat.get("total_rss", stat.get("rss")), "cache": stat.get("total_cache", stat.get("cache"))}
    if "" in dirs:
        d = dirs[""]
        cur = _int_file(os.path.join(d, "memory.current"))
        if cur is None:
            return None
        stat = _stat_file(os.path.join(d, "memory.stat"))
        return {"version": 2, "dir": d, "current": cur, "current_file": "memory.current",
                "peak": _int_file(os.path.join(d, "memory.peak")), "peak_file": "memory.peak",
                "anon": stat.get("anon"), "cache": stat.get("file")}
    return None


def cgroup_cpu_seconds(dirs: Mapping[str, str]) -> tuple[float, str] | None:
    """CPU seconds the cgroup's tasks used, and the file read."""
    if "cpuacct" in dirs:
        ns = _int_file(os.path.join(dirs["cpuacct"], "cpuacct.usage"))
        if ns is not None:
            return ns / 1e9, "cpuacct.usage"
    if "" in dirs:
        usec = _stat_file(os.path.join(dirs[""], "cpu.stat")).get("usage_usec")
        if usec is not None:
            return usec / 1e6, "cpu.stat usage_usec"
    return None


def meminfo(path: str = "/proc/meminfo") -> dict[str, int]:
    """``/proc/meminfo`` in bytes."""
    out: dict[str, int] = {}
    for line in read_text(path).splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return out


def guest_memory() -> dict[str, int]:
    """The running kernel's own view of its memory, for a worker to report
    (``env.run(footprint.guest_memory)``): ``total`` (MemTotal), ``used``
    (MemTotal - MemAvailable: what the guest could not give back), ``touched``
    (MemTotal - MemFree: every page it has put to use, page cache included)."""
    info = meminfo()
    total = info.get("MemTotal", 0)
    return {"total": total, "used": total - info.get("MemAvailable", info.get("MemFree", 0)),
            "touched": total - info.get("MemFree", 0), "free": info.get("MemFree", 0)}


def find_pid(needle: str, comm_prefix: str = "") -> int | None:
    """The pid of the process whose command line holds ``needle`` (e.g.
    ``guest=<domain name>``), or None."""
    want = needle.encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if want in cmd and (not comm_prefix or os.path.basename(cmd.split(b"\0", 1)[0]).decode(
                "utf-8", "replace").startswith(comm_prefix)):
            return int(name)
    return None


def path_bytes(path: str) -> tuple[int, int]:
    """(allocated bytes, apparent bytes) of a file, or of every file under a
    directory (``stat``: st_blocks * 512, st_size); (0, 0) when missing."""
    alloc = size = 0
    try:
        st = os.lstat(path)
    except OSError:
        return 0, 0
    if not os.path.isdir(path):
        return st.st_blocks * 512, st.st_size
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            alloc += st.st_blocks * 512
            size += st.st_size
    return alloc, size
