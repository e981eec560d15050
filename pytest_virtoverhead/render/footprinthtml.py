"""The HTML report's footprint section: a plot of what each
environment holds on the host (memory idle and peak, start time, storage),
where comparing by eye is easier than in a table, and every figure with its
source. Shaped from the ``--virt-json`` document's ``footprint``; drawn with
:mod:`.htmlfigures`' canvas like the rest of the report.
"""

from __future__ import annotations

import base64
from typing import Any

from .. import footprint
from ..judge.textfmt import env_label
from .htmlfigures import new_figure, plain_log_ticks, png_bytes

#: The plot's panels: (title, [(figure, label)], unit).
PANELS = (
    ("memory on the host (MiB)", (("memory_idle", "idle"), ("memory_peak", "peak"), ("guest_memory", "guest's view")),
     "B"),
    ("start (s)", (("start", "start"), ("process_start", "worker process")), "s"),
    ("storage (MiB)", (("storage", "storage"),), "B"),
)
_COLORS = ("#1565c0", "#90caf9", "#6a1b9a")


def _label(name: str, env: dict[str, Any], environments: dict[str, Any]) -> str:
    """:func:`.textfmt.env_label`, the kind as the footprint records it."""
    return env_label(name, {**(environments.get(name) or {}), "kind": env.get("kind")})


def plot_png(fps: dict[str, Any], environments: dict[str, Any]) -> str | None:
    """Base64 PNG: one panel per quantity, one group of bars per environment
    (log scale: a VM's figures are often 10-100x a container's)."""
    names = [n for n, e in fps.items() if (e.get("figures") or {})]
    if not names:
        return None
    fig = new_figure(11, 1.2 + 0.55 * len(names))
    axes = fig.subplots(1, len(PANELS))
    for ax, (title, keys, unit) in zip(axes, PANELS):
        height = 0.8 / len(keys)
        drawn = False
        for k, (key, label) in enumerate(keys):
            ys, xs = [], []
            for i, name in enumerate(names):
                value = ((fps[name].get("figures") or {}).get(key) or {}).get("value")
                if isinstance(value, (int, float)) and value > 0:
                    ys.append(len(names) - 1 - i + 0.4 - height * (k + 0.5))
                    xs.append(value / (1 << 20) if unit == "B" else value)
            if xs:
                ax.barh(ys, xs, height=height * 0.9, color=_COLORS[k % len(_COLORS)], label=label)
                for y, x in zip(ys, xs):
                    ax.text(x, y, f" {x:.3g}", va="center", fontsize=7)
                drawn = True
        ax.set_ylim(-0.6, len(names) - 0.4)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels([_label(n, fps[n], environments) for n in reversed(names)], fontsize=8)
        ax.set_title(title, fontsize=9)
        if drawn:
            from matplotlib.ticker import LogLocator

            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10))
            plain_log_ticks(ax.xaxis)
            lo, hi = ax.get_xlim()
            ax.set_xlim(lo, hi * 3)  # room for the value labels
            ax.legend(fontsize=7, loc="upper right")
        else:
            ax.set_xticks([])
            ax.text(0.5, 0.5, "0, or not measured", transform=ax.transAxes, ha="center", fontsize=8, color="#607d8b")
        ax.tick_params(axis="x", labelsize=7)
    return base64.b64encode(png_bytes(fig)).decode("ascii")


def view(data: dict[str, Any]) -> dict[str, Any] | None:
    """The template's ``footprint``: ``png``, ``rows`` (env, figure, value,
    source) and ``claims`` (verdict, claim, line); None without a footprint."""
    fp = data.get("footprint") or {}
    fps = fp.get("environments") or {}
    if not fps:
        return None
    environments = data.get("environments") or {}
    rows = []
    for name, env in fps.items():
        figs = env.get("figures") or {}
        if not figs:
            rows.append({"env": _label(name, env, environments), "figure": "-",
                         "value": "", "source": env.get("unavailable") or "not measured"})
        for key, label in footprint.ROWS:
            fig = figs.get(key)
            if not fig or fig.get("value") is None:
                continue
            rows.append({"env": _label(name, env, environments), "figure": label,
                         "value": footprint.format_value(fig["value"], fig.get("unit", "")),
                         "source": fig.get("source", "")})
            for part, pf in (fig.get("parts") or {}).items():
                rows.append({"env": "", "figure": f"  {part}",
                             "value": footprint.format_value(pf.get("value"), pf.get("unit", "B")),
                             "source": pf.get("source", "")})
    claims = [{"verdict": c.get("verdict"), "claim": c.get("claim"),
               "line": footprint.claim_line(c)[14:].split("  ", 1)[-1] if c.get("verdict") else ""}
              for c in fp.get("claims") or []]
    try:
        png = plot_png(fps, environments)
    except Exception:  # noqa: BLE001 - the table still shows every figure
        png = None
    return {"png": png, "rows": rows, "claims": claims}
