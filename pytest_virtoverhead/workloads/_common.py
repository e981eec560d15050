"""Helpers shared by the workloads: the scratch directory and the result dict.

Pure standard library: workloads run inside every environment's worker.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from ..guest.work import record_work
from ..wire.envvars import SCRATCH_ENV


def scratch_dir() -> str:
    """The environment's scratch directory (``$VIRTOVERHEAD_SCRATCH``), or the
    temporary directory when the variable is unset (a plain pytest run)."""
    return os.environ.get(SCRATCH_ENV) or tempfile.gettempdir()


def finish(amount: float, unit: str, seconds: float, **extra: Any) -> dict[str, Any]:
    """Record ``amount`` of ``unit`` for the current call and build the
    result every workload returns: ``seconds``, ``rate`` (``amount /
    seconds``), ``unit`` (``unit + "/s"``), ``amount`` and ``extra``."""
    seconds = max(float(seconds), 1e-9)
    if amount > 0:
        # ``seconds`` is the workload's own timing (sysbench's total time, a
        # timed loop): the report's rate is amount / seconds, the workload's
        # own figure, not amount over the call's wall time.
        record_work(amount, unit, seconds=seconds,
                    **{k: v for k, v in extra.items() if isinstance(v, (int, float, str))})
    return {"seconds": seconds, "rate": amount / seconds, "unit": f"{unit}/s", "amount": amount, **extra}


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value
