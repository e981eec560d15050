"""What an environment adds over the baseline.

An environment's own figures count the plugin's worker processes too: a
container's memory is mostly its Python workers, and the host's
"environment" holds as much the same way. So beside each figure, for
every environment but the baseline, the overhead over the baseline for the
same work: the environment's figure minus the baseline's, the baseline's
scaled to the environment's number of worker processes where the figure
grows with them (memory peak and end, CPU outside calls). Start times and
the idle memory (one worker, before any process is spawned) are compared
as they are. Every added figure names both figures and the scale in its
source; nothing is estimated.
"""

from __future__ import annotations

from typing import Any, Mapping

from .text import format_value

#: (figure, added figure, scaled by worker processes).
ADDED = (("start", "start_added", False), ("memory_idle", "memory_idle_added", False),
         ("memory_peak", "memory_peak_added", True), ("memory_end", "memory_end_added", True),
         ("cpu", "cpu_added", True))


def process_count(figures: Mapping[str, Any]) -> int | None:
    """The environment's worker processes: the observations of ``process_start``."""
    samples = (figures.get("process_start") or {}).get("samples") or []
    return len(samples) or None


def added_figures(figures: Mapping[str, Any], base: Mapping[str, Any], baseline: str) -> dict[str, dict[str, Any]]:
    """The added figures of one environment (``figures``) over the baseline's (``base``)."""
    out: dict[str, dict[str, Any]] = {}
    n_env, n_base = process_count(figures), process_count(base)
    for key, name, scaled in ADDED:
        mine, theirs = figures.get(key) or {}, base.get(key) or {}
        if mine.get("value") is None or theirs.get("value") is None:
            continue
        unit = mine.get("unit", "")
        if scaled:
            if not n_env or not n_base:
                continue
            ref = theirs["value"] * n_env / n_base
            how = (f"{baseline}'s {format_value(theirs['value'], unit)} for {n_base} worker processes, scaled to "
                   f"{n_env}: {format_value(ref, unit)}")
        else:
            ref = theirs["value"]
            how = f"{baseline}'s {format_value(ref, unit)}"
        out[name] = {"value": mine["value"] - ref, "unit": unit,
                     "source": f"{key} {format_value(mine['value'], unit)} minus {how}"}
    return out


def add_overheads(footprints: dict[str, dict[str, Any]], baseline: str) -> None:
    """Add, in place, every environment's added figures over ``baseline``'s."""
    base = (footprints.get(baseline) or {}).get("figures") or {}
    if not base:
        return
    for name, fp in footprints.items():
        if name == baseline or not fp.get("figures"):
            continue
        fp["figures"].update(added_figures(fp["figures"], base, baseline))
