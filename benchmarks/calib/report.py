"""The calibration's table on stdout and its section of benchmarks/RESULTS.md."""

from __future__ import annotations

import math
import os
import re
from typing import Any

from .base import (
    BEGIN,
    COVERAGE_TARGET,
    END,
    FLAG_RATE_TARGET,
    FLOOR_TARGET,
    PARTS,
    RSS_LIMIT_MB,
    SECTION_TITLE,
    spread,
)

# --------------------------------------------------------------------------
# table and Markdown


def pct(x: Any, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x * 100:.{digits}f}%"


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    """part | what | n | figure | p10 | median | p90 | target | met | wall"""
    rows = []
    parts = result["parts"]
    k_need, n_need = COVERAGE_TARGET

    def wall(part: str) -> str:
        return f"{parts[part]['seconds']:.0f} s"

    for part, key in (("aa-call", "control/baremetal"), ("aa-bench", "control/baremetal"),
                      ("aa-container", "c2/container"), ("aa-xdist", "control/baremetal")):
        if part not in parts:
            continue
        if parts[part].get("skipped"):
            rows.append([part, parts[part]["skipped"], "", "", "", "", "", "", "", ""])
            continue
        s = parts[part]["summary"][key]
        n = s["with_interval"]
        # The target is k of n: at least 90% of at least 20 sessions.
        met = ("yes" if s["covers_1"] >= math.ceil(k_need / n_need * n) else "NO") if n >= n_need else \
            f"n < {n_need}"
        rows.append([part, f"{s['pair']}: 95% CI covers 1.0", str(n), f"{s['covers_1']}/{n}", "", "", "",
                     f">= {k_need}/{n_need}", met, wall(part)])
        hw = s["half_width"]
        rows.append([part, f"{s['pair']}: CI half-width", str(hw["n"]), "", pct(hw["p10"]), pct(hw["median"]),
                     pct(hw["p90"]), "", "", ""])
        rows.append([part, f"{s['pair']}: ratio", str(s["ratio"]["n"]), "", f"{s['ratio']['p10']:.4f}",
                     f"{s['ratio']['median']:.4f}", f"{s['ratio']['p90']:.4f}", "", "", ""])
        v = ", ".join(f"{k} {c}" for k, c in sorted(s["verdicts"].items()))
        rows.append([part, f"{s['pair']}: verdicts (disturbed rounds {s['disturbed_rounds']}, retried "
                           f"{s['retried_rounds']}, session errors {len(s['errors'])})", str(s["claims"]), v,
                     "", "", "", "", "", ""])
    if "floor" in parts and not parts["floor"].get("skipped"):
        f = parts["floor"]
        first = True
        for s in f["summary"].values():
            hw = s["half_width"]
            met = "-" if not hw["n"] else ("yes" if hw["median"] <= FLOOR_TARGET else "NO")
            rows.append(["floor", f"{s['pair']}: CI half-width at {f['rounds']} rounds (covers 1.0: "
                                  f"{s['covers_1']}/{s['with_interval']})", str(hw["n"]), "", pct(hw["p10"]),
                         pct(hw["median"]), pct(hw["p90"]), "median <= 2%", met, wall("floor") if first else ""])
            first = False
    elif "floor" in parts:
        rows.append(["floor", parts["floor"]["skipped"], "", "", "", "", "", "", "", ""])
    if "scale" in parts and not parts["scale"].get("skipped"):
        for c in parts["scale"]["summary"]["checks"]:
            v = ", ".join(f"{k} {n}" for k, n in sorted(c["verdicts"].items(), key=lambda kv: str(kv[0])))
            rows.append(["scale", f"claims with a verdict ({c['tests']} tests, >= {c['min_samples_per_round']} "
                                  "samples per round)", str(c["claims"]), v or "-", "", "", "",
                         "every claim", "yes" if c["every_claim_decided_or_inconclusive"] and not c["error"]
                         else "NO", wall("scale")])
            rss = c["peak_rss_mb"]
            rows.append(["scale", "peak RSS of the host pytest process (VmHWM)", "1",
                         "-" if rss is None else f"{rss:.0f} MB", "", "", "", f"< {RSS_LIMIT_MB:.0f} MB",
                         "-" if rss is None else ("yes" if rss < RSS_LIMIT_MB else "NO"), ""])
            if c.get("time_v_maxrss_mb"):
                rows.append(["scale", "max RSS of the process tree (/usr/bin/time -v)", "1",
                             f"{c['time_v_maxrss_mb']:.0f} MB", "", "", "", "", "", ""])
    elif "scale" in parts:
        rows.append(["scale", parts["scale"]["skipped"], "", "", "", "", "", "", "", ""])
    if "compare" in parts:
        s = parts["compare"]["summary"]
        met = "-" if not s["rows"] else ("yes" if s["flag_rate"] <= FLAG_RATE_TARGET else "NO")
        rows.append(["compare", f"rows flagged better or worse ({s['runs_ok']} runs, {s['pairs']} unordered pairs; "
                                f"better {s['better']}, worse {s['worse']})", str(s["rows"]),
                     f"{s['flagged']}/{s['rows']} = {pct(s['flag_rate'], 1)}", "", "", "", "<= 5%", met,
                     wall("compare")])
        rows.append(["compare", "rows whose B/A interval excludes 1.0; claim verdict changes", str(s["rows"]),
                     f"{s['ci_excludes_1']}; {s['claim_changes']}", "", "", "", "", "", ""])
        if s["problems"]:
            rows.append(["compare", f"compare problems: {s['problems'][0]}"[:160], str(len(s["problems"])),
                         "", "", "", "", "", "", ""])
    return rows


HEAD = ["part", "what", "n", "figure", "p10", "median", "p90", "target", "met", "wall"]


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(HEAD[i]), *(len(r[i]) for r in rows)) for i in range(len(HEAD))] if rows else \
        [len(h) for h in HEAD]
    right = {2, 3, 4, 5, 6, 9}

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                         for i, c in enumerate(cells)).rstrip()
    return "\n".join([line(HEAD), line(["-" * w for w in widths])] + [line(r) for r in rows])


def md_table(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(HEAD) + " |", "|" + "|".join("---:" if i in (2, 3, 4, 5, 6, 9) else "---"
                                                           for i in range(len(HEAD))) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def header_lines(result: dict[str, Any]) -> list[str]:
    m = result["machine"]
    v = m["virtualization"]
    host = (f"itself a virtual machine: {v.get('label') or v.get('hypervisor') or 'a guest'} "
            f"({'; '.join(v.get('evidence') or [])})" if v.get("virtual") else "not a virtual machine as far as "
            "the CPU flags, DMI and clock sources tell")
    if v.get("systemd_detect_virt"):
        host += f"; systemd-detect-virt: {v['systemd_detect_virt']}"
    steal = result.get("steal") or {}
    per_cpu = ", ".join(f"{k} {pct(x['steal'], 1)}" for k, x in sorted(steal.items()) if k != "cpu")
    busy = ", ".join(f"{k} {pct(x['busy'], 0)}" for k, x in sorted(steal.items()) if k != "cpu")
    g = result["git"]
    lines = [
        f"machine   {m['cpu_model']}, {m['cores']} cores, kernel {m['kernel']} ({m['os']}), {m['python']}",
        f"host      {host}",
        f"load      before: {result['uptime_before']}",
        f"          after:  {result['uptime_after']}",
        f"steal     {pct((steal.get('cpu') or {}).get('steal'), 2)} of all CPU time over the run "
        f"({(steal.get('cpu') or {}).get('steal_ticks', 0)} of {(steal.get('cpu') or {}).get('ticks', 0)} ticks, "
        f"/proc/stat); per CPU: {per_cpu}; busy (not idle/iowait): {busy}",
        f"plugin    commit {g['commit']} ({g['subject']})"
        + (f"; {len(g['plugin_uncommitted'])} uncommitted change(s) under pytest_virtoverhead/ at start"
           if g["plugin_uncommitted"] else ""),
        f"pinning   environments' CPU sets seen: {result.get('cpusets_seen') or '-'}",
        f"time      {result['started']} to {result['ended']} ({result['seconds']:.0f} s)",
        f"command   {result['command']}",
    ]
    merged = [n for n, p in result["parts"].items() if p.get("merged_from")]
    if merged:
        first = result["parts"][merged[0]]
        lines.append(f"merged    {', '.join(merged)} from the run started {first.get('run_started')} "
                     f"({first['merged_from']}); the lines above describe this run, each part's own times below")
    busiest = result.get("top_before") or []
    if busiest:
        lines.append(f"busiest   at start (ps %CPU PID ELAPSED COMMAND): {' | '.join(busiest[:4])}")
    return lines


def anomalies(result: dict[str, Any]) -> list[str]:
    out = []
    for name, part in result["parts"].items():
        if part.get("skipped"):
            out.append(f"{name}: skipped ({part['skipped']})")
            continue
        for s in (part.get("summary") or {}).values():
            if not isinstance(s, dict) or "excluding_1" not in s:
                continue
            for e in s["excluding_1"]:
                out.append(f"{name} {s['pair']}: CI excludes 1.0 in {e['session']}: {e['ratio']:.4f} "
                           f"[{e['ci'][0]:.4f}, {e['ci'][1]:.4f}] {e['verdict']} (disturbed rounds "
                           f"{e['disturbed_rounds']}; {e['json']})")
            for e in s["without_interval"]:
                out.append(f"{name} {s['pair']}: no interval in {e['session']}: {e['verdict']} "
                           f"{e.get('reason') or ''} ({e['json']})")
            for e in s["errors"]:
                out.append(f"{name}: {e['session']}: {e['error']} (log {e['log']})")
            if s["sessions_without_claim"]:
                out.append(f"{name} {s['pair']}: no claim in {len(s['sessions_without_claim'])} session(s), "
                           f"e.g. {s['sessions_without_claim'][0]}")
            if s.get("waited_for_cpu"):
                out.append(f"{name} {s['pair']}: {len(s['waited_for_cpu'])} session(s) waited for another "
                           f"pytest-virtoverhead session's CPU first (someone else measured), e.g. "
                           f"{s['waited_for_cpu'][0]}")
            if s["not_measured"]:
                e = s["not_measured"][0]
                out.append(f"{name} {s['pair']}: test not measured in {len(s['not_measured'])} session(s), e.g. "
                           f"{e['session']}: {e['outcome']}: {e['why']}")
        if name == "scale":
            for c in part["summary"]["checks"]:
                if c["error"] or not c["every_claim_decided_or_inconclusive"] or c["test_errors"]:
                    out.append(f"scale: {c['session']}: error {c['error']}, verdicts {c['verdicts']}, "
                               f"tests not measured {c['test_errors']} ({c['json']})")
        if name == "compare":
            if part["summary"].get("sessions_waited_for_cpu"):
                out.append(f"compare: {len(part['summary']['sessions_waited_for_cpu'])} run(s) waited for another "
                           f"pytest-virtoverhead session's CPU first (someone else measured), e.g. "
                           f"{part['summary']['sessions_waited_for_cpu'][0]}")
            for r in part["summary"]["flagged_rows"]:
                out.append(f"compare: {r.get('a')} -> {r.get('b')}: {r.get('test') or r.get('line')} "
                           f"[{r.get('env', '')}] {r['flag']} (change {r.get('change')}, CI {r.get('ci')})")
            for p in part["summary"]["problems"]:
                out.append(f"compare: {p}")
    return out


def markdown_section(result: dict[str, Any], rows: list[list[str]]) -> str:
    parts = result["parts"]
    notes = []
    for name in PARTS:
        if name in parts and not parts[name].get("skipped"):
            p = parts[name]
            n = len(p.get("sessions", []))
            argtext = ("`" + " ".join(p["args"]) + "`" if isinstance(p["args"], list) else
                       "; ".join(f"{k}: `{' '.join(v)}`" for k, v in p["args"].items()))
            walls = spread([x["seconds"] for x in p.get("sessions", [])])
            used = []
            for key, sm in (p.get("summary") or {}).items():
                if isinstance(sm, dict) and "rounds" in sm:
                    lm = sm.get("load1_max") or {}
                    used.append(f"{key}: rounds used {sm['rounds']}, processes {sm['processes']}, calls per round "
                                f"{sm['calls']}, method {sm['methods']}"
                                + (f", highest 1-min load seen in a session's rounds p10/median/max "
                                   f"{lm['p10']:.2f} / {lm['median']:.2f} / {lm['max']:.2f}" if lm.get("n") else "")
                                + (f", {len(sm['waited_for_cpu'])} session(s) first waited for another "
                                   "pytest-virtoverhead session's CPU" if sm.get("waited_for_cpu") else ""))
            when = ""
            if p.get("uptime_before") or p.get("uptime_after"):
                def load(u: Any) -> str:
                    m = re.search(r"load average: (.*)$", str(u or ""))
                    return m.group(1) if m else "?"
                stl = ((p.get("steal") or {}).get("cpu") or {}).get("steal")
                when = (f"measured {p.get('run_started', '')[:10] + ' ' if p.get('merged_from') else ''}"
                        f"{p.get('started', '?')}-{p.get('ended', '?')} UTC"
                        + (" (an earlier run, merged)" if p.get("merged_from") else "")
                        + f", load {load(p.get('uptime_before'))} before, {load(p.get('uptime_after'))} after, "
                        f"steal {pct(stl, 2)}; ")
            notes.append(f"- `{name}`: {when}{p.get('workload', '')}; {n} session(s), {p['seconds']:.0f} s in all "
                         f"(per session p10/median/p90 {walls['p10']:.1f} / {walls['median']:.1f} / "
                         f"{walls['p90']:.1f} s); arguments {argtext}" + (f"; {'; '.join(used)}" if used else "")
                         + ".")
    bad = anomalies(result)
    text = [BEGIN, f"# {SECTION_TITLE}", "",
            f"Measured by `{result['command']}` on {result['started']} ({result['seconds']:.0f} s). "
            "The figures of issue 11's \"Done when\": A/A coverage of the 95% interval, the A/A half-width "
            "(noise floor) at 20 rounds, a sub-microsecond pytest-benchmark suite at scale, and offline "
            "`compare` between identical runs. Each session is a fresh `pytest --virt-compare` with its own "
            "`--virt-seed` and the plugin's defaults unless a part says otherwise; the relative half-width is "
            "(hi - lo) / 2 / ratio; p10/median/p90 interpolate between order statistics. Session JSONs and "
            f"seeds: `{result['json']}` (not kept in the repository).", "",
            *[f"    {h}" for h in header_lines(result)], "",
            md_table(rows), "", "Parts:", "", *notes, ""]
    if result.get("quick"):
        text += ["**Smoke run (--quick): counts and rounds are too small for the targets.**", ""]
    for note in result.get("notes") or []:
        text += [f"Note: {note}", ""]
    if bad:
        text += ["What to look at (seed and JSON path of each to reproduce):", ""]
        text += [f"- {b}" for b in bad[:40]]
        if len(bad) > 40:
            text.append(f"- ... {len(bad) - 40} more in the summary JSON")
        text.append("")
    text.append(END)
    return "\n".join(text) + "\n"


def replace_section(path: str, section: str) -> None:
    """Create or replace only this script's section of ``path``: between its
    markers if present, else from a ``# Verdict calibration`` heading to the
    next top-level heading; else appended."""
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    if BEGIN.split(" (")[0] in old and END in old:
        start = old.index(BEGIN.split(" (")[0])
        end = old.index(END, start) + len(END)
        if end < len(old) and old[end] == "\n":
            end += 1
        new = old[:start] + section + old[end:]
    else:
        lines = old.splitlines(keepends=True)
        idx = next((i for i, ln in enumerate(lines) if re.match(rf"^#{{1,2}} {re.escape(SECTION_TITLE)}\s*$", ln)),
                   None)
        if idx is not None:
            end = next((j for j in range(idx + 1, len(lines)) if re.match(r"^# ", lines[j])), len(lines))
            new = "".join(lines[:idx]) + section + "".join(lines[end:])
        else:
            new = old + ("\n" if old and not old.endswith("\n\n") else "") + section
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, path)


