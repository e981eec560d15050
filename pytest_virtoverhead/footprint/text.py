"""The footprint as text: figures with their units, and the terminal
section (per environment, each figure with its source).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..judge import textfmt


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
        ("cpu", "CPU outside calls"), ("cpu_rate", "CPU rate outside calls"), ("storage", "storage"),
        ("start_added", "start added"), ("memory_idle_added", "memory idle added"),
        ("memory_peak_added", "memory peak added"), ("memory_end_added", "memory end added"),
        ("cpu_added", "CPU outside calls added"))


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
