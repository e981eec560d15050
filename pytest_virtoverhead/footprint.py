"""What an environment costs the host: start time, memory, CPU, storage.

Pure module (standard library; imports neither pytest, docker nor
libvirt): the readers of ``/proc`` and cgroup files the backends call, the
:class:`Tracker` an environment keeps while it runs, the figures' JSON and
text, and footprint claims (``vm.memory >= 4 * container.memory``,
``container.start <= 0.5 s``) with their parser and three-valued verdicts.

Every figure names its source (``/proc/<pid>/status VmRSS``, a cgroup file,
the docker or libvirt API, ``stat`` of a file), so a reader can tell what
was measured from what was estimated (nothing is estimated).
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from . import textfmt
from .verdict import FAIL, INCONCLUSIVE, PASS, SKIPPED

# --------------------------------------------------------------------------
# readers: /proc and cgroup files

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def proc_status(pid: int) -> dict[str, int]:
    """``/proc/<pid>/status`` memory fields in bytes (VmRSS, VmHWM, ...)."""
    out: dict[str, int] = {}
    for line in _read(f"/proc/{pid}/status").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            out[key] = int(parts[0]) * 1024
    return out


def proc_cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU seconds of ``pid`` (all its threads), plus those of
    its children it has waited for when ``children``: ``/proc/<pid>/stat``."""
    text = _read(f"/proc/{pid}/stat")
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
                kids = [int(x) for x in _read(f"/proc/{parent}/task/{task}/children").split()]
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
    for line in _read(f"/proc/{pid}/cgroup").splitlines():
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
        text = _read(path).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _stat_file(path: str) -> dict[str, int]:
    out = {}
    try:
        for line in _read(path).splitlines():
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
    for line in _read(path).splitlines():
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


# --------------------------------------------------------------------------
# the data model


@dataclass(frozen=True)
class Reading:
    """One figure as read: ``value`` in ``unit`` (``B``, ``s``) and its ``source``."""

    value: float
    unit: str
    source: str


#: What a backend's sample may hold (keys of :meth:`Backend.footprint_sample`).
MEMORY, MEMORY_PEAK, CPU = "memory", "memory_peak", "cpu"


@dataclass
class Tracker:
    """Readings of one environment over a session, turned into figures by
    :meth:`figures`. Fed by the environment handle (envs/base.py): after each
    start, after each test item run in it (so peaks between kernel
    high-water marks are seen), and once at the end."""

    env: str
    kind: str
    starts: list[float] = field(default_factory=list)
    start_source: str = "host clock: backend start to the worker's hello reply"
    memory: list[float] = field(default_factory=list)
    memory_source: str = ""
    idle: Reading | None = None
    end: Reading | None = None
    kernel_peak: Reading | None = None
    guest: list[dict[str, Any]] = field(default_factory=list)
    guest_source: str = "the worker's /proc/meminfo inside the guest"
    cpu_source: str = ""
    cpu_start: float | None = None
    #: CPU seconds of earlier starts (a worker restarted: counters reset).
    _cpu_before: float = 0.0
    _cpu_last: float | None = None
    cpu_in_calls: float = 0.0
    wall_in_calls: float = 0.0
    _t_ready: float | None = None
    _wall_live: float = 0.0
    storage: dict[str, Reading] = field(default_factory=dict)
    #: Seconds each worker process took to start and collect its tests.
    process_starts: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ended: bool = False
    end_parts: dict[str, Reading] = field(default_factory=dict)

    def _note_error(self, what: str, exc: BaseException) -> None:
        text = f"{what}: {type(exc).__name__}: {exc}"
        if text not in self.errors and len(self.errors) < 10:
            self.errors.append(text)

    def on_start(self, seconds: float, sample: Mapping[str, Reading], storage: Mapping[str, Reading]) -> None:
        if self._cpu_last is not None:
            self._cpu_before += self._cpu_last
        self._cpu_last = None
        if self._t_ready is not None:
            self._wall_live += time.monotonic() - self._t_ready
        self.starts.append(seconds)
        self._t_ready = time.monotonic()
        self.ended = False
        self.on_sample(sample)
        if MEMORY in sample and self.idle is None:
            self.idle = sample[MEMORY]
        if CPU in sample and self.cpu_start is None:
            self.cpu_start = sample[CPU].value
        if storage:
            self.storage = dict(storage)

    def on_sample(self, sample: Mapping[str, Reading]) -> None:
        mem = sample.get(MEMORY)
        if mem is not None:
            self.memory.append(float(mem.value))
            self.memory_source = mem.source
        peak = sample.get(MEMORY_PEAK)
        if peak is not None and (self.kernel_peak is None or peak.value >= self.kernel_peak.value):
            self.kernel_peak = peak
        cpu = sample.get(CPU)
        if cpu is not None:
            self._cpu_last = float(cpu.value)
            self.cpu_source = cpu.source

    def on_calls(self, cpu_before: float | None, cpu_after: float | None, wall: float) -> None:
        """A test item ran: the environment's host CPU in that window is the
        measured calls' (and their harness's), not overhead outside them."""
        self.wall_in_calls += wall
        if cpu_before is not None and cpu_after is not None and cpu_after >= cpu_before:
            self.cpu_in_calls += cpu_after - cpu_before

    def on_guest(self, view: Mapping[str, Any], phase: str) -> None:
        self.guest.append({"phase": phase, **{k: int(v) for k, v in view.items() if isinstance(v, (int, float))}})

    def on_end(self, sample: Mapping[str, Reading]) -> None:
        self.on_sample(sample)
        if MEMORY in sample:
            self.end = sample[MEMORY]
        # A breakdown of the end figure ("memory.anon", "memory.cache"), where the backend has one.
        self.end_parts = {k.split(".", 1)[1]: v for k, v in sample.items() if k.startswith(MEMORY + ".")}
        if self._t_ready is not None:
            self._wall_live += time.monotonic() - self._t_ready
            self._t_ready = None
        self.ended = True

    # -- figures ------------------------------------------------------------

    @property
    def cpu_total(self) -> float | None:
        if self._cpu_last is None and not self._cpu_before:
            return None
        return self._cpu_before + (self._cpu_last or 0.0)

    def figures(self) -> dict[str, dict[str, Any]]:
        """{name: {value, unit, source[, samples][, parts]}}: the JSON form."""
        out: dict[str, dict[str, Any]] = {}
        if self.starts:
            out["start"] = {"value": _median(self.starts), "unit": "s", "source": self.start_source,
                            "samples": [round(x, 4) for x in self.starts], "repeated": True}
        if self.process_starts:
            out["process_start"] = {"value": _median(self.process_starts), "unit": "s",
                                    "source": "host clock: each worker process's spawn request to its pytest "
                                              "session's collection reply (median of the processes)",
                                    "samples": [round(x, 4) for x in self.process_starts], "repeated": True}
        if self.idle is not None:
            out["memory_idle"] = _fig(self.idle)
        if self.memory:
            peak_seen = max(self.memory)
            if self.kernel_peak is not None and self.kernel_peak.value >= peak_seen:
                out["memory_peak"] = _fig(self.kernel_peak)
            else:
                out["memory_peak"] = {"value": peak_seen, "unit": "B",
                                      "source": f"largest of {len(self.memory)} samples of {self.memory_source}"}
            out["memory_samples"] = {"value": peak_seen, "unit": "B", "source": self.memory_source,
                             "samples": _thin([int(x) for x in self.memory], 200), "n": len(self.memory),
                             "min": min(self.memory), "max": peak_seen}
        if self.end is not None:
            out["memory_end"] = _fig(self.end)
            if self.end_parts:
                out["memory_end"]["parts"] = {k: _fig(v) for k, v in self.end_parts.items()}
        if self.guest:
            used = [g["used"] for g in self.guest if "used" in g]
            if used:
                out["guest_memory"] = {"value": max(used), "unit": "B",
                                       "source": self.guest_source + " (MemTotal - MemAvailable)",
                                       "samples": used, "min": min(used), "max": max(used),
                                       "phases": [g["phase"] for g in self.guest]}
                touched = [g["touched"] for g in self.guest if "touched" in g]
                out["guest_memory_touched"] = {"value": max(touched), "unit": "B",
                                               "source": self.guest_source + " (MemTotal - MemFree)"}
                out["guest_memory_total"] = {"value": self.guest[-1].get("total"), "unit": "B",
                                             "source": self.guest_source + " (MemTotal)"}
        total = self.cpu_total
        if total is not None:
            outside = max(0.0, total - self.cpu_in_calls)
            out["cpu_start"] = {"value": self.cpu_start, "unit": "s",
                                "source": f"{self.cpu_source} at the first sample after the start"}
            out["cpu"] = {"value": outside, "unit": "s",
                          "source": f"{self.cpu_source}, whole life, minus the CPU during test items "
                                    f"({self.cpu_in_calls:.3f} s in {self.wall_in_calls:.3f} s)",
                          "total": total, "in_calls": self.cpu_in_calls}
            live = self._wall_live + (time.monotonic() - self._t_ready if self._t_ready is not None else 0.0)
            idle_wall = live - self.wall_in_calls
            if idle_wall > 0.5 and self.cpu_start is not None:
                rate = max(0.0, outside - self.cpu_start) / idle_wall
                out["cpu_rate"] = {"value": rate, "unit": "ratio",
                                   "source": f"CPU outside test items after the start, over {idle_wall:.1f} s "
                                             "of wall time outside them (1.0 = one CPU busy)"}
        if self.storage:
            parts = {k: _fig(v) for k, v in self.storage.items()}
            out["storage"] = {"value": sum(v.value for v in self.storage.values()), "unit": "B",
                              "source": "sum of the parts", "parts": parts}
        return out

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "figures": self.figures()}
        if self.errors:
            data["errors"] = list(self.errors)
        return data


def _fig(r: Reading) -> dict[str, Any]:
    return {"value": r.value, "unit": r.unit, "source": r.source}


def _thin(xs: list[int], cap: int) -> list[int]:
    if len(xs) <= cap:
        return xs
    step = len(xs) / cap
    return [xs[int(i * step)] for i in range(cap)]


# --------------------------------------------------------------------------
# text


def format_bytes(value: Any) -> str:
    if not textfmt.finite(value):
        return "-"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {unit}"
    return f"{value:.0f} B"


def format_value(value: Any, unit: str) -> str:
    if unit == "B":
        return format_bytes(value)
    if unit == "s":
        return textfmt.seconds(value, textfmt.SECONDS_UNITS[:3])
    if unit == "ratio":
        return f"{value * 100:.3g}%" if textfmt.finite(value) else "-"
    return str(value)


#: Rows of the terminal section, in order: (figure, label).
ROWS = (("start", "start"), ("process_start", "worker process start"), ("memory_idle", "memory idle"),
        ("memory_peak", "memory peak"),
        ("memory_end", "memory end"), ("guest_memory", "guest's own view"), ("cpu_start", "CPU to start"),
        ("cpu", "CPU outside calls"), ("cpu_rate", "CPU rate outside calls"), ("storage", "storage"))


def section_lines(footprints: Mapping[str, Mapping[str, Any]], labels: Mapping[str, str] | None = None) -> list[str]:
    """The terminal section: per environment, each figure with its source."""
    out: list[str] = []
    labels = labels or {}
    for name, fp in footprints.items():
        figs = fp.get("figures") or {}
        out.append(f"{labels.get(name, name)} ({fp.get('kind')}):")
        if not figs:
            out.append("    (not measured" + (f": {fp['unavailable']}" if fp.get("unavailable") else "") + ")")
        for key, label in ROWS:
            fig = figs.get(key)
            if not fig or fig.get("value") is None:
                continue
            value = format_value(fig["value"], fig.get("unit", ""))
            samples = fig.get("samples") or []
            if fig.get("repeated") and len(samples) > 1:
                value += f" (median of {len(samples)}: {format_value(min(samples), 's')} to " \
                         f"{format_value(max(samples), 's')})"
            if key == "guest_memory" and figs.get("guest_memory_total"):
                value += f" used of {format_bytes(figs['guest_memory_total']['value'])}"
            out.append(f"    {label:<24} {value:>12}  [{fig.get('source', '')}]")
            for part, pf in (fig.get("parts") or {}).items():
                out.append(f"      {part:<22} {format_value(pf['value'], pf.get('unit', 'B')):>12}  "
                           f"[{pf.get('source', '')}]")
        for err in fp.get("errors") or []:
            out.append(f"    (could not read: {err})")
    return out


# --------------------------------------------------------------------------
# claims


#: Metrics a claim may name: {metric: (figure whose observations it judges, unit)}.
METRICS = {
    "start": ("start", "s"),
    "process_start": ("process_start", "s"),
    "memory": ("memory_peak", "B"),
    "memory_idle": ("memory_idle", "B"),
    "memory_peak": ("memory_peak", "B"),
    "memory_end": ("memory_end", "B"),
    "guest_memory": ("guest_memory", "B"),
    "cpu": ("cpu", "s"),
    "cpu_rate": ("cpu_rate", "ratio"),
    "storage": ("storage", "B"),
}
_UNIT_SCALE = {
    "B": ("B", 1), "KB": ("B", 1e3), "MB": ("B", 1e6), "GB": ("B", 1e9),
    "KiB": ("B", 1 << 10), "MiB": ("B", 1 << 20), "GiB": ("B", 1 << 30),
    "us": ("s", 1e-6), "\u00b5s": ("s", 1e-6), "ms": ("s", 1e-3), "s": ("s", 1.0),
}
_UNIT_WORDS = {"B": "a size (B, KB, MB, GB, KiB, MiB, GiB)", "s": "a time (us, ms, s)",
               "ratio": "a percentage (e.g. 5%)"}

_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_\u00b5][A-Za-z0-9_]*)
  | (?P<op><=|>=|~=|==|\+-|±|<|>|\*|\+|-|%|\.)
""", re.VERBOSE)

_REF_RE = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*\s*\.\s*[A-Za-z_]")


def is_footprint_claim(text: str) -> bool:
    """Does ``text`` start with ``ENV.METRIC`` (a footprint claim)?"""
    return isinstance(text, str) and bool(_REF_RE.match(text))


def reject_here(text: str) -> None:
    """Raise ClaimError for a footprint claim given where a test's time
    claims go (a marker, ``virt_claims``, ``--virt-claim``): a footprint is
    the environment's over the session, not a test's."""
    if is_footprint_claim(text):
        raise _error(text, text.index(".") + 1,
                     "a footprint claim (ENV.METRIC) is about the environments of the session, not a test's "
                     "time: list it in the ini key virt_footprint_claims or pass --virt-footprint-claim")


@dataclass(frozen=True)
class Ref:
    env: str
    metric: str
    env_col: int


@dataclass(frozen=True)
class FootprintClaim:
    """``left OP factor * right + offset`` (``right`` None: ``left OP offset``).
    ``offset`` is in the metric's unit (bytes, seconds, a fraction)."""

    text: str
    left: Ref
    op: str
    right: Ref | None
    factor: float
    offset: float
    unit: str

    @property
    def envs(self) -> tuple[str, ...]:
        return (self.left.env,) + ((self.right.env,) if self.right else ())

    def describe(self) -> str:
        rhs = ""
        if self.right is not None:
            rhs = (f"{self.factor:g} * " if self.factor != 1 else "") + f"{self.right.env}.{self.right.metric}"
            if self.offset:
                rhs += f" {'+' if self.offset > 0 else '-'} {format_value(abs(self.offset), self.unit)}"
        else:
            rhs = format_value(self.offset, self.unit)
        return f"{self.left.env}.{self.left.metric} {self.op} {rhs}"


def _error(text: str, col: int, reason: str):
    from .claims import ClaimError  # the same error, caret and all, as a time claim's

    return ClaimError(text, col, reason)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN_RE.match(text, pos)
            if not m:
                raise _error(text, pos + 1, f"unexpected character {text[pos]!r}")
            if m.lastgroup != "ws":
                self.toks.append((m.lastgroup, m.group(), pos + 1))
            pos = m.end()
        self.toks.append(("end", "", len(text) + 1))
        self.i = 0

    @property
    def tok(self) -> tuple[str, str, int]:
        return self.toks[self.i]

    def found(self) -> str:
        kind, text, _ = self.tok
        return "the end of the claim" if kind == "end" else repr(text)

    def fail(self, reason: str, col: int | None = None):
        return _error(self.text, self.tok[2] if col is None else col, reason)

    def ref(self) -> Ref:
        kind, env, col = self.tok
        if kind != "name":
            raise self.fail(f"expected an environment name, found {self.found()}")
        self.i += 1
        if self.tok[1] != ".":
            raise self.fail(f"expected '.' and a metric after {env!r} (e.g. {env}.memory), found {self.found()}")
        self.i += 1
        kind, metric, mcol = self.tok
        if kind != "name":
            raise self.fail(f"expected a metric after '{env}.', found {self.found()}")
        if metric not in METRICS:
            raise self.fail(f"unknown metric {metric!r}; metrics: {', '.join(METRICS)}")
        self.i += 1
        return Ref(env, metric, col)

    def quantity(self, unit: str) -> float:
        kind, num, col = self.tok
        if kind != "number":
            raise self.fail(f"expected a number, found {self.found()}")
        self.i += 1
        value = float(num)
        kind, word, ucol = self.tok
        if unit == "ratio":
            if word != "%":
                raise self.fail(f"expected '%' after {num}: this metric is {_UNIT_WORDS[unit]}")
            self.i += 1
            return value / 100
        if kind != "name" or word not in _UNIT_SCALE:
            if kind == "name":
                raise self.fail(f"unknown unit {word!r}; this metric is {_UNIT_WORDS[unit]} (a factor takes "
                                f"'*': {num} * ENV.METRIC)")
            raise self.fail(f"expected a unit after {num}: this metric is {_UNIT_WORDS[unit]}")
        dim, scale = _UNIT_SCALE[word]
        if dim != unit:
            raise self.fail(f"{word!r} is {_UNIT_WORDS[dim].split(' (')[0]}, but this metric is {_UNIT_WORDS[unit]}")
        self.i += 1
        return value * scale

    def parse(self) -> FootprintClaim:
        left = self.ref()
        unit = METRICS[left.metric][1]
        kind, op, col = self.tok
        if op in ("~=", "=="):
            raise self.fail(f"{op!r} is not a footprint operator: use <=, >=, < or > (bound both sides with "
                            "two claims)")
        if op not in ("<=", ">=", "<", ">"):
            raise self.fail(f"expected <=, >=, < or > after {left.env}.{left.metric}, found {self.found()}")
        self.i += 1
        factor, right, offset = 1.0, None, 0.0
        kind, text, col = self.tok
        if kind == "number" and self.toks[self.i + 1][1] == "*":
            factor = float(text)
            if factor <= 0:
                raise self.fail("the factor must be positive")
            self.i += 2
            right = self.ref()
        elif kind == "number":
            offset = self.quantity(unit)
            if offset <= 0:
                raise self.fail("a bound must be positive", col)
        elif kind == "name":
            right = self.ref()
            if self.tok[1] == "*":
                self.i += 1
                k, num, c = self.tok
                if k != "number":
                    raise self.fail(f"expected a factor after '*', found {self.found()}")
                factor = float(num)
                if factor <= 0:
                    raise self.fail("the factor must be positive")
                self.i += 1
        else:
            raise self.fail(f"expected a bound (e.g. 0.5 s, 512 MiB) or ENV.METRIC, found {self.found()}")
        if right is not None:
            runit = METRICS[right.metric][1]
            if runit != unit:
                raise _error(self.text, right.env_col,
                             f"{right.env}.{right.metric} is {_UNIT_WORDS[runit].split(' (')[0]}, "
                             f"{left.env}.{left.metric} {_UNIT_WORDS[unit].split(' (')[0]}: they do not compare")
            if self.tok[1] in ("+", "-"):
                sign = 1 if self.tok[1] == "+" else -1
                self.i += 1
                k, num, c = self.tok
                if k == "number" and self.toks[self.i + 1][1] == "%" and unit != "ratio":
                    self.i += 2
                    factor *= 1 + sign * float(num) / 100
                    if factor <= 0:
                        raise self.fail("the percentage leaves no positive factor", c)
                else:
                    offset = sign * self.quantity(unit)
        if self.tok[0] != "end":
            raise self.fail(f"unexpected {self.tok[1]!r} after the end of the claim")
        return FootprintClaim(self.text, left, op, right, factor, offset, unit)


def parse_claim(text: str) -> FootprintClaim:
    """Parse one footprint claim; raise claims.ClaimError naming the column."""
    if not isinstance(text, str):
        raise _error(repr(text), 1, f"a claim must be a string, not {type(text).__name__}")
    return _Parser(text.strip()).parse()


def check_envs(claim: FootprintClaim, known: Iterable[str], elsewhere: Iterable[str] = ()) -> list[str]:
    """The claim's environments known elsewhere but not in this run (it is
    then skipped); ClaimError at the column of a name known nowhere."""
    known, elsewhere = list(known), set(elsewhere)
    absent = []
    for ref in (claim.left, claim.right):
        if ref is None or ref.env in known:
            continue
        if ref.env in elsewhere:
            absent.append(ref.env)
            continue
        also = f"; kinds and other declared environments: {', '.join(sorted(elsewhere))}" if elsewhere else ""
        raise _error(claim.text, ref.env_col,
                     f"unknown environment {ref.env!r}; environments of this run: {', '.join(known)}{also}")
    return absent


def parse_claims(texts: Iterable[str], source: str, known: Iterable[str],
                 elsewhere: Iterable[str] = ()) -> list[FootprintClaim]:
    """Parse and check claims; ValueError ``source: invalid claim at column ...``."""
    from .claims import ClaimError

    out = []
    for text in texts:
        try:
            claim = parse_claim(text)
            check_envs(claim, known, elsewhere)
        except ClaimError as exc:
            raise ValueError(f"{source}: {exc}") from None
        out.append(claim)
    return out


def observations(footprints: Mapping[str, Mapping[str, Any]], ref: Ref) -> tuple[list[float], str]:
    """The observed values of ``ref`` (several where the figure was measured
    repeatedly: each start, each worker process's start), and why there are none."""
    fp = footprints.get(ref.env)
    if fp is None:
        return [], f"{ref.env}: not in this run"
    if fp.get("unavailable"):
        return [], f"{ref.env}: unavailable"
    fig = (fp.get("figures") or {}).get(METRICS[ref.metric][0])
    if not fig or fig.get("value") is None:
        return [], f"{ref.env}.{ref.metric}: not measured" + (" here (a VM's only)" if ref.metric == "guest_memory"
                                                               else "")
    samples = [float(x) for x in (fig.get("samples") or []) if textfmt.finite(x)]
    if not fig.get("repeated"):
        samples = []  # one figure (a peak, a total): judged on its value alone
    return (samples or [float(fig["value"])]), ""


def evaluate(claim: FootprintClaim, footprints: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The claim's verdict on the figures (a :meth:`Tracker.to_json` per env).

    A figure measured once gives ``pass`` or ``fail``. Where it was measured
    repeatedly (``start`` of an environment started more than once,
    ``process_start`` of its worker processes), the claim is judged over
    the range of the observations: ``pass`` when every pairing
    satisfies it, ``fail`` when none does, ``inconclusive`` otherwise.
    """
    out: dict[str, Any] = {"claim": claim.text, "kind": "footprint", "metric": claim.left.metric,
                           "unit": claim.unit, "left": f"{claim.left.env}.{claim.left.metric}",
                           "right": f"{claim.right.env}.{claim.right.metric}" if claim.right else None,
                           "factor": claim.factor, "offset": claim.offset, "op": claim.op}
    left, why = observations(footprints, claim.left)
    right: list[float] = [0.0]
    if not why and claim.right is not None:
        right, why = observations(footprints, claim.right)
    if why:
        out.update(verdict=SKIPPED, reason=why)
        return out
    rhs = [claim.factor * r + claim.offset for r in right]
    # d = left - rhs over every pairing: its range decides.
    lo, hi = min(left) - max(rhs), max(left) - min(rhs)
    holds = {"<=": lambda d: d <= 0, "<": lambda d: d < 0, ">=": lambda d: d >= 0, ">": lambda d: d > 0}[claim.op]
    a, b = holds(lo), holds(hi)
    verdict = PASS if a and b else FAIL if not a and not b else INCONCLUSIVE
    out.update(verdict=verdict, observed=[min(left), max(left)], n=len(left),
               bound=[min(rhs), max(rhs)])
    if claim.right is not None:
        out["right_observed"] = [min(right), max(right)]
        if min(right) > 0:
            out["ratio"] = _median(left) / _median(right)
            out["ratio_range"] = [min(left) / max(right), max(left) / min(right)]
    return out


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def claim_line(res: Mapping[str, Any]) -> str:
    """``pass  vm.memory >= 4 * container.memory  vm.memory 1.1 GiB; bound 412 MiB; ratio 10.7``"""
    verdict = res["verdict"]
    tag = verdict.upper() if verdict == FAIL else verdict
    text = f"{tag:<13} {res['claim']}"
    if verdict == SKIPPED:
        return f"{text}  ({res.get('reason')})"
    unit = res["unit"]

    def span(pair: list[float]) -> str:
        lo, hi = pair
        if math.isclose(lo, hi):
            return format_value(lo, unit)
        return f"[{format_value(lo, unit)}, {format_value(hi, unit)}]"

    text += f"  {res['left']} {span(res['observed'])}"
    if res.get("right"):
        text += f", {res['right']} {span(res['right_observed'])}"
        if "ratio" in res:
            rr = res["ratio_range"]
            text += f", ratio {res['ratio']:.3g}" + ("" if math.isclose(rr[0], rr[1]) else
                                                      f" [{rr[0]:.3g}, {rr[1]:.3g}]")
    else:
        text += f" (needs {res['op']} {format_value(res['bound'][0], unit)})"
    return text
