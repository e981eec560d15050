"""The A/A parts: aa-call (a call-based test), aa-bench (through pytest-benchmark's fixture),
aa-container (a container against a second one) and aa-xdist (two xdist workers side by side)."""

from __future__ import annotations

import os
from typing import Any

from .session import Calibration, aa_summary
from .suites import CALL_TEST, write_suite


def run_aa_call(cal: Calibration) -> dict[str, Any]:
    suite = cal.call_suite()
    args = ["--virt-envs=baremetal,control=baremetal", "--virt-claim=control ~= baremetal +- 2%",
            *cal.rounds_args()]
    ss = cal.sessions("aa-call", "aa-call", cal.n("aa-call"), suite, args)
    return {"workload": f"pure-Python loop, {cal.loops['call']} iterations (~{cal.args.call_ms:g} ms per call "
                        "at calibration), plain call timing", "args": args, "sessions": ss}


def run_aa_bench(cal: Calibration) -> dict[str, Any]:
    suite = cal.bench_suite()
    args = ["--virt-envs=baremetal,control=baremetal", "--virt-claim=control ~= baremetal +- 2%",
            *cal.rounds_args()]
    ss = cal.sessions("aa-bench", "aa-bench", cal.n("aa-bench"), suite, args)
    return {"workload": f"benchmark(work, {cal.loops['bench']}) (~{cal.args.bench_us:g} us per call at "
                        f"calibration), --benchmark-max-time={cal.args.bench_max_time}",
            "args": args, "sessions": ss}


def run_aa_container(cal: Calibration) -> dict[str, Any]:
    suite = cal.call_suite()
    args = ["--virt-envs=baremetal,container,c2=container", "--virt-baseline=container",
            "--virt-claim=c2 ~= container +- 2%", *cal.rounds_args()]
    ss = cal.sessions("aa-container", "aa-container", cal.n("aa-container"), suite, args)
    return {"workload": f"the aa-call test ({cal.loops['call']} iterations)", "args": args, "sessions": ss}


def run_aa_xdist(cal: Calibration) -> dict[str, Any]:
    """The aa-call test twice (two items) under pytest-xdist, one worker
    per CPU: two sessions measure side by side on the machine's two
    CPUs, sharing its caches and memory bandwidth."""
    cal.call_suite()
    path = os.path.join(cal.suites, "xdist")
    if not os.path.exists(path):
        test = CALL_TEST.format(loops=cal.loops["call"], ms=cal.args.call_ms).replace(
            "@pytest.mark.virt()\n", '@pytest.mark.parametrize("copy", [1, 2])\n@pytest.mark.virt()\n').replace(
            "def test_cpu_call():", "def test_cpu_call(copy):")
        write_suite(path, {"test_call.py": test})
    cpus = sorted(os.sched_getaffinity(0))[-2:]
    args = ["-n", "2", f"--virt-cpus={cpus[0]}-{cpus[-1]}", "--virt-envs=baremetal,control=baremetal",
            "--virt-claim=control ~= baremetal +- 2%", *cal.rounds_args()]
    ss = cal.sessions("aa-xdist", "aa-xdist", cal.n("aa-xdist"), path, args)
    return {"workload": f"the aa-call test as two items ({cal.loops['call']} iterations), one per xdist worker",
            "args": args, "sessions": ss}


def summarize_control(part: dict[str, Any]) -> dict[str, Any]:
    """aa-call, aa-bench and aa-xdist: control against baremetal."""
    return {"control/baremetal": aa_summary(part.get("sessions", []), "control", "baremetal")}


def summarize_container(part: dict[str, Any]) -> dict[str, Any]:
    return {"c2/container": aa_summary(part.get("sessions", []), "c2", "container")}
