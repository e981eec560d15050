"""``--virt-report=PATH.html``: one self-contained HTML file.

Rendered from the ``--virt-json`` document (the public schema), so a saved
run can be rendered again later (``pytest-virtoverhead report RUN.json``).
Per test: one figure with the ratio to the baseline and its confidence
interval for each environment, the claims' thresholds drawn in and coloured
by verdict, beside the distribution of the samples per environment; a table
of the numbers and the claims. Then the environments' metadata.

This module shapes the data and draws the figures; the markup is the Jinja2
template ``templates/report.html.j2`` (package data, rendered by
:mod:`.templating`, which escapes every value).

Plots are drawn by matplotlib with the Agg canvas (no pyplot, no global
backend switch) and embedded as base64 PNG; the page has no external CSS,
JavaScript or fonts, so it reads offline. matplotlib and Jinja2 are the
optional extra ``report``.
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any, Iterable

from .claims import FAIL, INCONCLUSIVE, PASS
from .fsutil import atomic_write
from .textfmt import finite, fixed, method_line, seconds

INSTALL_HINT = "pip install pytest-virtoverhead[report]"

COLORS = {PASS: "#2e7d32", FAIL: "#c62828", INCONCLUSIVE: "#ef6c00", "skipped": "#607d8b", None: "#37474f"}
_RANK = {FAIL: 3, INCONCLUSIVE: 2, PASS: 1, "skipped": 0}

#: Environment metadata shown as columns; the rest goes in a details list.
#: (column label, metadata keys: the first one present is shown).
ENV_COLUMNS = [
    ("kind", ("kind",)), ("acceleration", ("accel",)), ("runtime", ("runtime",)), ("image", ("image",)),
    ("kernel", ("guest_kernel_version", "kernel")), ("CPU set", ("cpus_pinned", "cpuset_cpus", "cpuset")),
    ("vCPUs", ("vcpus",)), ("CPU quota", ("cpu_quota",)),
    ("memory limit MiB", ("memory_mb", "memory_limit_mb", "mem_limit_mb")), ("start s", ("start_seconds",)),
]


class ReportUnavailable(RuntimeError):
    """matplotlib or Jinja2 is missing."""


def require_matplotlib(what: str = "--virt-report") -> None:
    """Raise ReportUnavailable, saying how to get it, unless matplotlib (the
    figures) and Jinja2 (the page's templates) both import. (The name is
    older than the templates; callers check the whole ``report`` extra.)
    ``what`` names the option or command in the message."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportUnavailable(
            f"{what} needs matplotlib, which is not installed: {INSTALL_HINT}") from None
    from . import templating

    try:
        templating.environment()
    except templating.TemplatesUnavailable as exc:
        raise ReportUnavailable(f"{what}: {exc}") from None


# --------------------------------------------------------------------------
# data helpers


def _tests(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per test: its results by env, its claims, its outcome."""
    tests: dict[str, dict[str, Any]] = {}
    for t in data.get("tests", []):
        tests[t["test"]] = {"test": t["test"], "envs": list(t.get("envs") or []), "outcome": t.get("outcome"),
                            "error": t.get("error") or t.get("skipped"), "unavailable": t.get("unavailable") or {},
                            "results": {}, "claims": [], "disturbed": t.get("disturbed") or 0,
                            "retries": t.get("retries") or 0, "calls": t.get("calls")}
    for r in data.get("results", []):
        t = tests.setdefault(r["test"], {"test": r["test"], "envs": [], "outcome": None, "error": None,
                                         "unavailable": {}, "results": {}, "claims": []})
        t["results"][r["env"]] = r
        if r["env"] not in t["envs"]:
            t["envs"].append(r["env"])
    for c in data.get("claims", []):
        if c["test"] in tests:
            tests[c["test"]]["claims"].append(c)
    return list(tests.values())


def _scale(values: Iterable[float]) -> tuple[float, str]:
    values = [v for v in values if finite(v) and v > 0]
    top = max(values) if values else 1.0
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if top >= scale:
            return scale, unit
    return 1e-9, "ns"


def _worst(claims: list[dict[str, Any]]) -> str | None:
    if not claims:
        return None
    return max(claims, key=lambda c: _RANK.get(c["verdict"], 0))["verdict"]


# --------------------------------------------------------------------------
# the figure of one test


def _plain_log_ticks(ax: Any) -> None:
    """Log axis with plain numbers (1, 10, 100) and unlabelled minor ticks."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def figure_png(test: dict[str, Any], baseline: str, environments: dict[str, Any]) -> bytes | None:
    """One PNG: ratio and CI per environment with claim thresholds (left),
    samples per environment (right). None when nothing was measured."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    envs = [e for e in test["envs"] if (test["results"].get(e) or {}).get("samples")]
    if not envs:
        return None
    n = len(envs)
    fig = Figure(figsize=(11, 1.4 + 0.6 * n), dpi=100)
    FigureCanvasAgg(fig)
    ax_r, ax_s = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1]})
    ys = {e: n - 1 - i for i, e in enumerate(envs)}
    labels = []
    for e in envs:
        accel = (environments.get(e) or {}).get("accel")
        labels.append(f"{e} [{accel}]" if accel else e)

    # -- left: ratio to the baseline, its CI, claim thresholds
    xs: list[float] = [1.0]
    shades: list[tuple[int, float, str, str]] = []  # (y, bound, "above"/"below", colour)
    ax_r.axvline(1.0, color="#90a4ae", linestyle=":", linewidth=1)
    for e in envs:
        y = ys[e]
        r = test["results"][e]
        claims = [c for c in test["claims"] if c.get("env") == e]
        color = COLORS.get(_worst(claims), COLORS[None])
        if e == baseline:
            ax_r.plot([1.0], [y], marker="D", color="#546e7a", markersize=6)
            ax_r.annotate("baseline", (1.0, y), xytext=(6, 6), textcoords="offset points", fontsize=8,
                          color="#546e7a")
            continue
        ratio, ci = r.get("ratio"), r.get("ci") or [None, None]
        if finite(ratio):
            xs.append(ratio)
            if finite(ci[0]) and finite(ci[1]):
                xs.extend(ci)
                ax_r.errorbar([ratio], [y], xerr=[[ratio - ci[0]], [ci[1] - ratio]], fmt="o", color=color,
                              capsize=5, markersize=6, linewidth=2)
            else:
                ax_r.plot([ratio], [y], "o", color=color)
            ax_r.annotate(f"{ratio:.3f}", (ratio, y), xytext=(0, 9), textcoords="offset points", fontsize=8,
                          ha="center", color=color)
        for c in claims:
            if c.get("unit", "ratio") != "ratio":
                continue  # a time claim's bounds are seconds: not on the ratio axis
            ccolor = COLORS.get(c["verdict"], COLORS[None])
            lower, upper = (list(c.get("bounds") or []) + [None, None])[:2]
            both = finite(lower) and finite(upper)
            for bound, sym in ((lower, "≥"), (upper, "≤")):
                if finite(bound):
                    xs.append(bound)
                    shades.append((y, bound, "below" if sym == "≥" else "above", ccolor))
                    ax_r.plot([bound, bound], [y - 0.38, y + 0.38], linestyle="--", color=ccolor, linewidth=1.5)
                    if both and sym == "≥":
                        continue  # a two-sided claim is labelled once, at its upper bound
                    text = f"{lower:g}–{upper:g}" if both else f"{sym}{bound:g}"
                    ax_r.annotate(text, (bound, y - 0.38), xytext=(2, 1), textcoords="offset points",
                                  fontsize=7, color=ccolor)
    lo, hi = min(xs), max(xs)
    log = lo > 0 and hi / lo > 20
    if log:
        ax_r.set_xscale("log")
        _plain_log_ticks(ax_r)
        ax_r.set_xlim(lo / 1.3, hi * 1.3)
    else:
        pad = max((hi - lo) * 0.12, 0.02)
        ax_r.set_xlim(lo - pad, hi + pad)
    left, right = ax_r.get_xlim()
    for y, bound, side, ccolor in shades:  # the side of a threshold that violates the claim
        a, b = (bound, right) if side == "above" else (left, bound)
        ax_r.fill_betweenx([y - 0.38, y + 0.38], a, b, color=ccolor, alpha=0.08, linewidth=0)
    ax_r.set_xlim(left, right)
    ax_r.set_ylim(-0.7, n - 0.3)
    ax_r.set_yticks([ys[e] for e in envs], labels=labels)
    ax_r.set_xlabel(f"time / {baseline} time (paired ratio over rounds, confidence interval)")
    ax_r.set_title("overhead ratio", fontsize=10, loc="left")
    ax_r.grid(axis="x", color="#eceff1")

    # -- right: the samples
    all_samples = [s for e in envs for s in test["results"][e]["samples"]]
    scale, unit = _scale(all_samples)
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
        _plain_log_ticks(ax_s)
    ax_s.set_ylim(-0.7, n - 0.3)
    ax_s.set_yticks(list(range(n)), labels=[""] * n)
    ax_s.set_xlabel(f"sample ({unit}); bar: interquartile range, tick: median")
    ax_s.set_title("samples", fontsize=10, loc="left")
    ax_s.grid(axis="x", color="#eceff1")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# --------------------------------------------------------------------------
# HTML: the context of templates/report.html.j2 (markup lives there)


def _first(meta: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, Any]:
    for key in keys:
        if meta.get(key) not in (None, "", [], {}):
            return key, meta[key]
    return keys[0], None


def _env_view(environments: dict[str, Any]) -> dict[str, Any]:
    """The environments table: the columns some environment has a value
    for, one row per environment."""
    columns = [(label, keys) for label, keys in ENV_COLUMNS
               if any(_first(m or {}, keys)[1] is not None for m in environments.values())]
    rows = []
    for name, meta in environments.items():
        meta = meta or {}
        cells = []
        for _, keys in columns:
            key, value = _first(meta, keys)
            if isinstance(value, list):
                value = ",".join(map(str, value))
            cells.append({"text": value if value not in (None, "") else "-",
                          "reason": meta.get("accel_reason") if key == "accel" else None})
        rows.append({"name": name, "cells": cells,
                     "unavailable": str(meta["unavailable"]).splitlines()[0] if meta.get("unavailable") else None,
                     "metadata": list(meta.items())})
    return {"columns": [label for label, _ in columns], "rows": rows}


def _claim_view(c: dict[str, Any]) -> dict[str, Any]:
    ci = list(c.get("ci") or []) + [None, None]
    unit = c.get("unit", "ratio")
    return {"verdict": c.get("verdict"), "claim": c.get("claim"), "unit": unit, "ratio": c.get("ratio"),
            "ci": ci[:2], "quantity": c.get("quantity") or c.get("env"), "p_value": c.get("p_value"),
            "rounds": c.get("rounds"), "processes": c.get("processes"), "reason": c.get("reason"),
            "waived": c.get("waived"), "waiver_expired": c.get("waiver_expired")}


def _test_view(test: dict[str, Any], baseline: str, environments: dict[str, Any], index: int) -> dict[str, Any]:
    png = figure_png(test, baseline, environments)
    rows = []
    for env in test["envs"]:
        r = test["results"].get(env) or {}
        samples = r.get("samples") or []
        accel = (environments.get(env) or {}).get("accel")
        row = {"label": f"{env} [{accel}]" if accel else env, "measured": bool(samples),
               "verdict": _worst([c for c in test["claims"] if c.get("env") == env])}
        if samples:
            rate = r.get("rate")
            row.update({"n": len(samples), "median": r.get("median"), "baseline": env == baseline,
                        "ratio": r.get("ratio"), "ci": (list(r.get("ci") or []) + [None, None])[:2],
                        "rate": {"value": rate["value"], "unit": rate["unit"]} if rate else None})
        else:
            why = test["unavailable"].get(env) or r.get("unavailable") or r.get("error") or "not measured"
            row["why"] = str(why).splitlines()[0]
        rows.append(row)
    return {"index": index, "test": test["test"], "outcome": test.get("outcome"),
            "png": base64.b64encode(png).decode() if png is not None else None, "rows": rows,
            "show_rate": any((test["results"].get(e) or {}).get("rate") for e in test["envs"]),
            "claims": [_claim_view(c) for c in test["claims"]], "disturbed": test.get("disturbed"),
            "retries": test.get("retries"), "error": test.get("error")}


def _meta(data: dict[str, Any], baseline: str, environments: dict[str, Any]) -> list[dict[str, Any]]:
    """The line under the title: baseline, seed, rounds, ... (kinds the
    template's ``meta_item`` knows)."""
    meta: list[dict[str, Any]] = [{"kind": "baseline", "value": baseline}]
    for key in ("seed", "rounds", "session"):
        if data.get(key) is not None:
            meta.append({"kind": "text", "text": f"{key} {data[key]}"})
    meta.append({"kind": "text", "text": f"written {data.get('written') or time.strftime('%Y-%m-%d %H:%M:%S')}"})
    stat = data.get("statistics") or {}
    if stat.get("processes"):
        meta.append({"kind": "text", "text": f"{stat['processes']} worker processes per environment, calls per "
                                             f"round {stat.get('calls')}, confidence {stat.get('confidence')}"})
    noise = data.get("noise") or {}
    if noise.get("disturbed_rounds"):
        meta.append({"kind": "text", "text": f"noise: {noise['disturbed_rounds']} disturbed round(s), "
                                             f"{noise.get('retried_rounds')} retried"})
    if data.get("interrupted"):
        meta.append({"kind": "interrupted"})
    host = data.get("host") or {}
    if host.get("virtual"):
        names = [n for n, m in environments.items() if (m or {}).get("kind") == "baremetal"] or ["baremetal"]
        meta.append({"kind": "host", "names": names, "label": host.get("label"),
                     "evidence": list(host.get("evidence") or [])})
    return meta


def render_html(data: dict[str, Any], *, title: str = "pytest-virtoverhead report") -> str:
    """The whole page, from a ``--virt-json`` document: the numbers and
    figures are shaped here, the markup is ``templates/report.html.j2``."""
    require_matplotlib()
    from . import footprinthtml, templating

    baseline = data.get("baseline") or "baremetal"
    environments = data.get("environments") or {}
    tests = _tests(data)
    counts: dict[str, int] = {}
    for c in data.get("claims", []):
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    return templating.render(
        "report.html.j2", title=title, baseline=baseline, meta=_meta(data, baseline, environments),
        n_tests=len(tests), verdict_counts=sorted(counts.items(), key=lambda kv: -_RANK.get(kv[0], 0)),
        tests=[_test_view(t, baseline, environments, i) for i, t in enumerate(tests)],
        environments=_env_view(environments), data=data, footprint=footprinthtml.view(data),
        method_line=method_line(data.get("verdict_method")))


def write_report(path: str, data: dict[str, Any]) -> None:
    """Render and write atomically."""
    atomic_write(path, render_html(data))


# --------------------------------------------------------------------------
# the history page (``pytest-virtoverhead history``): data from history.py,
# markup in templates/history.html.j2

#: Colours of the history plot's marks.
STEP_COLORS = {"up": "#c62828", "down": "#2e7d32", "flip": "#6a1b9a"}


def history_figure_png(series: Any, runs: list[Any]) -> bytes | None:
    """One PNG for one claim (a :class:`.history.Series`): its estimate and
    interval in each run (x: the run's number), coloured by verdict, the
    claim's bounds dashed, steps shaded between the two runs (red: up,
    green: down) and verdict flips ringed. None when no run has an
    estimate."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = [p for p in series.present if finite(p.estimate)]
    if not points:
        return None
    ratio = series.unit == "ratio"
    values = [p.estimate for p in points] + [v for p in points if p.has_interval for v in p.ci]
    bounds = [b for b in (points[-1].bounds or [])[:2] if finite(b)]
    scale, unit = (1.0, "") if ratio else _scale([abs(v) for v in values + bounds])
    fig = Figure(figsize=(9, 2.8), dpi=100)
    FigureCanvasAgg(fig)
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
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
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
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _mark_class(point: Any) -> str:
    if point is None:
        return "other"
    return point.step or ("flip" if point.flip else "other")


def _history_context(hist: Any) -> dict[str, Any]:
    from . import history

    runs = hist.runs
    level = f"{hist.confidence:.0%}"
    run_views = []
    for r in runs:
        counts = sorted(r.verdict_counts().items(), key=lambda kv: -_RANK.get(kv[0], 0))
        envs = [f"{n} [{m.get('accel')}]" if isinstance(m, dict) and m.get("accel") else n
                for n, m in r.environments.items()]
        run_views.append({"number": r.number, "path": r.path, "name": r.name, "time": r.time_text,
                          "seed": r.data.get("seed", "-"), "envs": envs, "counts": counts, "aborted": r.aborted})
    index = {s.key: i for i, s in enumerate(hist.series)}
    last = None
    if len(runs) > 1:
        changed, unchanged = hist.last_changes()
        rows = []
        for s in changed:
            prev, cur = s.last_two()
            rows.append({"index": index[s.key], "test": s.test, "claim": s.claim, "mark": s.last_mark(),
                         "mark_class": _mark_class(cur), "prev": history.estimate_text(s, prev),
                         "last": history.estimate_text(s, cur), "change": history.change_text(cur),
                         "verdict_prev": prev.verdict if prev else None,
                         "verdict_last": cur.verdict if cur else None})
        last = {"prev": run_views[-2], "last": run_views[-1], "changed": rows, "unchanged": len(unchanged)}
    claims = []
    for i, s in enumerate(hist.series):
        rows = []
        for j, p in enumerate(s.points):
            before = s.points[j - 1] if j else None
            est, ci = "-", "-"
            if p is not None:
                if s.unit == "ratio":
                    est = fixed(p.estimate)
                    ci = f"[{fixed(p.ci[0])}, {fixed(p.ci[1])}]" if p.has_interval else "-"
                else:
                    est = seconds(p.estimate)
                    ci = f"[{seconds(p.ci[0])}, {seconds(p.ci[1])}]" if p.has_interval else "-"
            rows.append({"number": j + 1, "run": runs[j].name, "present": p is not None,
                         "accel": p.accel if p is not None else None, "verdict": p.verdict if p else None,
                         "estimate": est, "ci": ci, "change": history.change_text(p),
                         "mark": history.mark_text(p, before, seen_before=any(q is not None for q in s.points[:j - 1]))
                         if j else "",
                         "mark_class": _mark_class(p)})
        png = history_figure_png(s, runs)
        env = s.env or "?"
        what = (f"{env}: ratio to {s.baseline or 'the baseline'}" if s.unit == "ratio"
                else f"{env}: {s.quantity} in seconds")
        claims.append({"index": i, "test": s.test, "claim": s.claim, "what": what, "rows": rows,
                       "quantity": "ratio" if s.unit == "ratio" else "estimate", "marks": len(s.marks),
                       "png": base64.b64encode(png).decode() if png is not None else None})
    total_marks = sum(len(s.marks) for s in hist.series)
    summary = (f"{len(runs)} run(s), {len(hist.series)} claim(s), ordered by {hist.order}; {level} intervals; "
               f"{total_marks} marked change(s) over the history")
    rule = (f"a step is marked where a claim's interval does not overlap its interval in the previous run that "
            f"has the claim and its estimate moved by at least {hist.tolerance:.0%} of the previous one (up: slower, "
            f"down: faster); a verdict flip where the verdict went from pass to fail or back")
    return {"summary": summary, "notes": list(hist.notes), "runs": run_views, "level": level, "last": last,
            "claims": claims, "rule": rule}


def render_history(hist: Any, *, title: str = "pytest-virtoverhead history") -> str:
    """The history page of a :class:`.history.History`."""
    require_matplotlib("history")
    from . import templating

    return templating.render("history.html.j2", title=title, **_history_context(hist))


def write_history(path: str, hist: Any) -> None:
    atomic_write(path, render_history(hist))
