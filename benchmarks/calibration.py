"""Verdict calibration: the figures issue 11's "Done when" asks for, in one
command.

    .venv/bin/python benchmarks/calibration.py [--part NAME ...] [--sessions N]
        [--quick] [--json PATH] [--out-dir DIR] [--write-results]
        [--merge SUMMARY.json] [--resummarize SUMMARY.json] [--note TEXT]

Parts (all by default; ``--part`` is repeatable):

``aa-call``
    independent A/A sessions (default 20) of a call-based, pure-Python,
    CPU-bound marked test (~15 ms per call): ``--virt-envs=baremetal,
    control=baremetal``, claim ``control ~= baremetal +- 2%``, a different
    ``--virt-seed`` each. Per session: ratio, CI, relative half-width,
    whether the CI covers 1.0, verdict, disturbed rounds. Target: the CI
    covers 1.0 in at least 18 of 20.
``aa-bench``
    the same with a test that times a sub-millisecond function through
    pytest-benchmark's ``benchmark`` fixture.
``aa-container``
    ``--virt-envs=baremetal,container,c2=container --virt-baseline=container``,
    claim ``c2 ~= container +- 2%``, the call-based test (default 20).
``aa-xdist``
    the aa-call test as two items under ``-n 2 --virt-cpus=<the last two
    CPUs>`` (one pytest-xdist worker per CPU, measuring side by side):
    every interval of every session counts (two per session).
``floor``
    A/A half-width at ``--virt-rounds=20`` (default 5 sessions per case):
    control vs baremetal, and container vs baremetal with c2 vs container
    (one session gives both). Target: median half-width at most 2%.
``scale``
    a suite of 5 sub-microsecond functions through the ``benchmark``
    fixture, ``benchmark.pedantic(..., rounds=100000)`` (10^5 samples per
    round and environment), ``--virt-envs=baremetal,container``: every
    claim must get a verdict (not an error or a skip) and the host pytest
    process's peak RSS must stay under 500 MB. The peak RSS is VmHWM of
    /proc/self/status read in the pytest process itself when
    ``pytest.main`` returns (a two-line wrapper runs pytest in-process);
    ``/usr/bin/time -v``'s maximum resident set size (the largest of the
    process tree, workers included) is recorded beside it where present.
``compare``
    several identical saved runs (default 6; same code, different seeds)
    of a two-test suite (call-based and ``benchmark`` fixture) over
    ``baremetal,control=baremetal,container``, then ``pytest-virtoverhead
    compare A.json B.json`` over every unordered pair (A the earlier run,
    B the later one: 15 pairs for 6 runs), through the CLI with
    ``--json``. Counts the rows the tool flags better or worse (target: at
    most 5%). Reads the command's JSON leniently and falls back on its text
    and exit code, since its format is still settling.

Everything runs in generated test files under a fresh directory (``--out-dir``,
default /tmp/virt-calibration-<date>), which keeps every session's
``--virt-json`` file for reproduction (each session's seed and command are in
the summary JSON). Sessions use the plugin's defaults (rounds, processes,
calls, CPU pinning) except where a part says otherwise; ``PYTEST_ADDOPTS`` is
not passed on (``--extra`` appends arguments to every session instead).

Output: a table on stdout, the summary JSON (``--json``, default
``<out-dir>/calibration.json``) and, with ``--write-results``, the section
"Verdict calibration" of benchmarks/RESULTS.md (created or replaced between
its markers; the rest of the file is left alone). The machine is named:
CPU model, cores, kernel, ``uptime`` before and after, the steal share of
CPU time from /proc/stat over the run, and whether the host is itself a
virtual machine.

Re-measuring one part: ``--part floor --merge EARLIER/calibration.json``
takes the other parts from an earlier run (each part keeps its own times,
load and steal). ``--resummarize SUMMARY.json`` runs nothing and recomputes
the figures from a finished run's session files (after a change of the
plugin's JSON); ``--note`` adds a sentence to the section (what else ran).

Quantiles are linear interpolation between order statistics (p10, median,
p90). The relative half-width of an interval is (hi - lo) / 2 / ratio, as
``samplestats.relative_half_width``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS_MD = os.path.join(HERE, "RESULTS.md")

PARTS = ["aa-call", "aa-bench", "aa-container", "aa-xdist", "floor", "scale", "compare"]
SESSIONS = {"aa-call": 20, "aa-bench": 20, "aa-container": 20, "aa-xdist": 20, "floor": 5, "scale": 1, "compare": 6}
QUICK_SESSIONS = {"aa-call": 2, "aa-bench": 2, "aa-container": 2, "aa-xdist": 2, "floor": 1, "scale": 1,
                  "compare": 2}
#: Rounds in --quick (smoke) runs: just enough for an interval.
QUICK_ROUNDS = 4
FLOOR_ROUNDS = 20
SCALE_SAMPLES = 100_000
SCALE_TESTS = 5
SCALE_CLAIMS = ["control ~= baremetal +- 5%", "container ~= baremetal +- 5%"]
RSS_LIMIT_MB = 500.0
COVERAGE_TARGET = (18, 20)  # k of n
FLAG_RATE_TARGET = 0.05
FLOOR_TARGET = 0.02

SECTION_TITLE = "Verdict calibration"
BEGIN = "<!-- verdict-calibration:begin (benchmarks/calibration.py --write-results writes this section) -->"
END = "<!-- verdict-calibration:end -->"

SEED_BASE = {"aa-call": 1000, "aa-bench": 2000, "aa-container": 3000, "aa-xdist": 3500, "floor-bm": 4000, "floor-ctr": 4500,
             "scale": 5000, "compare": 6000}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# the machine


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def os_release() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.system()


def host_virtualization() -> dict[str, Any]:
    """Whether this host is itself a guest: the plugin's own detection (so
    the figures and the plugin's table header agree), with systemd's opinion
    beside it where available."""
    try:
        sys.path.insert(0, ROOT)
        from pytest_virtoverhead import noise

        info = noise.host_virtualization()
        info["label"] = noise.host_label(info)
    except Exception as exc:  # noqa: BLE001 - the plugin itself may be mid-edit
        flags = next((ln for ln in _read("/proc/cpuinfo").splitlines() if ln.startswith("flags")), "")
        info = {"virtual": " hypervisor" in flags, "hypervisor": None,
                "evidence": ["CPU flag 'hypervisor'"] if " hypervisor" in flags else [],
                "label": "", "error": repr(exc)}
    if shutil.which("systemd-detect-virt"):
        p = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True)
        info["systemd_detect_virt"] = p.stdout.strip()
    return info


def proc_stat() -> dict[str, list[int]]:
    """/proc/stat CPU lines: {"cpu": [...], "cpu0": [...], ...}."""
    out = {}
    for line in _read("/proc/stat").splitlines():
        if not line.startswith("cpu"):
            break
        parts = line.split()
        out[parts[0]] = [int(x) for x in parts[1:]]
    return out


def steal_between(a: dict[str, list[int]], b: dict[str, list[int]]) -> dict[str, Any]:
    """Steal share of CPU time between two /proc/stat readings, all CPUs
    ("cpu") and each CPU: steal / (user+nice+system+idle+iowait+irq+softirq+steal)."""
    out: dict[str, Any] = {}
    for name in b:
        if name not in a:
            continue
        d = [y - x for x, y in zip(a[name][:8], b[name][:8])]
        total = sum(d)
        steal = d[7] if len(d) > 7 else 0
        busy = total - d[3] - d[4] if len(d) > 4 else 0
        out[name] = {"steal": steal / total if total > 0 else 0.0, "steal_ticks": steal, "ticks": total,
                     "busy": busy / total if total > 0 else 0.0}
    return out


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def top_processes(n: int = 6) -> list[str]:
    """The busiest processes right now (ps), to name what else loads the host."""
    try:
        p = subprocess.run(["ps", "-eo", "pcpu,pid,etime,comm", "--sort=-pcpu"], capture_output=True,
                           text=True, timeout=10)
        return [ln.strip() for ln in p.stdout.splitlines()[1:n + 1]]
    except (OSError, subprocess.SubprocessError):
        return []


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True,
                                  timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    dirty = [ln for ln in git("status", "--porcelain", "--", "pytest_virtoverhead").splitlines() if ln.strip()]
    return {"commit": git("rev-parse", "--short", "HEAD"), "subject": git("log", "-1", "--format=%s")[:120],
            "plugin_uncommitted": dirty}


def machine() -> dict[str, Any]:
    return {
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "os": os_release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "virtualization": host_virtualization(),
        "time_source": _read("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
    }


# --------------------------------------------------------------------------
# statistics of the figures (plain Python: nothing here should depend on the
# plugin's own statistics)


def quantile(xs: list[float], q: float) -> float:
    xs = sorted(x for x in xs if x is not None and math.isfinite(x))
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def spread(xs: list[float]) -> dict[str, Any]:
    vals = [x for x in xs if x is not None and math.isfinite(x)]
    return {"n": len(vals), "p10": quantile(vals, 0.1), "median": quantile(vals, 0.5), "p90": quantile(vals, 0.9),
            "min": min(vals) if vals else math.nan, "max": max(vals) if vals else math.nan}


def rel_half_width(ratio: float | None, ci: list[Any] | None) -> float:
    if ratio is None or not ci or ci[0] is None or ci[1] is None or not ratio:
        return math.nan
    return (ci[1] - ci[0]) / 2 / ratio


def covers(ci: list[Any] | None, value: float = 1.0) -> bool | None:
    if not ci or ci[0] is None or ci[1] is None:
        return None
    return ci[0] <= value <= ci[1]


# --------------------------------------------------------------------------
# generated tests

PYTEST_INI = """[pytest]
# Generated by benchmarks/calibration.py. Verdicts are findings: a failed claim
# does not fail the session (exit 0), so any other exit status is an error.
virt_gate = false
{extra}"""

CALL_TEST = '''"""Call-based A/A workload: pure Python, CPU-bound, ~{ms:.0f} ms per call
(LOOPS calibrated on the host when generated)."""
import pytest

LOOPS = {loops}


def work(n):
    total = 0
    for i in range(n):
        total += (i * i) % 7
    return total


@pytest.mark.virt()
def test_cpu_call():
    assert work(LOOPS) >= 0
'''

BENCH_TEST = '''"""A/A workload through pytest-benchmark's fixture: a sub-millisecond
function (~{us:.0f} us per call); pytest.ini caps its time per call
(--benchmark-max-time)."""
import pytest

LOOPS = {loops}


def work(n):
    total = 0
    for i in range(n):
        total += (i * i) % 7
    return total


@pytest.mark.virt()
def test_bench_small(benchmark):
    assert benchmark(work, LOOPS) >= 0
'''

SCALE_TEST = '''"""Scale: sub-microsecond functions through pytest-benchmark, {n} samples per
round and environment (benchmark.pedantic rounds={n}, iterations=1)."""
import pytest

N = {n}
DATA = list(range(16))
TABLE = {{"key": 1}}


def nothing():
    return None


def add(a=1, b=2):
    return a + b


@pytest.mark.virt()
def test_lambda_none(benchmark):
    benchmark.pedantic(lambda: None, rounds=N, iterations=1)


@pytest.mark.virt()
def test_function_call(benchmark):
    benchmark.pedantic(nothing, rounds=N, iterations=1)


@pytest.mark.virt()
def test_len_list(benchmark):
    benchmark.pedantic(len, args=(DATA,), rounds=N, iterations=1)


@pytest.mark.virt()
def test_dict_get(benchmark):
    benchmark.pedantic(TABLE.get, args=("key",), rounds=N, iterations=1)


@pytest.mark.virt()
def test_add_defaults(benchmark):
    benchmark.pedantic(add, rounds=N, iterations=1)
'''

#: Runs pytest in-process and reports the process's own peak RSS.
RSS_WRAPPER = '''"""python _rss_pytest.py OUT.json PYTEST-ARGS...: pytest.main(args), then
this process's peak resident set size (VmHWM, /proc/self/status) to OUT."""
import json, resource, sys
import pytest

out = sys.argv[1]
code = pytest.main(sys.argv[2:])
hwm = None
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
with open(out, "w") as f:
    json.dump({"vmhwm_kb": hwm, "ru_maxrss_self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               "ru_maxrss_children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}, f)
sys.exit(int(code))
'''


def _loop_seconds(loops: int, reps: int = 5) -> float:
    def work(n: int) -> int:
        total = 0
        for i in range(n):
            total += (i * i) % 7
        return total
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        work(loops)
        best = min(best, time.perf_counter() - t0)
    return best


def calibrate_loops(target: float) -> int:
    """Loops of the generated ``work`` for ``target`` seconds per call on
    this host (best of 5: robust to a busy host)."""
    loops = 20_000
    while True:
        dt = _loop_seconds(loops)
        if dt > 0.005:
            return max(100, int(loops * target / dt))
        loops *= 4


def write_suite(directory: str, files: dict[str, str], ini_extra: str = "") -> str:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "pytest.ini"), "w") as f:
        f.write(PYTEST_INI.format(extra=ini_extra))
    with open(os.path.join(directory, "_rss_pytest.py"), "w") as f:
        f.write(RSS_WRAPPER)
    for name, text in files.items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(text)
    return directory


# --------------------------------------------------------------------------
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
        data = None
        if os.path.exists(json_path):
            try:
                with open(json_path) as f:
                    data = json.load(f)
            except ValueError as exc:
                rec["error"] = f"unreadable --virt-json: {exc}"
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


# --------------------------------------------------------------------------
# parts


def claim_rows(sessions: list[dict[str, Any]], env: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for s in sessions:
        for c in s.get("claims", []):
            if env is None or c.get("env") == env:
                rows.append({**c, "session": s["label"], "seed": s["seed"], "json": s["json"],
                             "disturbed_rounds": s.get("disturbed_rounds")})
    return rows


def aa_summary(sessions: list[dict[str, Any]], env: str, baseline: str) -> dict[str, Any]:
    """Coverage and half-widths of the claims of ``env`` against ``baseline``."""
    rows = [c for c in claim_rows(sessions, env) if c.get("baseline") == baseline]
    decided = [c for c in rows if c.get("ci") and c["ci"][0] is not None and c["ci"][1] is not None]
    k = sum(1 for c in decided if c["covers_1"])
    verdicts: dict[str, int] = {}
    for c in rows:
        verdicts[c.get("verdict") or "none"] = verdicts.get(c.get("verdict") or "none", 0) + 1
    missing = [s["label"] for s in sessions
               if not any(c.get("env") == env and c.get("baseline") == baseline for c in s.get("claims", []))]
    return {
        "pair": f"{env} / {baseline}", "sessions": len(sessions), "claims": len(rows), "with_interval": len(decided),
        "covers_1": k, "coverage": k / len(decided) if decided else math.nan,
        "half_width": spread([c["half_width"] for c in decided]),
        "ratio": spread([c["ratio"] for c in decided]),
        "verdicts": verdicts,
        "excluding_1": [{"session": c["session"], "seed": c["seed"], "ratio": c["ratio"], "ci": c["ci"],
                         "verdict": c["verdict"], "json": c["json"], "disturbed_rounds": c["disturbed_rounds"]}
                        for c in decided if not c["covers_1"]],
        "without_interval": [{"session": c["session"], "seed": c["seed"], "verdict": c.get("verdict"),
                              "reason": c.get("reason"), "json": c["json"]} for c in rows if c not in decided],
        "sessions_without_claim": missing,
        "not_measured": [{"session": s["label"], "test": t.get("test"), "outcome": t.get("outcome"),
                          "why": t.get("error") or t.get("skipped") or t.get("unavailable")}
                         for s in sessions for t in s.get("tests", []) if t.get("outcome") != "measured"],
        "disturbed_rounds": sum(s.get("disturbed_rounds") or 0 for s in sessions),
        "retried_rounds": sum(s.get("retried_rounds") or 0 for s in sessions),
        "errors": [{"session": s["label"], "error": s["error"], "log": s["log"]} for s in sessions if s.get("error")],
        "methods": sorted({str(c.get("method")) for c in rows}),
        "processes": sorted({c.get("processes") for c in rows if c.get("processes") is not None}),
        "rounds": sorted({c.get("rounds") for c in rows if c.get("rounds") is not None}),
        "calls": sorted({c for s in sessions for t in s.get("tests", []) for c in t.get("calls_list", [])}),
        "session_seconds": spread([s["seconds"] for s in sessions]),
        "waited_for_cpu": [s["label"] for s in sessions if s.get("waited_for_cpu")],
        "load1_max": spread([s.get("load1_max") for s in sessions]),
    }


class Calibration:
    def __init__(self, args: argparse.Namespace, out_dir: str):
        self.args = args
        self.out_dir = out_dir
        self.runner = Runner(args, out_dir)
        self.suites = os.path.join(out_dir, "suites")
        self.loops: dict[str, int] = {}
        #: Every session's record as it completes (kept if a part's summary fails).
        self.done: list[dict[str, Any]] = []

    def n(self, part: str) -> int:
        if self.args.sessions:
            return self.args.sessions
        return (QUICK_SESSIONS if self.args.quick else SESSIONS)[part]

    def rounds_args(self, rounds: int | None = None) -> list[str]:
        if rounds is not None:
            return [f"--virt-rounds={rounds}"]
        return [f"--virt-rounds={QUICK_ROUNDS}"] if self.args.quick else []

    def seed(self, key: str, i: int) -> int:
        return self.args.seed_offset + SEED_BASE[key] + i

    # -- suites

    def call_suite(self) -> str:
        if "call" not in self.loops:
            self.loops["call"] = calibrate_loops(self.args.call_ms / 1000)
        path = os.path.join(self.suites, "call")
        if not os.path.exists(path):
            write_suite(path, {"test_call.py": CALL_TEST.format(loops=self.loops["call"], ms=self.args.call_ms)})
        return path

    def bench_suite(self) -> str:
        if "bench" not in self.loops:
            self.loops["bench"] = calibrate_loops(self.args.bench_us / 1e6)
        path = os.path.join(self.suites, "bench")
        if not os.path.exists(path):
            write_suite(path, {"test_bench.py": BENCH_TEST.format(loops=self.loops["bench"], us=self.args.bench_us)},
                        f"addopts = --benchmark-max-time={self.args.bench_max_time}\n")
        return path

    def compare_suite(self) -> str:
        self.call_suite()
        self.bench_suite()
        path = os.path.join(self.suites, "compare")
        if not os.path.exists(path):
            write_suite(path, {
                "test_call.py": CALL_TEST.format(loops=self.loops["call"], ms=self.args.call_ms),
                "test_bench.py": BENCH_TEST.format(loops=self.loops["bench"], us=self.args.bench_us)},
                f"addopts = --benchmark-max-time={self.args.bench_max_time}\n")
        return path

    def scale_suite(self, samples: int) -> str:
        path = os.path.join(self.suites, f"scale-{samples}")
        if not os.path.exists(path):
            write_suite(path, {"test_scale.py": SCALE_TEST.format(n=samples)})
        return path

    # -- running many sessions

    def sessions(self, part: str, key: str, count: int, suite: str, pytest_args: list[str],
                 **kw: Any) -> list[dict[str, Any]]:
        out = []
        for i in range(count):
            seed = self.seed(key, i)
            rec = self.runner.session(f"{key}-{i:02d}-seed{seed}", suite, pytest_args, seed, **kw)
            out.append(rec)
            self.done.append(rec)
            brief = "; ".join(
                f"{c['env']}/{c['baseline']} {c['ratio']:.4f} [{c['ci'][0]:.4f}, {c['ci'][1]:.4f}] {c['verdict']}"
                if c.get("ratio") is not None and c.get("ci") and None not in c["ci"]
                else f"{c['env']}/{c['baseline']} {c.get('verdict')}" for c in rec.get("claims", []))
            log(f"{part} {i + 1}/{count} seed {seed}: {rec['seconds']:.1f} s, exit {rec['exit']}"
                f"{', ' + rec['error'] if rec.get('error') else ''}; {brief}")
        return out

    # -- the parts (each runs its sessions; summarize() turns them into figures)

    def part_aa_call(self) -> dict[str, Any]:
        suite = self.call_suite()
        args = ["--virt-envs=baremetal,control=baremetal", "--virt-claim=control ~= baremetal +- 2%",
                *self.rounds_args()]
        ss = self.sessions("aa-call", "aa-call", self.n("aa-call"), suite, args)
        return {"workload": f"pure-Python loop, {self.loops['call']} iterations (~{self.args.call_ms:g} ms per call "
                            "at calibration), plain call timing", "args": args, "sessions": ss}

    def part_aa_bench(self) -> dict[str, Any]:
        suite = self.bench_suite()
        args = ["--virt-envs=baremetal,control=baremetal", "--virt-claim=control ~= baremetal +- 2%",
                *self.rounds_args()]
        ss = self.sessions("aa-bench", "aa-bench", self.n("aa-bench"), suite, args)
        return {"workload": f"benchmark(work, {self.loops['bench']}) (~{self.args.bench_us:g} us per call at "
                            f"calibration), --benchmark-max-time={self.args.bench_max_time}",
                "args": args, "sessions": ss}

    def part_aa_container(self) -> dict[str, Any]:
        suite = self.call_suite()
        args = ["--virt-envs=baremetal,container,c2=container", "--virt-baseline=container",
                "--virt-claim=c2 ~= container +- 2%", *self.rounds_args()]
        ss = self.sessions("aa-container", "aa-container", self.n("aa-container"), suite, args)
        return {"workload": f"the aa-call test ({self.loops['call']} iterations)", "args": args, "sessions": ss}

    def part_aa_xdist(self) -> dict[str, Any]:
        """The aa-call test twice (two items) under pytest-xdist, one worker
        per CPU: two sessions measure side by side on the machine's two
        CPUs, sharing its caches and memory bandwidth."""
        self.call_suite()
        path = os.path.join(self.suites, "xdist")
        if not os.path.exists(path):
            test = CALL_TEST.format(loops=self.loops["call"], ms=self.args.call_ms).replace(
                "@pytest.mark.virt()\n", '@pytest.mark.parametrize("copy", [1, 2])\n@pytest.mark.virt()\n').replace(
                "def test_cpu_call():", "def test_cpu_call(copy):")
            write_suite(path, {"test_call.py": test})
        cpus = sorted(os.sched_getaffinity(0))[-2:]
        args = ["-n", "2", f"--virt-cpus={cpus[0]}-{cpus[-1]}", "--virt-envs=baremetal,control=baremetal",
                "--virt-claim=control ~= baremetal +- 2%", *self.rounds_args()]
        ss = self.sessions("aa-xdist", "aa-xdist", self.n("aa-xdist"), path, args)
        return {"workload": f"the aa-call test as two items ({self.loops['call']} iterations), one per xdist worker",
                "args": args, "sessions": ss}

    def part_floor(self) -> dict[str, Any]:
        suite = self.call_suite()
        rounds = QUICK_ROUNDS if self.args.quick else FLOOR_ROUNDS
        bm_args = ["--virt-envs=baremetal,control=baremetal", "--virt-claim=control ~= baremetal +- 2%",
                   *self.rounds_args(rounds)]
        ct_args = ["--virt-envs=baremetal,container,c2=container", "--virt-claim=container ~= baremetal +- 2%",
                   "--virt-claim=c2 ~= container +- 2%", *self.rounds_args(rounds)]
        n = self.n("floor")
        bm = self.sessions("floor", "floor-bm", n, suite, bm_args)
        ct = self.sessions("floor", "floor-ctr", n, suite, ct_args)
        return {"workload": f"the aa-call test ({self.loops['call']} iterations)", "rounds": rounds,
                "args": {"baremetal": bm_args, "container": ct_args}, "sessions": bm + ct}

    def part_scale(self) -> dict[str, Any]:
        samples = self.args.scale_samples or SCALE_SAMPLES
        suite = self.scale_suite(samples)
        claims = self.args.scale_claim or SCALE_CLAIMS
        args = [f"--virt-envs={self.args.scale_envs}", *[f"--virt-claim={c}" for c in claims], *self.rounds_args()]
        ss = self.sessions("scale", "scale", self.n("scale"), suite, args, time_v=True)
        return {"workload": f"{SCALE_TESTS} sub-microsecond functions, benchmark.pedantic(rounds={samples}, "
                            "iterations=1)", "samples_per_call": samples, "claims_per_test": len(claims),
                "args": args, "sessions": ss}

    def part_compare(self) -> dict[str, Any]:
        suite = self.compare_suite()
        claims = ["--virt-claim=control ~= baremetal +- 2%", "--virt-claim=container ~= baremetal +- 5%"]
        args = [f"--virt-envs={self.args.compare_envs}", *claims, *self.rounds_args()]
        runs = self.sessions("compare", "compare", max(2, self.n("compare")), suite, args)
        good = [r for r in runs if not r.get("error")]
        pairs = []
        cli = os.path.join(os.path.dirname(self.args.python), "pytest-virtoverhead")
        base_cmd = [cli] if os.path.exists(cli) else [self.args.python, "-m", "pytest_virtoverhead.cli"]
        cmp_dir = os.path.join(self.out_dir, "compare")
        os.makedirs(cmp_dir, exist_ok=True)
        for i in range(len(good)):
            for j in range(i + 1, len(good)):
                a, b = good[i], good[j]
                out_json = os.path.join(cmp_dir, f"{i}-{j}.json")
                if os.path.exists(out_json):
                    os.remove(out_json)
                cmd = [*base_cmd, "compare", a["json"], b["json"], "--json", out_json]
                t0 = time.perf_counter()
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=self.runner.env)
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


def summarize(name: str, part: dict[str, Any]) -> dict[str, Any]:
    """The figures of one part from its session (and, for compare, pair)
    records."""
    ss = part.get("sessions", [])
    if name in ("aa-call", "aa-bench", "aa-xdist"):
        return {"control/baremetal": aa_summary(ss, "control", "baremetal")}
    if name == "aa-container":
        return {"c2/container": aa_summary(ss, "c2", "container")}
    if name == "floor":
        bm = [s for s in ss if s["label"].startswith("floor-bm")]
        ct = [s for s in ss if s["label"].startswith("floor-ctr")]
        return {"control/baremetal": aa_summary(bm, "control", "baremetal"),
                "container/baremetal": aa_summary(ct, "container", "baremetal"),
                "c2/container": aa_summary(ct, "c2", "container")}
    if name == "scale":
        per_test = part.get("claims_per_test") or sum(
            1 for a in part.get("args", []) if str(a).startswith("--virt-claim=")) or 1
        checks = []
        for s in ss:
            claims = s.get("claims", [])
            verdicts = [c.get("verdict") for c in claims]
            rss_kb = (s.get("rss") or {}).get("vmhwm_kb")
            nmin = min(s.get("min_samples_per_round", {}).values(), default=None)
            checks.append({
                "session": s["label"], "seed": s["seed"], "json": s["json"], "exit": s["exit"],
                "error": s.get("error"), "tests": len(s.get("tests", [])), "claims": len(claims),
                "verdicts": {str(v): verdicts.count(v) for v in set(verdicts)},
                "every_claim_decided_or_inconclusive": bool(claims)
                and len(claims) >= len(s.get("tests", [])) * per_test
                and all(v in ("pass", "fail", "inconclusive") for v in verdicts),
                "test_errors": [t for t in s.get("tests", []) if t.get("outcome") != "measured"],
                "min_samples_per_round": nmin,
                "peak_rss_mb": rss_kb / 1024 if rss_kb else None,
                "time_v_maxrss_mb": s["time_v_maxrss_kb"] / 1024 if s.get("time_v_maxrss_kb") else None,
                "seconds": s["seconds"], "load1_max": s.get("load1_max"),
                "waited_for_cpu": s.get("waited_for_cpu"),
            })
        return {"checks": checks,
                "rss_method": "VmHWM of /proc/self/status in the pytest process (pytest.main run in-process by "
                              "a wrapper), read when pytest.main returns; /usr/bin/time -v maximum RSS (largest "
                              "process of the tree) beside it"}
    if name == "compare":
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
    return {}


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
    doc = None
    if os.path.exists(json_path):
        try:
            with open(json_path) as f:
                doc = json.load(f)
        except ValueError as exc:
            out["problem"] = f"unreadable --json: {exc}"
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
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
                                                  os.path.relpath(os.path.abspath(__file__), ROOT),
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
            part = getattr(cal, "part_" + name.replace("-", "_"))()
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

if __name__ == "__main__":
    sys.exit(main())
