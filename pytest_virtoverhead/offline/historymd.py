"""The history's Markdown summary (``pytest-virtoverhead history
--markdown``, and the GitHub job summary): what changed between the last
two runs of a :class:`.history.History` first, then the other claims in a
collapsible section. Standard library only, like :mod:`.markdown`, whose
cells and tables it uses.
"""

from __future__ import annotations

from ..fsutil import atomic_write
from ..judge.textfmt import level_text
from ..render import markdown
from .history import DOWN, UP, History, Point, Run, Series, change_text, estimate_text

_ICON = {UP: "🔺", DOWN: "🔻"}


def _md_mark(series: Series) -> str:
    last = series.last_two()[1]
    text = series.last_mark()
    if last is not None and last.step:
        text = f"{_ICON[last.step]} {text}"
    elif last is not None and last.flip:
        text = f"🔁 {text}"
    return text


def _md_verdict(point: Point | None) -> str:
    if point is None:
        return "absent"
    return markdown.BADGE.get(point.verdict, str(point.verdict))


def render_markdown(hist: History, *, max_bytes: int | None = None, limit: int = markdown.MAX_ID) -> str:
    """GitHub-flavoured Markdown: what changed between the last two runs
    (steps, verdict changes, claims that came or went) first, then the
    other claims in a collapsible section. With ``max_bytes`` the text
    stays under that size (unchanged rows are left out first)."""
    runs = hist.runs
    series = hist.series
    shown = markdown.short_ids([s.test for s in series], limit)
    level = level_text(hist.confidence)
    head = ["change", "test", "claim", "previous", "latest", "change %", "verdict"]
    if len(runs) < 2:
        only = runs[0]
        title = (f"## pytest-virtoverhead history: 1 run, {len(series)} claim{'s' * (len(series) != 1)}: "
                 "nothing to compare yet")
        lines = [title, "", f"Only one run: {markdown.code(only.name)}"
                 + (f" ({only.time_text})" if only.time else "") + ". Its claims:", ""]
        rows = [[markdown.cell(_md_verdict(s.points[0])), markdown.code(shown.get(s.test, s.test)),
                 markdown.code(s.claim), estimate_text(s, s.points[0])] for s in series]
        lines += markdown.table(["verdict", "test", "claim", f"estimate, {level} CI"], rows)
        return "\n".join(lines + [""])
    prev_run, last_run = runs[-2], runs[-1]
    changed, steady = hist.last_changes()

    def row(s: Series) -> list[str]:
        prev, last = s.last_two()
        verdict = _md_verdict(last) if prev is not None and last is not None and prev.verdict == last.verdict \
            else f"{_md_verdict(prev)} → {_md_verdict(last)}"
        return [markdown.cell(_md_mark(s) or " "), markdown.code(shown.get(s.test, s.test)),
                markdown.code(s.claim), estimate_text(s, prev), estimate_text(s, last), change_text(last),
                markdown.cell(verdict)]

    lasts = [s.last_two()[1] for s in changed]
    steps = sum(1 for p in lasts if p is not None and p.step)
    flips = sum(1 for p in lasts if p is not None and p.verdict_changed)
    title = (f"## pytest-virtoverhead history: {len(series)} claim{'s' * (len(series) != 1)} over "
             f"{len(runs)} runs; last two runs: {steps} step{'s' * (steps != 1)}, {flips} verdict "
             f"change{'s' * (flips != 1)}")

    def run_ref(r: Run) -> str:
        return f"#{r.number} {markdown.code(r.name)}" + (f" ({r.time_text})" if r.time else "")

    context = [f"{run_ref(prev_run)} → {run_ref(last_run)} · ordered by {hist.order} · {level} intervals · "
               f"a step: intervals that do not overlap and an estimate that moved by at least "
               f"{hist.tolerance:.0%}"]
    context += [f"> {markdown.cell(n)}" for n in hist.notes]
    changed_rows = [row(s) for s in changed]
    steady_rows = [row(s) for s in steady]

    def build_text(n_changed: int, n_steady: int) -> str:
        out = [title, ""] + context + [""]
        if changed_rows:
            out += markdown.table(head, changed_rows, {5}, keep=n_changed, left_out="more changed claim(s) left "
                                  "out to keep this summary small: see the history page.")
        else:
            out.append("No claim changed between the last two runs (no step, no verdict change).")
        if steady_rows:
            out += ["", f"<details><summary>Unchanged claims ({len(steady_rows)})</summary>", ""]
            out += markdown.table(head, steady_rows, {5}, keep=n_steady,
                                  left_out="more row(s) left out: see the history page.")
            out += ["", "</details>"]
        return "\n".join(out + [""])

    # Too big: unchanged claims go before changed ones.
    return markdown.fit(build_text, len(changed_rows), len(steady_rows), max_bytes)


def write_markdown(path: str, hist: History) -> None:
    atomic_write(path, render_markdown(hist))


def append_summary(path: str, hist: History) -> None:
    """Append the Markdown to ``path`` ($GITHUB_STEP_SUMMARY), within
    :data:`.markdown.SUMMARY_MAX_BYTES` with what the file holds already
    (as ``--virt-markdown`` does)."""
    markdown.append_within_limit(path, lambda max_bytes: render_markdown(hist, max_bytes=max_bytes))
