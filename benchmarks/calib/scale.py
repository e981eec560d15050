"""The scale part: sub-microsecond functions at 10^5 samples per round; every claim decided, the peak RSS."""

from __future__ import annotations

from typing import Any

from .base import SCALE_CLAIMS, SCALE_SAMPLES, SCALE_TESTS
from .session import Calibration


def run_scale(cal: Calibration) -> dict[str, Any]:
    samples = cal.args.scale_samples or SCALE_SAMPLES
    suite = cal.scale_suite(samples)
    claims = cal.args.scale_claim or SCALE_CLAIMS
    args = [f"--virt-envs={cal.args.scale_envs}", *[f"--virt-claim={c}" for c in claims], *cal.rounds_args()]
    ss = cal.sessions("scale", "scale", cal.n("scale"), suite, args, time_v=True)
    return {"workload": f"{SCALE_TESTS} sub-microsecond functions, benchmark.pedantic(rounds={samples}, "
                        "iterations=1)", "samples_per_call": samples, "claims_per_test": len(claims),
            "args": args, "sessions": ss}


def summarize(part: dict[str, Any]) -> dict[str, Any]:
    ss = part.get("sessions", [])
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
