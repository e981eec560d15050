"""``--virt-report=PATH.html``: one self-contained HTML file.

Rendered from the ``--virt-json`` document (the public schema), so a saved
run can be rendered again later (``pytest-virtoverhead report RUN.json``).
Per test: one figure with the ratio to the baseline and its confidence
interval for each environment, the claims' thresholds drawn in and coloured
by verdict, beside the distribution of the samples per environment; a table
of the numbers and the claims. Then the environments' metadata.

Plots are drawn by matplotlib with the Agg canvas (no pyplot, no global
backend switch) and embedded as base64 PNG; the page has no external CSS,
JavaScript or fonts, so it reads offline. matplotlib is the optional extra
``report``.
"""

from __future__ import annotations

import base64
import html
import io
import time
from typing import Any, Iterable

from .claims import FAIL, INCONCLUSIVE, PASS
from .fsutil import atomic_write
from .textfmt import finite, fixed, seconds

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
    """matplotlib is missing."""


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportUnavailable(
            f"--virt-report needs matplotlib, which is not installed: {INSTALL_HINT}") from None


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
    shades: list[tuple[float, float, str, str]] = []  # (y, bound, "above"/"below", colour)
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
# HTML

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#263238;max-width:1200px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin-top:28px;border-bottom:1px solid #cfd8dc}
h3{font-size:15px;margin:0 0 8px;font-family:ui-monospace,monospace;word-break:break-all}
.meta{color:#546e7a;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{padding:3px 10px;border-bottom:1px solid #eceff1;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.test{border:1px solid #cfd8dc;border-radius:6px;padding:12px;margin:16px 0}
.plot{max-width:100%;display:block;margin:8px 0}
.v{font-weight:600;padding:1px 6px;border-radius:3px;color:#fff}
.v-pass{background:#2e7d32}.v-fail{background:#c62828}.v-inconclusive{background:#ef6c00}
.v-skipped,.v-none{background:#607d8b}
.outcome-failed{color:#c62828}.outcome-skipped{color:#607d8b}
pre{white-space:pre-wrap;font-size:12px;background:#fafafa;padding:6px}
details{font-size:12px} dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:4px 0}
dt{color:#546e7a} dd{margin:0;font-family:ui-monospace,monospace;word-break:break-all}
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _verdict(v: str | None) -> str:
    if not v:
        return ""
    return f'<span class="v v-{_e(v)}">{_e(v)}</span>'


def _first(meta: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, Any]:
    for key in keys:
        if meta.get(key) not in (None, "", [], {}):
            return key, meta[key]
    return keys[0], None


def _env_table(environments: dict[str, Any]) -> str:
    columns = [(label, keys) for label, keys in ENV_COLUMNS
               if any(_first(m or {}, keys)[1] is not None for m in environments.values())]
    head = "".join(f"<th>{_e(label)}</th>" for label, _ in columns)
    rows = []
    for name, meta in environments.items():
        meta = meta or {}
        cells = []
        for _, keys in columns:
            key, value = _first(meta, keys)
            if isinstance(value, list):
                value = ",".join(map(str, value))
            text = _e(value if value not in (None, "") else "-")
            if key == "accel" and meta.get("accel_reason"):
                text += f'<br><small>{_e(meta["accel_reason"])}</small>'
            cells.append(f"<td>{text}</td>")
        status = (f'<span class="outcome-failed">unavailable: {_e(str(meta["unavailable"]).splitlines()[0])}</span>'
                  if meta.get("unavailable") else "started")
        details = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in meta.items())
        rows.append(f"<tr><td><b>{_e(name)}</b></td>{''.join(cells)}<td>{status}"
                    f"<details><summary>all metadata</summary><dl>{details}</dl></details></td></tr>")
    return f"<table><tr><th>environment</th>{head}<th>status</th></tr>{''.join(rows)}</table>"


def _test_section(test: dict[str, Any], baseline: str, environments: dict[str, Any], index: int) -> str:
    out = [f'<section class="test" id="test-{index}"><h3>{_e(test["test"])}']
    outcome = test.get("outcome")
    if outcome and outcome != "measured":
        out.append(f' <span class="outcome-{_e(outcome)}">({_e(outcome)})</span>')
    out.append("</h3>")
    png = figure_png(test, baseline, environments)
    if png is not None:
        out.append(f'<img class="plot" data-test="{_e(test["test"])}" alt="ratio to {_e(baseline)} and samples '
                   f'of {_e(test["test"])}" src="data:image/png;base64,{base64.b64encode(png).decode()}">')
    else:
        out.append('<p class="meta">nothing was measured for this test.</p>')
    rows = []
    for env in test["envs"]:
        r = test["results"].get(env) or {}
        samples = r.get("samples") or []
        claims = [c for c in test["claims"] if c.get("env") == env]
        accel = (environments.get(env) or {}).get("accel")
        label = f"{env} [{accel}]" if accel else env
        if not samples:
            why = test["unavailable"].get(env) or r.get("unavailable") or r.get("error") or "not measured"
            rows.append(f"<tr><td>{_e(label)}</td><td colspan=5 class=meta>{_e(str(why).splitlines()[0])}</td>"
                        f"<td>{_verdict(_worst(claims))}</td></tr>")
            continue
        if env == baseline:
            ratio, ci = "1.000", "baseline"
        else:
            ci_v = r.get("ci") or [None, None]
            ratio, ci = fixed(r.get("ratio")), f"[{fixed(ci_v[0])}, {fixed(ci_v[1])}]"
        rate = r.get("rate")
        rate_text = f'{rate["value"]:.4g} {_e(rate["unit"])}' if rate else ""
        rows.append(f"<tr><td>{_e(label)}</td><td class=num>{len(samples)}</td>"
                    f"<td class=num>{_e(seconds(r.get('median')))}</td><td class=num>{rate_text}</td>"
                    f"<td class=num>{ratio}</td><td class=num>{ci}</td><td>{_verdict(_worst(claims))}</td></tr>")
    table = ("<table><tr><th>env</th><th>n</th><th>median</th><th>rate</th><th>ratio</th><th>CI</th>"
             f"<th>verdict</th></tr>{''.join(rows)}</table>")
    if not any((test["results"].get(e) or {}).get("rate") for e in test["envs"]):
        table = table.replace("<th>rate</th>", "").replace("<td class=num></td>", "")
    out.append(table)
    if test["claims"]:
        items = []
        for c in test["claims"]:
            ci = c.get("ci") or [None, None]
            extra = f" — {_e(c['reason'])}" if c.get("reason") else ""
            if c.get("waived"):
                extra += f' — <span class="waived">{_e(c["waived"])}</span>'
            elif c.get("waiver_expired"):
                extra += f' — <span class="outcome-failed">{_e(c["waiver_expired"])}</span>'
            p = f", p={c['p_value']:.3g}" if finite(c.get("p_value")) else ""
            how = ""
            if c.get("processes"):
                how = f" ({c.get('rounds')} rounds in {c.get('processes')} processes)"
            if c.get("unit", "ratio") == "ratio":
                est = f"ratio {fixed(c.get('ratio'))} [{fixed(ci[0])}, {fixed(ci[1])}]"
            else:  # seconds, of the claim's quantity (vm - 1.2 * baremetal)
                est = (f"{_e(c.get('quantity') or c.get('env'))} {_e(seconds(c.get('ratio')))} "
                       f"[{_e(seconds(ci[0]))}, {_e(seconds(ci[1]))}]")
            items.append(f"<li>{_verdict(c['verdict'])} <code>{_e(c['claim'])}</code>: {est}{p}{how}{extra}</li>")
        out.append(f"<ul class=claims>{''.join(items)}</ul>")
    if test.get("disturbed"):
        out.append(f'<p class="meta">noise: {test["disturbed"]} round(s) disturbed (steal or preemption), '
                   f'{test["retries"]} retried</p>')
    if test.get("error"):
        out.append(f"<pre>{_e(test['error'])}</pre>")
    out.append("</section>")
    return "".join(out)


def render_html(data: dict[str, Any], *, title: str = "pytest-virtoverhead report") -> str:
    """The whole page, from a ``--virt-json`` document."""
    require_matplotlib()
    baseline = data.get("baseline") or "baremetal"
    environments = data.get("environments") or {}
    tests = _tests(data)
    counts: dict[str, int] = {}
    for c in data.get("claims", []):
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    summary = ", ".join(f"{_verdict(v)} {n}" for v, n in sorted(counts.items(), key=lambda kv: -_RANK.get(kv[0], 0)))
    meta = [f"baseline <b>{_e(baseline)}</b>"]
    for key in ("seed", "rounds", "session"):
        if data.get(key) is not None:
            meta.append(f"{key} {_e(data[key])}")
    meta.append(f"written {_e(data.get('written') or time.strftime('%Y-%m-%d %H:%M:%S'))}")
    stat = data.get("statistics") or {}
    if stat.get("processes"):
        meta.append(f"{_e(stat['processes'])} worker processes per environment, calls per round "
                    f"{_e(stat.get('calls'))}, confidence {_e(stat.get('confidence'))}")
    noise = data.get("noise") or {}
    if noise.get("disturbed_rounds"):
        meta.append(f"noise: {_e(noise['disturbed_rounds'])} disturbed round(s), {_e(noise.get('retried_rounds'))} "
                    "retried")
    if data.get("interrupted"):
        meta.append('<span class="outcome-failed">interrupted</span>')
    host = data.get("host") or {}
    if host.get("virtual"):
        names = [n for n, m in environments.items() if (m or {}).get("kind") == "baremetal"] or ["baremetal"]
        meta.append(f"<b>{_e(', '.join(names))}: {_e(host.get('label'))}</b> "
                    f"({_e('; '.join(host.get('evidence') or []))})")
    sections = "".join(_test_section(t, baseline, environments, i) for i, t in enumerate(tests))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>"
            f'<p class="meta">{" · ".join(meta)}</p>'
            f"<p>{len(tests)} test(s); claims: {summary or 'none'}</p>"
            f"<h2>Tests</h2>{sections or '<p>no test marked @pytest.mark.virt was run.</p>'}"
            f"<h2>Environments</h2>{_env_table(environments)}"
            "</body></html>\n")


def write_report(path: str, data: dict[str, Any]) -> None:
    """Render and write atomically."""
    atomic_write(path, render_html(data))
