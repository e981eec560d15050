"""The command line: run the parts, merge, resummarize, write the outputs."""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from typing import Any

import calib

from .base import (
    COVERAGE_TARGET,
    FLAG_RATE_TARGET,
    FLOOR_TARGET,
    HERE,
    PARTS,
    QUICK_ROUNDS,
    QUICK_SESSIONS,
    RESULTS_MD,
    ROOT,
    RSS_LIMIT_MB,
    SCALE_CLAIMS,
    SCALE_SAMPLES,
    SECTION_TITLE,
    SESSIONS,
    log,
)
from .machine import git_state, machine, proc_stat, steal_between, top_processes, uptime
from .parts import RUN, summarize
from .report import anomalies, header_lines, markdown_section, replace_section, table_rows, text_table
from .runner import digest
from .session import Calibration

#: The command line's script, as the summary records the command.
SCRIPT = os.path.join(HERE, "calibration.py")

# --------------------------------------------------------------------------


def json_clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): json_clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_clean(v) for v in x]
    return x


def available(kind: str) -> str | None:
    """Why parts needing ``kind`` cannot run here (None: they can)."""
    if kind == "benchmark":
        p = subprocess.run([ARGS_PY[0], "-c", "import pytest_benchmark"], capture_output=True)
        return None if p.returncode == 0 else "pytest-benchmark is not installed in the interpreter"
    return None


ARGS_PY: list[str] = [sys.executable]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(calib.__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", action="append", choices=PARTS, help="part to run (repeatable; default all)")
    parser.add_argument("--sessions", type=int, default=None,
                        help="sessions per part (runs for compare) instead of the defaults "
                             + ", ".join(f"{k} {v}" for k, v in SESSIONS.items()))
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {QUICK_ROUNDS} rounds and "
                             + ", ".join(f"{k} {v}" for k, v in QUICK_SESSIONS.items()) + " sessions")
    parser.add_argument("--json", default=None, help="summary JSON (default <out-dir>/calibration.json)")
    parser.add_argument("--out-dir", default=None, help="where generated tests and session JSONs go "
                                                        "(default a new /tmp/virt-calibration-* directory)")
    parser.add_argument("--write-results", action="store_true",
                        help="write the 'Verdict calibration' section of benchmarks/RESULTS.md")
    parser.add_argument("--results", default=RESULTS_MD, help=argparse.SUPPRESS)
    parser.add_argument("--python", default=None,
                        help="interpreter with the plugin (default .venv/bin/python of the project, else this one)")
    parser.add_argument("--seed-offset", type=int, default=0, help="added to every session's --virt-seed")
    parser.add_argument("--extra", action="append", default=[], metavar="ARG",
                        help="extra pytest argument for every session (repeatable), e.g. --extra=--virt-processes=2")
    parser.add_argument("--call-ms", type=float, default=15.0, help="call-based workload per call (default 15 ms)")
    parser.add_argument("--bench-us", type=float, default=200.0,
                        help="benchmark-fixture workload per call (default 200 us)")
    parser.add_argument("--bench-max-time", default="0.05",
                        help="--benchmark-max-time of the benchmark-fixture tests (default 0.05 s)")
    parser.add_argument("--scale-samples", type=int, default=None, help=f"default {SCALE_SAMPLES}")
    parser.add_argument("--scale-envs", default="baremetal,control=baremetal,container")
    parser.add_argument("--scale-claim", action="append", default=None,
                        help="claim of the scale suite (repeatable; default: " + "; ".join(SCALE_CLAIMS).replace("%", "%%") + ")")
    parser.add_argument("--compare-envs", default="baremetal,control=baremetal,container")
    parser.add_argument("--session-timeout", type=float, default=600.0)
    parser.add_argument("--note", action="append", default=[],
                        help="a sentence for the section, e.g. what else ran on the machine (repeatable)")
    parser.add_argument("--merge", metavar="SUMMARY.json",
                        help="take the parts this run does not measure from an earlier run's summary JSON")
    parser.add_argument("--resummarize", metavar="SUMMARY.json",
                        help="run nothing: recompute the figures (table, JSON, section) from a finished run's "
                             "summary JSON and its session files")
    args = parser.parse_args(argv)
    if args.resummarize:
        return resummarize(args)
    if args.python is None:
        venv = os.path.join(ROOT, ".venv", "bin", "python")
        args.python = venv if os.path.exists(venv) else sys.executable
    ARGS_PY[0] = args.python
    parts = [p for p in PARTS if p in (args.part or PARTS)]
    out_dir = args.out_dir or tempfile.mkdtemp(prefix=f"virt-calibration-{time.strftime('%Y%m%d-%H%M%S')}-")
    os.makedirs(out_dir, exist_ok=True)
    out_dir = os.path.abspath(out_dir)
    json_path = os.path.abspath(args.json or os.path.join(out_dir, "calibration.json"))

    command = " ".join(shlex.quote(a) for a in [os.path.relpath(args.python, ROOT)
                                                  if args.python.startswith(ROOT) else args.python,
                                                  os.path.relpath(SCRIPT, ROOT),
                                                  *(argv if argv is not None else sys.argv[1:])])
    result: dict[str, Any] = {
        "command": command, "quick": args.quick, "out_dir": out_dir, "json": json_path,
        "machine": machine(), "git": git_state(),
        "uptime_before": uptime(), "loadavg_before": list(os.getloadavg()), "top_before": top_processes(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "targets": {"coverage": f">= {COVERAGE_TARGET[0]}/{COVERAGE_TARGET[1]}", "floor_median": FLOOR_TARGET,
                    "rss_mb": RSS_LIMIT_MB, "compare_flag_rate": FLAG_RATE_TARGET},
        "parts": {},
    }
    log(f"calibration: parts {', '.join(parts)}; out dir {out_dir}")
    cal = Calibration(args, out_dir)
    stat0 = proc_stat()
    t_all = time.perf_counter()
    for name in parts:
        if name in ("aa-bench", "scale", "compare"):
            why = available("benchmark")
            if why:
                result["parts"][name] = {"skipped": why, "seconds": 0.0}
                log(f"{name}: skipped: {why}")
                continue
        up0 = uptime()
        log(f"part {name}: start (uptime: {up0})")
        started = time.strftime("%H:%M:%S", time.gmtime())
        st = proc_stat()
        t0 = time.perf_counter()
        first = len(cal.done)
        try:
            part = RUN[name](cal)
        except Exception as exc:  # noqa: BLE001 - one broken part must not lose the others' figures
            import traceback
            part = {"skipped": f"crashed: {exc!r}", "traceback": traceback.format_exc(),
                    "sessions": cal.done[first:]}
            log(f"{name}: crashed: {exc!r}")
        if not part.get("skipped"):
            try:
                part["summary"] = summarize(name, part)
            except Exception as exc:  # noqa: BLE001 - nor one broken summary
                import traceback
                part = {**part, "skipped": f"summary crashed: {exc!r}", "traceback": traceback.format_exc()}
                log(f"{name}: summary crashed: {exc!r}")
        part["seconds"] = time.perf_counter() - t0
        part["steal"] = steal_between(st, proc_stat())
        part["uptime_before"] = up0
        part["uptime_after"] = uptime()
        part["started"] = started
        part["ended"] = time.strftime("%H:%M:%S", time.gmtime())
        result["parts"][name] = part
        log(f"part {name}: {part['seconds']:.0f} s")
        # Written after every part: a long run interrupted keeps what it measured.
        result["partial"] = True
        with open(json_path, "w") as f:
            json.dump(json_clean(result), f, indent=1, default=str)
    result["partial"] = False
    result["seconds"] = time.perf_counter() - t_all
    result["steal"] = steal_between(stat0, proc_stat())
    result["uptime_after"] = uptime()
    result["loadavg_after"] = list(os.getloadavg())
    result["top_after"] = top_processes()
    result["ended"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    result["loops"] = cal.loops
    if args.merge:
        # Parts this run did not measure, from an earlier run (e.g. one part
        # measured again after a disturbance): each keeps its own times.
        with open(args.merge) as f:
            earlier = json.load(f)
        merged = {}
        for name in PARTS:
            if name in result["parts"]:
                merged[name] = result["parts"][name]
            elif name in earlier.get("parts", {}):
                merged[name] = {**earlier["parts"][name], "merged_from": os.path.abspath(args.merge),
                                "run_started": earlier.get("started")}
        result["parts"] = merged
        result["merged_from"] = os.path.abspath(args.merge)
    return finish(result, args, json_path)


def finish(result: dict[str, Any], args: argparse.Namespace, json_path: str) -> int:
    """Table, anomalies, JSON, stdout and (--write-results) the section."""
    if args.note:
        result["notes"] = list(args.note)
    seen = set()
    for part in result["parts"].values():
        for s in part.get("sessions", []):
            for env, cpus in (s.get("cpusets") or {}).items():
                seen.add(f"{env}={cpus}")
    result["cpusets_seen"] = ", ".join(sorted(seen))
    rows = table_rows(result)
    result["table"] = rows
    result["anomalies"] = anomalies(result)
    with open(json_path, "w") as f:
        json.dump(json_clean(result), f, indent=1, default=str)
    print("\n".join(header_lines(result)))
    print()
    print(text_table(rows))
    if result["anomalies"]:
        print("\nWhat to look at:")
        for a in result["anomalies"]:
            print(f"  {a}")
    print(f"\nJSON written to {json_path}")
    if args.write_results:
        replace_section(args.results, markdown_section(result, rows))
        print(f"section '{SECTION_TITLE}' written to {args.results}")
    return 0


def resummarize(args: argparse.Namespace) -> int:
    """Figures again from a finished run's session files (after a change of
    the plugin's JSON or of this script's summaries): no session is run."""
    with open(args.resummarize) as f:
        result = json.load(f)
    for name, part in result["parts"].items():
        for rec in part.get("sessions", []):
            try:
                with open(rec["json"]) as f:
                    rec.update(digest(json.load(f)))
            except (OSError, ValueError) as exc:
                rec.setdefault("error", f"unreadable --virt-json: {exc}")
        if part.get("sessions") and (not part.get("skipped") or str(part["skipped"]).startswith(("crashed",
                                                                                                  "summary crashed"))):
            part.pop("skipped", None)
            part["summary"] = summarize(name, part)
    # Runs written before parts carried their own times: the parts ran one
    # after the other, so a part began with the previous one's end.
    # Parts merged from an earlier run chain from that run's own start.
    prev_up: dict[str, Any] = {"": result.get("uptime_before")}
    for part in result["parts"].values():
        src = part.get("merged_from") or ""
        if src not in prev_up:
            try:
                with open(src) as f:
                    prev_up[src] = json.load(f).get("uptime_before")
            except (OSError, ValueError):
                prev_up[src] = None
        part.setdefault("uptime_before", prev_up[src])
        prev_up[src] = part.get("uptime_after") or prev_up[src]
        logs = [(os.path.getmtime(r["log"]), r.get("seconds") or 0) for r in part.get("sessions", [])
                if r.get("log") and os.path.exists(r["log"])]
        if logs and not part.get("started"):
            part["started"] = time.strftime("%H:%M:%S", time.gmtime(min(m - sec for m, sec in logs)))
            part["ended"] = time.strftime("%H:%M:%S", time.gmtime(max(m for m, _ in logs)))
    result["resummarized"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    if result.get("seconds") is None:
        result["seconds"] = sum(p.get("seconds") or 0 for p in result["parts"].values())
    return finish(result, args, os.path.abspath(args.json or args.resummarize))

