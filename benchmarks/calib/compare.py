"""The compare part: identical saved runs compared pairwise by `pytest-virtoverhead compare`,
and a lenient reader of that command's output."""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import time
from typing import Any

from .base import log, spread
from .runner import read_json_file
from .session import Calibration


def run_compare(cal: Calibration) -> dict[str, Any]:
    suite = cal.compare_suite()
    claims = ["--virt-claim=control ~= baremetal +- 2%", "--virt-claim=container ~= baremetal +- 5%"]
    args = [f"--virt-envs={cal.args.compare_envs}", *claims, *cal.rounds_args()]
    runs = cal.sessions("compare", "compare", max(2, cal.n("compare")), suite, args)
    good = [r for r in runs if not r.get("error")]
    pairs = []
    cli = os.path.join(os.path.dirname(cal.args.python), "pytest-virtoverhead")
    base_cmd = [cli] if os.path.exists(cli) else [cal.args.python, "-m", "pytest_virtoverhead.offline.cli"]
    cmp_dir = os.path.join(cal.out_dir, "compare")
    os.makedirs(cmp_dir, exist_ok=True)
    for i in range(len(good)):
        for j in range(i + 1, len(good)):
            a, b = good[i], good[j]
            out_json = os.path.join(cmp_dir, f"{i}-{j}.json")
            if os.path.exists(out_json):
                os.remove(out_json)
            cmd = [*base_cmd, "compare", a["json"], b["json"], "--json", out_json]
            t0 = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=cal.runner.env)
            pairs.append({"a": a["label"], "b": b["label"], "command": " ".join(shlex.quote(c) for c in cmd),
                          "exit": p.returncode, "seconds": time.perf_counter() - t0, "json": out_json,
                          "stdout_tail": p.stdout[-400:], "stderr_tail": p.stderr[-400:],
                          **read_comparison(out_json, p.stdout, p.stderr)})
            log(f"compare {a['label']} -> {b['label']}: exit {p.returncode}, {pairs[-1]['rows']} rows, "
                f"{pairs[-1]['better']} better, {pairs[-1]['worse']} worse"
                + (f"; {pairs[-1]['problem']}" if pairs[-1].get("problem") else ""))
    return {"workload": "test_call.py + test_bench.py (the aa-call and aa-bench tests)", "args": args,
            "pairing": "unordered pairs i < j of the runs in time order (A = the earlier run, B = the later)",
            "sessions": runs, "pairs": pairs}


def summarize(part: dict[str, Any]) -> dict[str, Any]:
    ss = part.get("sessions", [])
    pairs = part.get("pairs", [])
    rows = sum(p["rows"] for p in pairs)
    flagged = sum(p["better"] + p["worse"] for p in pairs)
    return {"runs": len(ss), "runs_ok": len([r for r in ss if not r.get("error")]), "pairs": len(pairs),
            "rows": rows, "better": sum(p["better"] for p in pairs), "worse": sum(p["worse"] for p in pairs),
            "flagged": flagged, "flag_rate": flagged / rows if rows else math.nan,
            "ci_excludes_1": sum(p.get("ci_excludes_1", 0) for p in pairs),
            "claim_changes": sum(p.get("claim_changes", 0) for p in pairs),
            "exit_codes": {str(c): sum(1 for p in pairs if p["exit"] == c)
                           for c in sorted({p["exit"] for p in pairs})},
            "problems": [f"{p['a']} -> {p['b']}: {p['problem']}" for p in pairs if p.get("problem")],
            "flagged_rows": [dict(r, a=p["a"], b=p["b"]) for p in pairs for r in p["flagged_rows"]],
            "sessions_waited_for_cpu": [s["label"] for s in ss if s.get("waited_for_cpu")],
            "load1_max": spread([s.get("load1_max") for s in ss])}

# --------------------------------------------------------------------------
# reading `pytest-virtoverhead compare` (its format is being reworked: read
# its --json leniently, fall back on its text)


def _row_list(doc: Any) -> list[dict[str, Any]] | None:
    if isinstance(doc, dict):
        for key in ("rows", "overheads", "changes", "results"):
            if isinstance(doc.get(key), list) and all(isinstance(r, dict) for r in doc[key]):
                return doc[key]
    return None


def _flag_of(row: dict[str, Any]) -> str | None:
    """"better", "worse" or None for one row of the compare JSON."""
    for key in ("flag", "status", "direction", "label", "change_verdict"):
        v = row.get(key)
        if isinstance(v, str):
            low = v.lower()
            if "worse" in low or "regress" in low:
                return "worse"
            if "better" in low or "improv" in low:
                return "better"
    if row.get("regression") or row.get("worse"):
        return "worse"
    if row.get("better") or row.get("improvement"):
        return "better"
    verdict = str(row.get("verdict") or "").lower()
    if verdict in ("fail", "worse", "regression"):
        return "worse"
    if verdict in ("better", "improved"):
        return "better"
    if "better" not in row and "improvement" not in row:
        # Today's JSON has no "better" key: the text says "ok (better)" when
        # the whole interval of B/A lies below 1.
        ci = row.get("ci")
        if isinstance(ci, list) and len(ci) == 2 and ci[1] is not None and ci[1] < 1:
            return "better"
    return None


def read_comparison(json_path: str, stdout: str, stderr: str) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": 0, "better": 0, "worse": 0, "flagged_rows": [], "ci_excludes_1": 0,
                           "claim_changes": 0, "source": None}
    doc, problem = read_json_file(json_path, "--json")
    if problem:
        out["problem"] = problem
    rows = _row_list(doc)
    if rows is not None:
        out["source"] = "json"
        out["rows"] = len(rows)
        for r in rows:
            flag = _flag_of(r)
            ci = r.get("ci")
            if isinstance(ci, list) and len(ci) == 2 and None not in ci and not (ci[0] <= 1 <= ci[1]):
                out["ci_excludes_1"] += 1
            if flag:
                out[flag] += 1
                out["flagged_rows"].append({"test": r.get("test"), "env": r.get("env"), "flag": flag,
                                            "change": r.get("change"), "ci": ci, "verdict": r.get("verdict")})
        claims = doc.get("claims") if isinstance(doc, dict) else None
        out["claim_changes"] = len(claims) if isinstance(claims, list) else 0
        return out
    # The text: the table's rows sit between the dashed line and a blank line.
    lines = stdout.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.startswith("---")) + 1
    except StopIteration:
        out["problem"] = (stderr.strip() or stdout.strip() or "no output")[-300:]
        return out
    out["source"] = "text"
    for ln in lines[start:]:
        if not ln.strip():
            break
        if ln.startswith(" ") and not re.search(r"\d", ln):
            continue
        out["rows"] += 1
        low = ln.lower()
        flag = "worse" if ("worse" in low or "regress" in low) else "better" if "better" in low else None
        if flag:
            out[flag] += 1
            out["flagged_rows"].append({"line": ln.strip(), "flag": flag})
    return out


