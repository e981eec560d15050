"""One pytest session of a part, and the figures read from its --virt-json."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import time
from typing import Any

from .base import covers, rel_half_width
from .machine import proc_stat, steal_between


def read_json_file(path: str, what: str) -> tuple[Any, str | None]:
    """The JSON document at ``path`` and a problem: ``(None, None)`` when
    there is no such file, ``(None, "unreadable WHAT: ...")`` when it does not
    parse, else ``(document, None)``."""
    if not os.path.exists(path):
        return None, None
    try:
        with open(path) as f:
            return json.load(f), None
    except ValueError as exc:
        return None, f"unreadable {what}: {exc}"


# one pytest session


class Runner:
    def __init__(self, args: argparse.Namespace, out_dir: str):
        self.args = args
        self.out_dir = out_dir
        self.python = args.python
        self.sessions_dir = os.path.join(out_dir, "sessions")
        os.makedirs(self.sessions_dir, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "GITHUB_STEP_SUMMARY")}
        self.time_v = os.path.exists("/usr/bin/time")

    def session(self, label: str, suite: str, pytest_args: list[str], seed: int, *,
                time_v: bool = False) -> dict[str, Any]:
        """Run one ``pytest --virt-compare`` session in ``suite``; return its
        record (command, wall time, exit status, peak RSS, the --virt-json
        document's path and the parts of it the figures need)."""
        json_path = os.path.join(self.sessions_dir, f"{label}.json")
        rss_path = os.path.join(self.sessions_dir, f"{label}.rss.json")
        log_path = os.path.join(self.sessions_dir, f"{label}.log")
        for p in (json_path, rss_path):
            if os.path.exists(p):
                os.remove(p)
        args = ["-p", "no:cacheprovider", "-q", "--virt-compare", f"--virt-seed={seed}",
                f"--virt-json={json_path}", *pytest_args, *self.args.extra]
        cmd = [self.python, "_rss_pytest.py", rss_path, *args]
        if time_v and self.time_v:
            cmd = ["/usr/bin/time", "-v", *cmd]
        shown = f"cd {shlex.quote(suite)} && {shlex.quote(self.python)} -m pytest " + " ".join(
            shlex.quote(a) for a in args)
        st0 = proc_stat()
        t0 = time.perf_counter()
        rec: dict[str, Any] = {"label": label, "seed": seed, "command": shown, "json": json_path, "log": log_path}
        with open(log_path, "w") as logf:
            proc = subprocess.Popen(cmd, cwd=suite, stdout=logf, stderr=subprocess.STDOUT, env=self.env,
                                    start_new_session=True)
            try:
                rc = proc.wait(timeout=self.args.session_timeout)
            except subprocess.TimeoutExpired:
                # Our own child's process group (it started a new session): its
                # workers, containers' attach processes, /usr/bin/time.
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    rc = proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    rc = proc.wait()
                rec["timeout"] = self.args.session_timeout
        rec["seconds"] = time.perf_counter() - t0
        rec["steal"] = steal_between(st0, proc_stat()).get("cpu", {}).get("steal")
        rec["exit"] = rc
        with open(log_path) as f:
            text = f.read()
        # The plugin waits while another pytest-virtoverhead session holds the
        # CPU: a sign that someone else measures on this machine right now.
        m = re.search(r"virtoverhead: waiting for CPU[^\n]*", text)
        rec["waited_for_cpu"] = m.group(0)[:200] if m else None
        if time_v and self.time_v:
            m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
            rec["time_v_maxrss_kb"] = int(m.group(1)) if m else None
        if os.path.exists(rss_path):
            with open(rss_path) as f:
                rec["rss"] = json.load(f)
        data, problem = read_json_file(json_path, "--virt-json")
        if problem:
            rec["error"] = problem
        if data is None:
            rec.setdefault("error", f"no --virt-json written (exit {rc})")
        elif rc != 0:
            rec["error"] = f"pytest exit status {rc}"
        if rec.get("error"):
            rec["output_tail"] = text[-3000:]
        if data is not None:
            rec.update(digest(data))
        return rec


def digest(data: dict[str, Any]) -> dict[str, Any]:
    """What the figures need from a --virt-json (version 2) document."""
    claims = []
    for c in data.get("claims", []):
        ratio, ci = c.get("ratio"), c.get("ci")
        claims.append({
            "test": c.get("test"), "claim": c.get("claim"), "env": c.get("env"), "baseline": c.get("baseline"),
            "ratio": ratio, "ci": ci, "half_width": rel_half_width(ratio, ci), "covers_1": covers(ci),
            "verdict": c.get("verdict"), "method": c.get("method"), "processes": c.get("processes"),
            "rounds": c.get("rounds"), "resolution": c.get("resolution"), "p_value": c.get("p_value"),
            **({"reason": c["reason"].strip().splitlines()[0]} if c.get("reason") else {}),
        })
    def first_line(x: Any) -> Any:
        return x.strip().splitlines()[0] if isinstance(x, str) and x.strip() else x

    tests = []
    for t in data.get("tests", []):
        entry = {k: t.get(k) for k in ("test", "outcome", "rounds", "calls", "retries", "disturbed", "stopped_by")}
        # calls per round: a number, or (since rounds are blocks) {env: calls}.
        calls = t.get("calls")
        entry["calls_list"] = sorted(int(v) for v in (calls.values() if isinstance(calls, dict) else [calls])
                                     if isinstance(v, (int, float)))
        for k in ("error", "skipped", "xfailed"):
            if t.get(k):
                entry[k] = first_line(t[k])
        if t.get("unavailable"):
            entry["unavailable"] = {env: first_line(why) for env, why in t["unavailable"].items()}
        tests.append(entry)
    samples_per_round = {}
    medians = {}
    for r in data.get("results", []):
        ns = [x.get("n") for x in r.get("rounds") or [] if x.get("used", True) and x.get("n") is not None]
        if ns:
            samples_per_round[f"{r['test']}[{r['env']}]"] = min(ns)
        if r.get("median") is not None:
            medians[f"{r['test']}[{r['env']}]"] = r["median"]
    envs = data.get("environments") or {}
    loads = [x.get("noise", {}).get("load1") for r in data.get("results", []) for x in r.get("rounds") or []]
    loads = [x for x in loads if isinstance(x, (int, float))]
    return {
        "load1_max": max(loads) if loads else None,
        "claims": claims, "tests": tests, "medians": medians, "min_samples_per_round": samples_per_round,
        "disturbed_rounds": (data.get("noise") or {}).get("disturbed_rounds"),
        "retried_rounds": (data.get("noise") or {}).get("retried_rounds"),
        "host_label": (data.get("host") or {}).get("label"),
        "cpusets": {name: m.get("cpuset") for name, m in envs.items() if isinstance(m, dict)},
        "statistics": data.get("statistics"), "version": data.get("version"), "rounds_setting": data.get("rounds"),
    }
