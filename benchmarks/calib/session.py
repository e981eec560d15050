"""A calibration run's state (suites, seeds, sessions) and the A/A summary the parts share."""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

from .base import QUICK_ROUNDS, QUICK_SESSIONS, SEED_BASE, SESSIONS, log, spread
from .runner import Runner
from .suites import BENCH_TEST, CALL_TEST, SCALE_TEST, calibrate_loops, write_suite


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
