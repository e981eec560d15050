"""The history page (``pytest-virtoverhead history --html``): the data of
:mod:`.history` into ``templates/history.html.j2``, with a figure per claim."""

from __future__ import annotations

import base64
from typing import Any

from ..fsutil import atomic_write
from ..judge.textfmt import by_severity, env_label, estimate_format, interval, level_text
from ..render.htmlfigures import history_figure_png
from ..render.htmlreport import require_matplotlib
from . import history


def _mark_class(point: Any) -> str:
    if point is None:
        return "other"
    return point.step or ("flip" if point.flip else "other")


def _history_context(hist: Any) -> dict[str, Any]:
    runs = hist.runs
    level = level_text(hist.confidence)
    run_views = []
    for r in runs:
        counts = by_severity(r.verdict_counts())
        envs = [env_label(n, m) for n, m in r.environments.items()]
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
                fmt = estimate_format(s.unit)
                est, ci = fmt(p.estimate), interval(p.ci, fmt) if p.has_interval else "-"
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
    from ..render import templating

    return templating.render("history.html.j2", title=title, **_history_context(hist))


def write_history(path: str, hist: Any) -> None:
    atomic_write(path, render_history(hist))
