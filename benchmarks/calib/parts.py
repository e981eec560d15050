"""The parts by name: what runs each and what turns its records into figures."""

from __future__ import annotations

from typing import Any, Callable

from . import aa, compare, floor, scale
from .session import Calibration

RUN: dict[str, Callable[[Calibration], dict[str, Any]]] = {
    "aa-call": aa.run_aa_call, "aa-bench": aa.run_aa_bench, "aa-container": aa.run_aa_container,
    "aa-xdist": aa.run_aa_xdist, "floor": floor.run_floor, "scale": scale.run_scale, "compare": compare.run_compare}
SUMMARIZE: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "aa-call": aa.summarize_control, "aa-bench": aa.summarize_control, "aa-xdist": aa.summarize_control,
    "aa-container": aa.summarize_container, "floor": floor.summarize, "scale": scale.summarize,
    "compare": compare.summarize}


def summarize(name: str, part: dict[str, Any]) -> dict[str, Any]:
    """The figures of one part from its session (and, for compare, pair)
    records."""
    fn = SUMMARIZE.get(name)
    return fn(part) if fn else {}
