"""The comparison as Markdown: ``--virt-markdown`` and the GitHub job summary.

A pure renderer: :func:`render` takes the results document that
``--virt-json`` writes (:func:`.results.run_document`, or the same JSON loaded
back) and returns GitHub-flavoured Markdown: a headline, the claims first
(verdict, test, claim, ratio and interval), then the per-test table in a
collapsible ``<details>`` section. Standard library only: no pytest, no
numpy, no file access (the writers are :func:`write_markdown` and
:func:`append_summary`).

Table cells are made safe for GFM tables: ``|`` is escaped (``\\|``, which
GFM undoes even inside code spans), line breaks become `` ⏎ ``, and a test
id longer than :data:`MAX_ID` characters is shortened in the middle with an
ellipsis, the shortened ids of one document kept distinct (a short hash of
the whole id is added where two would read the same). The JSON keeps every
id whole.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from typing import AbstractSet, Any, Callable, Iterable

from ..fsutil import atomic_write
from ..judge import textfmt
from ..judge.textfmt import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    SKIPPED,
    by_severity,
    env_label,
    estimate_format,
    finite,
    fixed,
    host_envs,
    interval,
    level_text,
    seconds,
    severity,
    worst_verdict,
)

#: Test ids longer than this are shortened in the tables (characters).
MAX_ID = 90
#: GitHub refuses a step's summary over 1 MiB; the summary this plugin
#: appends stays under this many bytes (the per-test table, then the claims
#: are cut short, saying how many rows were left out).
SUMMARY_MAX_BYTES = 1000 * 1000

BADGE: dict[str, str] = {FAIL: "❌ fail", INCONCLUSIVE: "⚠️ inconclusive", PASS: "✅ pass", SKIPPED: "⏭️ skipped"}
_HEAD_WORD: dict[str, str] = {FAIL: "failed", INCONCLUSIVE: "inconclusive", PASS: "passed", SKIPPED: "skipped"}


# -- cells -------------------------------------------------------------------


def one_line(text: Any) -> str:
    """``text`` on one line: CR/LF line breaks become `` ⏎ ``, other
    control characters a space."""
    s = re.sub(r"\r\n|\r|\n", " ⏎ ", str(text))
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", " ", s)


def cell(text: Any) -> str:
    """Plain text as one GFM table cell: on one line, pipes and the
    characters Markdown or HTML would act on escaped."""
    s = one_line(text)
    s = re.sub(r"([\\`*_\[\]<>|#~])", r"\\\1", s)
    return s.strip() or " "


def code(text: Any) -> str:
    """``text`` as an inline code span fit for a table cell (pipes escaped,
    a fence longer than any run of backticks in it)."""
    s = one_line(text).replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or longest else ""
    return f"{fence}{pad}{s}{pad}{fence}" if s else " "


def shorten(text: str, limit: int = MAX_ID) -> str:
    """``text`` (on one line) at most ``limit`` characters: the head (the
    file and the function) and the tail (the parameters) kept, an
    ellipsis between."""
    s = one_line(text)
    if len(s) <= limit:
        return s
    keep = limit - 1
    head = keep * 3 // 5
    return s[:head] + "…" + s[len(s) - (keep - head):]


def short_ids(ids: Iterable[str], limit: int = MAX_ID) -> dict[str, str]:
    """{test id: what the tables show}: each on one line and at most
    ``limit`` characters, distinct for distinct ids. Where a changed id
    (shortened, or put on one line) reads as another's, it ends in ``~``
    and hex digits of a hash of the whole id (eight, more if needed)."""
    ids = list(dict.fromkeys(ids))
    shown = {t: shorten(t, limit) for t in ids}
    for digits in (8, 16, 40):
        readers: dict[str, list[str]] = {}
        for t, s in shown.items():
            readers.setdefault(s, []).append(t)
        clashes = [t for ts in readers.values() if len(ts) > 1 for t in ts if shown[t] != t]
        if not clashes:
            break
        for t in clashes:
            tag = "~" + hashlib.sha1(t.encode("utf-8", "surrogatepass")).hexdigest()[:digits]
            shown[t] = shorten(t, max(limit - len(tag), 8)) + tag
    return shown


# -- numbers -----------------------------------------------------------------


def _rate(rate: Any) -> str:
    if not isinstance(rate, dict) or not finite(rate.get("value")):
        return ""
    unit = str(rate.get("unit") or "")
    if rate.get("kind") == "work over wall time":
        unit += " wall"
    return textfmt.rate(rate["value"], unit)


# -- the document ------------------------------------------------------------


def _confidence(data: dict[str, Any]) -> float:
    level = (data.get("statistics") or {}).get("confidence")
    if not finite(level):
        level = next((c.get("confidence") for c in data.get("claims") or [] if finite(c.get("confidence"))), None)
    return float(level) if finite(level) else 0.95


def _note(claim: dict[str, Any]) -> str:
    verdict = claim.get("verdict")
    if claim.get("waived"):
        return str(claim["waived"])
    if claim.get("waiver_expired"):
        return "waiver expired: " + str((claim.get("waiver") or {}).get("until") or "")
    if claim.get("reason"):
        return str(claim["reason"]).splitlines()[0] if str(claim["reason"]).strip() else ""
    before = claim.get("verdict_uncorrected")
    if before is not None and before != verdict:
        p = claim.get("p_adjusted")
        return f"Holm: adjusted p={p:.3g}, not {before} as its own interval alone says" if finite(p) else \
            f"Holm: not {before} as its own interval alone says"
    if verdict == INCONCLUSIVE:
        need = claim.get("rounds_needed")
        if finite(need) and need <= 1e6:
            return f"about {math.ceil(need)} rounds in all would decide it"
        if need is not None and isinstance(need, (int, float)) and not finite(need):
            return f"the {'ratio' if claim.get('unit', 'ratio') == 'ratio' else 'estimate'} sits on the claim's bound"
    if claim.get("accel") == "tcg":
        return f"{claim.get('env')} ran under TCG (software emulation)"
    return ""


def _headline(claims: list[dict[str, Any]], n_tests: int) -> str:
    if not claims:
        return f"## pytest-virtoverhead: {n_tests} test{'s' * (n_tests != 1)} compared, no claims"
    counts: dict[str, int] = {}
    for c in claims:
        counts[str(c.get("verdict"))] = counts.get(str(c.get("verdict")), 0) + 1
    parts = [f"{BADGE[v].split(' ')[0]} {n} {_HEAD_WORD[v]}" if v in BADGE else f"{n} {cell(v)}"
             for v, n in by_severity(counts)]
    return f"## pytest-virtoverhead: {len(claims)} claim{'s' * (len(claims) != 1)}: " + ", ".join(parts)


def table(head: list[str], rows: list[list[str]], right: AbstractSet[int] = frozenset(), *,
          keep: int | None = None, left_out: str = "") -> list[str]:
    """A GFM table (columns in ``right`` right-aligned). With ``keep``, its
    first ``keep`` rows, then, when some are left out, an italic line:
    their number and ``left_out`` (``more row(s) left out ...``)."""
    shown = rows if keep is None else rows[:keep]
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join("---:" if i in right else "---" for i in range(len(head))) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in shown]
    if len(shown) < len(rows):
        out += ["", f"*{len(rows) - len(shown)} {left_out}*"]
    return out


def _claim_rows(data: dict[str, Any], shown: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    level = _confidence(data)
    # What needs attention first.
    claims = sorted(enumerate(data.get("claims") or []), key=lambda ic: (-severity(ic[1].get("verdict")), ic[0]))
    notes = any(_note(c) for _, c in claims)
    times = any(c.get("unit", "ratio") != "ratio" for _, c in claims)
    # Fixed-cost and absolute claims estimate a time (seconds), not a ratio.
    head = ["verdict", "test", "claim", "estimate" if times else "ratio", f"{level_text(level)} CI"] + \
        (["note"] if notes else [])
    rows = []
    for _, c in claims:
        test = str(c.get("test", ""))
        fmt = estimate_format(c.get("unit"))
        est, ci = fmt(c.get("ratio")), interval(c.get("ci"), fmt, empty="-")
        row = [cell(BADGE.get(c.get("verdict"), c.get("verdict"))), code(shown.get(test, shorten(test))),
               code(c.get("claim", "")), est, ci]
        if notes:
            row.append(cell(_note(c)) if _note(c) else " ")
        rows.append(row)
    return head, rows


def _outcome_note(test: dict[str, Any], results: list[dict[str, Any]]) -> str:
    outcome = test.get("outcome")
    if outcome == "failed":
        where = next((r.get("env") for r in results if r.get("error")), None)
        return f"test failed in {where}" if where else "test failed"
    if outcome in ("skipped", "xfailed"):
        text = str(test.get(outcome) or "").strip()
        return f"{outcome}: {shorten(text.splitlines()[0], 120)}" if text else outcome
    disturbed = test.get("disturbed")
    if isinstance(disturbed, int) and disturbed > 0:
        return f"noise: {disturbed} disturbed round(s), {test.get('retries', 0)} retried"
    return ""


def _result_rows(data: dict[str, Any], shown: dict[str, str]) -> tuple[list[str], list[list[str]], set[int]]:
    level = _confidence(data)
    baseline = data.get("baseline")
    envs_meta = data.get("environments") or {}
    by_test: dict[str, list[dict[str, Any]]] = {}
    for r in data.get("results") or []:
        by_test.setdefault(str(r.get("test", "")), []).append(r)
    tests = {str(t.get("test", "")): t for t in data.get("tests") or []}
    claims_of: dict[tuple[str, str], list[str]] = {}
    for c in data.get("claims") or []:
        claims_of.setdefault((str(c.get("test", "")), str(c.get("env", ""))), []).append(str(c.get("verdict")))
    show_rate = any(_rate(r.get("rate")) for rs in by_test.values() for r in rs)
    head = ["test", "env", "rounds", "median"] + (["rate"] if show_rate else []) + \
        ["ratio", f"{level_text(level)} CI", "verdict"]
    rows: list[list[str]] = []
    for test in list(dict.fromkeys([*by_test, *tests])):
        results = by_test.get(test, [])
        first = True
        for r in results:
            env = str(r.get("env", ""))
            samples = r.get("samples") or []
            if env == baseline and samples:
                rat, ci = "1.000", "baseline"
            else:
                rat, ci = fixed(r.get("ratio")), interval(r.get("ci"), empty="-")
            verdicts = claims_of.get((test, env), [])
            verdict = ""
            if "unavailable" in r:
                verdict = "unavailable"
            elif verdicts:
                worst = worst_verdict(verdicts)
                verdict = BADGE.get(worst, worst) + (f" ({len(verdicts)} claims)" if len(verdicts) > 1 else "")
            n = r.get("n_rounds", len(samples))
            row = [code(shown.get(test, shorten(test))) if first else " ",
                   cell(env_label(env, envs_meta.get(env))), str(n) if samples else "-",
                   seconds(r.get("median")) if samples else "-"]
            if show_rate:
                row.append(cell(_rate(r.get("rate"))) if _rate(r.get("rate")) else " ")
            row += [rat if samples else "-", ci if samples else "-", cell(verdict) if verdict else " "]
            rows.append(row)
            first = False
        note = _outcome_note(tests.get(test, {}), results)
        if note or not results:
            rows.append([code(shown.get(test, shorten(test))) if first else " "] + [" "] * (len(head) - 2)
                        + [cell(note or "no results")])
    right = {i for i, h in enumerate(head) if h in ("rounds", "median", "rate", "ratio")}
    return head, rows, right


def _context(data: dict[str, Any]) -> list[str]:
    envs = data.get("environments") or {}
    parts = []
    if data.get("baseline"):
        parts.append(f"baseline {code(data['baseline'])}")
    parts.append(f"{level_text(_confidence(data))} intervals")
    method = data.get("verdict_method") or {}
    if isinstance(method, dict) and method.get("correction") == "holm":
        parts.append(f"verdicts family-wise at {level_text(_confidence(data))} over {cell(method.get('family_size'))} "
                     "claims (Holm's correction)")
    elif isinstance(method, dict) and method.get("correction"):
        parts.append("each claim on its own interval (no correction)")
    # The tests' own counts where markers (rounds=) or a time budget set others than --virt-rounds.
    counts = sorted({t["rounds"] for t in data.get("tests") or [] if isinstance(t, dict) and finite(t.get("rounds"))})
    if counts:
        parts.append(f"{counts[0]} rounds per test" if len(counts) == 1 else
                     f"{counts[0]} to {counts[-1]} rounds per test")
    elif finite(data.get("rounds")):
        parts.append(f"{data['rounds']} rounds per test")
    if data.get("seed") is not None:
        parts.append(f"seed {cell(data['seed'])}")
    if envs:
        parts.append("environments: " + ", ".join(code(env_label(n, m)) for n, m in envs.items()))
    lines = [" · ".join(parts)]
    machines = data.get("machines")
    if isinstance(machines, dict) and len(machines) > 1:
        how = "Merged from" if data.get("merged") else "Measured on"  # else: xdist workers on several hosts
        lines.append(f"{how} {len(machines)} machines: {', '.join(map(code, machines))} (each test's times "
                     "are from one machine; a test measured on several reads `TEST @ MACHINE`).")
    host = data.get("host") or {}
    if isinstance(host, dict) and host.get("virtual") and host.get("label"):
        lines.append(f"{', '.join(map(code, host_envs(envs)))}: {cell(host['label'])}.")
    if any(isinstance(m, dict) and m.get("kind") == "vm" and m.get("accel") == "tcg" for m in envs.values()):
        lines.append("A `[tcg]` VM ran under software emulation, not hardware virtualization: "
                     "its ratios are not those of a KVM guest.")
    if data.get("aborted"):
        lines.append(f"> ⚠️ The run did not finish (exit status {cell(data.get('exitstatus', '?'))}): "
                     "these results are partial.")
    return lines


def render(data: dict[str, Any], *, max_bytes: int | None = None, limit: int = MAX_ID) -> str:
    """The Markdown of one results document (see the module's docstring).

    With ``max_bytes`` the text (UTF-8) stays under that size: rows of the
    per-test table are left out first, then claims, with a line saying how
    many and where the rest is.
    """
    ids = [str(c.get("test", "")) for c in data.get("claims") or []]
    ids += [str(r.get("test", "")) for r in data.get("results") or []]
    ids += [str(t.get("test", "")) for t in data.get("tests") or []]
    shown = short_ids(ids, limit)
    tests = list(dict.fromkeys(str(t.get("test", "")) for t in data.get("tests") or []) or
                 dict.fromkeys(str(r.get("test", "")) for r in data.get("results") or []))
    claims = data.get("claims") or []
    chead, crows = _claim_rows(data, shown)
    rhead, rrows, right = _result_rows(data, shown)

    def build(n_claims: int, n_rows: int) -> str:
        out = [_headline(claims, len(tests)), ""]
        out += _context(data)
        out.append("")
        if crows:
            out += table(chead, crows, {3}, keep=n_claims,
                         left_out="more claim(s) left out to keep this summary small: see the run's `--virt-json` file.")
        else:
            out.append("No claims were checked.")
        whys = [f"- {code(shown.get(str(c.get('test')), shorten(str(c.get('test')))))} {code(c.get('claim', ''))}: "
                f"{cell(c['why'])}" for c in claims if c.get("why")][:n_claims]
        if whys:
            out += ["", "Why, from the resource counters measured around the timed calls:", "", *whys]
        explain = data.get("explain") or {}
        lines = [f"- {code(shown.get(str(e.get('test')), shorten(str(e.get('test')))))}: {cell(e.get('text', ''))}"
                 for e in explain.get("ablations") or []] + [f"- {cell(v)}" for v in explain.get("vm") or []]
        if lines:
            out += ["", "Attribution (`--virt-explain`):", "", *lines]
        out += ["", f"<details><summary>Per-test table ({len(tests)} test{'s' * (len(tests) != 1)})"
                    "</summary>", ""]
        if rrows:
            out += table(rhead, rrows, right, keep=n_rows,
                         left_out="more row(s) left out to keep this summary small: see the run's `--virt-json` file.")
        else:
            out.append("No test was measured.")
        if any(shown[t] != t for t in shown):
            out += ["", f"*Test ids over {limit} characters or over one line are shortened here "
                        "(`…`, `⏎`); the JSON has them whole.*"]
        out += ["", "</details>", ""]
        return "\n".join(out)

    # Too big: table rows go before claims.
    return fit(build, len(crows), len(rrows), max_bytes)


def fit(build: Callable[[int, int], str], n_first: int, n_second: int, max_bytes: int | None) -> str:
    """``build(n_first, n_second)``; while its UTF-8 text is over
    ``max_bytes``, halve what is kept: ``n_second`` first, then ``n_first``."""
    text = build(n_first, n_second)
    while max_bytes is not None and len(text.encode()) > max_bytes and (n_first or n_second):
        if n_second:
            n_second //= 2
        else:
            n_first //= 2
        text = build(n_first, n_second)
    return text


def write_markdown(path: str, data: dict[str, Any]) -> None:
    """``--virt-markdown``: write :func:`render`'s text atomically."""
    atomic_write(path, render(data))


def append_summary(path: str, data: dict[str, Any]) -> None:
    """Append :func:`render`'s text to ``path`` (``$GITHUB_STEP_SUMMARY``:
    other steps and runs append there too), kept under
    :data:`SUMMARY_MAX_BYTES` together with what the file holds already."""
    append_within_limit(path, lambda max_bytes: render(data, max_bytes=max_bytes))


def append_within_limit(path: str, render_text: Callable[[int], str]) -> None:
    """Append ``render_text(max_bytes)`` to ``path``, ``max_bytes`` being
    what :data:`SUMMARY_MAX_BYTES` leaves beside the file's present size
    (at least 4 KiB), after a blank line when the file holds something."""
    try:
        used = os.path.getsize(path)
    except OSError:
        used = 0
    text = render_text(max(SUMMARY_MAX_BYTES - used, 4096))
    with open(path, "a", encoding="utf-8") as f:
        if used:
            f.write("\n")
        f.write(text)
