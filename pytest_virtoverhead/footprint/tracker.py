"""What an environment costs the host, over a session: the :class:`Tracker`
an environment keeps while it runs, fed :class:`Reading` s (a figure, its
unit and its source), and the figures' JSON (:meth:`Tracker.to_json`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping


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

    def note_error(self, what: str, exc: BaseException) -> None:
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
            out["start"] = {"value": median(self.starts), "unit": "s", "source": self.start_source,
                            "samples": [round(x, 4) for x in self.starts], "repeated": True}
        if self.process_starts:
            out["process_start"] = {"value": median(self.process_starts), "unit": "s",
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


def median(xs: list[float]) -> float:
    """The median of the observations of a figure measured repeatedly."""
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _fig(r: Reading) -> dict[str, Any]:
    return {"value": r.value, "unit": r.unit, "source": r.source}


def _thin(xs: list[int], cap: int) -> list[int]:
    if len(xs) <= cap:
        return xs
    step = len(xs) / cap
    return [xs[int(i * step)] for i in range(cap)]
