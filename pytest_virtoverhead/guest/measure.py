"""Calibration and the timing loop. Runs inside the worker, in the environment.

Pure standard library: this module must import wherever the worker runs.
The approach follows timeit, pyperf and pytest-benchmark: find how many calls
make one sample long enough for the timer, run warm-up samples that are thrown
away, and keep the collector out of the timed region unless asked.
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from .clock import timer_resolution

TIMER = time.perf_counter
#: No sample is asked to be shorter than this many timer resolutions.
RESOLUTION_FACTOR = 1000
MAX_LOOPS = 10**9


@dataclass
class BenchOptions:
    """How to time a function; every field has a usable default."""

    samples: int = 15
    warmup: int = 1
    #: Target duration of one sample, in seconds (the loop count is calibrated
    #: to reach it).
    sample_time: float = 0.01
    #: Keep the garbage collector running during timed loops.
    gc: bool = False
    #: Give up adding samples past this many seconds (at least 1 sample).
    max_time: float = 60.0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "BenchOptions":
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"unknown benchmark option(s) {sorted(unknown)}; known: "
                f"{sorted(cls.__dataclass_fields__)}"
            )
        opts = cls(**data)
        if opts.samples < 1:
            raise ValueError("samples must be >= 1")
        if opts.warmup < 0:
            raise ValueError("warmup must be >= 0")
        if not opts.sample_time > 0:
            raise ValueError("sample_time must be > 0")
        return opts


@dataclass
class BenchResult:
    samples: list[float]  # seconds per call
    loops: int
    warmup: int
    timer: str
    timer_resolution: float
    total_time: float
    stopped_by: str = "samples"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _time_loops(call: Callable[[], Any], loops: int) -> float:
    rng = range(loops)
    t0 = TIMER()
    for _ in rng:
        call()
    return TIMER() - t0


def calibrate(call: Callable[[], Any], min_time: float) -> int:
    """Return a loop count whose duration is at least ``min_time``."""
    loops = 1
    while True:
        elapsed = _time_loops(call, loops)
        if elapsed >= min_time or loops >= MAX_LOOPS:
            return loops
        if elapsed <= 0:
            loops *= 10
        else:
            # Aim a little above the target so the next try usually suffices.
            loops = max(loops * 2, math.ceil(loops * min_time * 1.2 / elapsed))
        loops = min(loops, MAX_LOOPS)


def benchmark(fn: Callable[..., Any], args: tuple = (), kwargs: dict | None = None,
              options: BenchOptions | None = None) -> BenchResult:
    """Time ``fn(*args, **kwargs)``: calibrated loops, warm-up, samples."""
    opts = options or BenchOptions()
    kwargs = kwargs or {}

    def call() -> Any:
        return fn(*args, **kwargs)

    resolution = timer_resolution()
    min_time = max(opts.sample_time, resolution * RESOLUTION_FACTOR)
    gc_was_enabled = gc.isenabled()
    start = TIMER()
    samples: list[float] = []
    stopped_by = "samples"
    try:
        gc.collect()
        if not opts.gc:
            gc.disable()
        loops = calibrate(call, min_time)
        for _ in range(opts.warmup):
            _time_loops(call, loops)
        for _ in range(opts.samples):
            samples.append(_time_loops(call, loops) / loops)
            if TIMER() - start > opts.max_time:
                stopped_by = "max_time"
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return BenchResult(
        samples=samples,
        loops=loops,
        warmup=opts.warmup,
        timer="perf_counter",
        timer_resolution=resolution,
        total_time=TIMER() - start,
        stopped_by=stopped_by,
    )
