"""The HTML pages' figures, drawn by matplotlib with the Agg canvas (no
pyplot, no global backend switch) as PNG bytes: per test of a run, the
ratio to the baseline with its interval and the claims' thresholds beside
the samples (:func:`figure_png`); per claim of a history, its estimate
over the runs (:func:`history_figure_png`). :mod:`.htmlreport` embeds them
and :mod:`.footprinthtml` draws its plot with the same helpers.
matplotlib comes with the ``report`` extra and is imported when a figure
is drawn.
"""

from __future__ import annotations

import io
from typing import Any

from ..judge.textfmt import FAIL, INCONCLUSIVE, PASS, SKIPPED, env_label, finite, seconds, seconds_scale, worst_verdict

#: A verdict's colour (None: no claim).
COLORS = {PASS: "#2e7d32", FAIL: "#c62828", INCONCLUSIVE: "#ef6c00", SKIPPED: "#607d8b", None: "#37474f"}
#: Colours of the history plot's marks.
STEP_COLORS = {"up": "#c62828", "down": "#2e7d32", "flip": "#6a1b9a"}
#: Units of the plots' time axes.
AXIS_UNITS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on an Agg canvas (100 dpi)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Any) -> bytes:
    """``fig`` laid out tightly, as PNG."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plain_log_ticks(axis: Any) -> None:
    """A log axis (``ax.xaxis`` or ``ax.yaxis``) with plain numbers (1, 10,
    100, 1e−05) and unlabelled minor ticks."""
    from matplotlib.ticker import NullFormatter, StrMethodFormatter

    axis.set_major_formatter(StrMethodFormatter("{x:g}"))
    axis.set_minor_formatter(NullFormatter())


def figure_png(test: dict[str, Any], baseline: str, environments: dict[str, Any]) -> bytes | None:
    """One PNG: ratio and CI per environment with claim thresholds (left),
    samples per environment (right). None when nothing was measured."""
    envs = [e for e in test["envs"] if (test["results"].get(e) or {}).get("samples")]
    if not envs:
        return None
    n = len(envs)
    fig = new_figure(11, 1.4 + 0.75 * n)
    grid = fig.add_gridspec(n, 2)
    ax_s = fig.add_subplot(grid[:, 1])
    ys = {e: n - 1 - i for i, e in enumerate(envs)}
    # -- left: one panel per environment, each on its own scale (a
    # container's +-3% interval is as readable as a TCG VM's 13x)
    for i, e in enumerate(envs):
        ax = fig.add_subplot(grid[i, 0])
        _ratio_panel(ax, e, test, baseline, env_label(e, environments.get(e)))
        if i == 0:
            ax.set_title("overhead ratio (each row on its own scale)", fontsize=10, loc="left")
        if i == n - 1:
            ax.set_xlabel(f"time / {baseline} time (paired ratio over rounds, confidence interval)")

    # -- right: the samples
    all_samples = [s for e in envs for s in test["results"][e]["samples"]]
    scale, unit = seconds_scale(all_samples, AXIS_UNITS)
    import numpy as np

    rng = np.random.default_rng(0)
    for e in envs:
        y = ys[e]
        samples = np.asarray(test["results"][e]["samples"], dtype=float) / scale
        jitter = rng.uniform(-0.18, 0.18, size=samples.size)
        ax_s.scatter(samples, y + jitter, s=12, alpha=0.55, color="#1e88e5", edgecolors="none")
        q1, med, q3 = np.quantile(samples, [0.25, 0.5, 0.75])
        ax_s.plot([q1, q3], [y, y], color="#263238", linewidth=5, alpha=0.35, solid_capstyle="butt")
        ax_s.plot([med, med], [y - 0.3, y + 0.3], color="#263238", linewidth=2)
        for c in test["claims"]:  # an absolute claim's bounds are times of this row's samples
            if c.get("env") != e or c.get("kind") != "absolute":
                continue
            ccolor = COLORS.get(c["verdict"], COLORS[None])
            for bound, sym in zip(list(c.get("bounds") or [])[:2], ("≥", "≤")):
                if finite(bound):
                    ax_s.plot([bound / scale] * 2, [y - 0.38, y + 0.38], linestyle="--", color=ccolor, linewidth=1.5)
                    ax_s.annotate(f"{sym}{seconds(bound)}", (bound / scale, y - 0.38), xytext=(2, 1),
                                  textcoords="offset points", fontsize=7, color=ccolor)
    smin, smax = min(all_samples) / scale, max(all_samples) / scale
    if smin > 0 and smax / smin > 20:
        ax_s.set_xscale("log")
        plain_log_ticks(ax_s.xaxis)
    ax_s.set_ylim(-0.7, n - 0.3)
    ax_s.set_yticks(list(range(n)), labels=[""] * n)
    ax_s.set_xlabel(f"sample ({unit}); bar: interquartile range, tick: median")
    ax_s.set_title("samples", fontsize=10, loc="left")
    ax_s.grid(axis="x", color="#eceff1")
    return png_bytes(fig)



def _ratio_panel(ax: Any, e: str, test: dict[str, Any], baseline: str, label: str) -> None:
    """One environment's ratio, its interval and its claims' thresholds,
    on an axis zoomed to them (and 1.0); log when they span over 20x."""
    r = test["results"][e]
    claims = [c for c in test["claims"] if c.get("env") == e]
    color = COLORS.get(worst_verdict(c["verdict"] for c in claims), COLORS[None])
    xs: list[float] = [1.0]
    shades: list[tuple[float, str, str]] = []  # (bound, "above"/"below", colour)
    ax.axvline(1.0, color="#90a4ae", linestyle=":", linewidth=1)
    if e == baseline:
        ax.plot([1.0], [0], marker="D", color="#546e7a", markersize=6)
        ax.annotate("baseline", (1.0, 0), xytext=(6, 6), textcoords="offset points", fontsize=8, color="#546e7a")
        ax.set_xticks([1.0], labels=["1"])
    ratio, ci = r.get("ratio"), r.get("ci") or [None, None]
    if e != baseline and finite(ratio):
        xs.append(ratio)
        if finite(ci[0]) and finite(ci[1]):
            xs.extend(ci)
            ax.errorbar([ratio], [0], xerr=[[ratio - ci[0]], [ci[1] - ratio]], fmt="o", color=color,
                        capsize=5, markersize=6, linewidth=2)
            text = f"{ratio:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
        else:
            ax.plot([ratio], [0], "o", color=color)
            text = f"{ratio:.3f}"
        ax.annotate(text, (ratio, 0), xytext=(0, 9), textcoords="offset points", fontsize=8, ha="center",
                    color=color)
    for c in claims:
        if c.get("unit", "ratio") != "ratio":
            continue  # a time claim's bounds are seconds: not on the ratio axis
        ccolor = COLORS.get(c["verdict"], COLORS[None])
        lower, upper = (list(c.get("bounds") or []) + [None, None])[:2]
        both = finite(lower) and finite(upper)
        for bound, sym in ((lower, "≥"), (upper, "≤")):
            if finite(bound):
                xs.append(bound)
                shades.append((bound, "below" if sym == "≥" else "above", ccolor))
                ax.plot([bound, bound], [-0.38, 0.38], linestyle="--", color=ccolor, linewidth=1.5)
                if both and sym == "≥":
                    continue  # a two-sided claim is labelled once, at its upper bound
                text = f"{lower:g}–{upper:g}" if both else f"{sym}{bound:g}"
                ax.annotate(text, (bound, -0.38), xytext=(2, 1), textcoords="offset points", fontsize=7,
                            color=ccolor)
    lo, hi = min(xs), max(xs)
    if lo > 0 and hi / lo > 20:
        ax.set_xscale("log")
        plain_log_ticks(ax.xaxis)
        ax.set_xlim(lo / 1.3, hi * 1.3)
    else:
        pad = max((hi - lo) * 0.15, 0.01)
        ax.set_xlim(lo - pad, hi + pad)
    left, right = ax.get_xlim()
    for bound, side, ccolor in shades:  # the side of a threshold that violates the claim
        a, b = (bound, right) if side == "above" else (left, bound)
        ax.fill_betweenx([-0.38, 0.38], a, b, color=ccolor, alpha=0.08, linewidth=0)
    ax.set_xlim(left, right)
    ax.set_ylim(-0.7, 0.7)
    ax.set_yticks([0], labels=[label])
    ax.grid(axis="x", color="#eceff1")


def history_figure_png(series: Any, runs: list[Any]) -> bytes | None:
    """One PNG for one claim (a :class:`.history.Series`): its estimate and
    interval in each run (x: the run's number), coloured by verdict, the
    claim's bounds dashed, steps shaded between the two runs (red: up,
    green: down) and verdict flips ringed. None when no run has an
    estimate."""
    points = [p for p in series.present if finite(p.estimate)]
    if not points:
        return None
    ratio = series.unit == "ratio"
    values = [p.estimate for p in points] + [v for p in points if p.has_interval for v in p.ci]
    bounds = [b for b in (points[-1].bounds or [])[:2] if finite(b)]
    scale, unit = (1.0, "") if ratio else seconds_scale([abs(v) for v in values + bounds], AXIS_UNITS)
    fig = new_figure(9, 2.8)
    ax = fig.subplots()
    xs = [p.run + 1 for p in points]
    ax.plot(xs, [p.estimate / scale for p in points], color="#b0bec5", linewidth=1, zorder=1)
    by_run = {p.run: p for p in series.present}
    for p in points:
        x, y = p.run + 1, p.estimate / scale
        color = COLORS.get(p.verdict, COLORS[None])
        if p.has_interval:
            # (an estimate outside its own interval draws a one-sided bar)
            yerr = [[max(y - p.ci[0] / scale, 0.0)], [max(p.ci[1] / scale - y, 0.0)]]
            ax.errorbar([x], [y], yerr=yerr, fmt="o", color=color, capsize=4, markersize=5, linewidth=1.8, zorder=3)
        else:
            ax.plot([x], [y], "o", color=color, zorder=3)
        if p.step:
            prev = max((q for r, q in by_run.items() if r < p.run and finite(q.estimate)), key=lambda q: q.run)
            ax.axvspan(prev.run + 1, x, color=STEP_COLORS[p.step], alpha=0.12, linewidth=0, zorder=0)
            ax.annotate("▲ step" if p.step == "up" else "▼ step", (x, y), xytext=(7, -3),
                        textcoords="offset points", fontsize=8, color=STEP_COLORS[p.step])
        if p.flip:
            ax.plot([x], [y], "o", markersize=14, markerfacecolor="none", markeredgecolor=STEP_COLORS["flip"],
                    markeredgewidth=1.5, zorder=4)
    for b, sym in zip((points[-1].bounds or [None, None])[:2], ("≥", "≤")):
        if finite(b):
            ax.axhline(b / scale, linestyle="--", color="#78909c", linewidth=1)
            ax.annotate(f"{sym} {b:g}" if ratio else f"{sym} {seconds(b)}", (0.005, b / scale),
                        xycoords=("axes fraction", "data"), xytext=(0, 2), textcoords="offset points",
                        fontsize=7, color="#546e7a")
    shown = [v / scale for v in values + bounds]
    lo, hi = min(shown), max(shown)
    if lo > 0 and hi / lo > 20:
        ax.set_yscale("log")
        plain_log_ticks(ax.yaxis)
    else:
        pad = max((hi - lo) * 0.15, abs(hi) * 0.02, 1e-9)
        ax.set_ylim(lo - pad, hi + pad)
    n = len(runs)
    ax.set_xlim(0.5, n + 0.5)
    ax.set_xticks(range(1, n + 1), labels=[f"#{i}" for i in range(1, n + 1)])
    ax.set_xlabel("run (in order; the table below names each)")
    ylabel = f"ratio to {series.baseline or 'the baseline'}" if ratio else f"{series.quantity} ({unit})"
    ax.set_ylabel(ylabel, fontsize=9)
    ax.grid(axis="y", color="#eceff1")
    return png_bytes(fig)


