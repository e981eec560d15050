"""The floor part: the A/A half-width at 20 rounds, host and container."""

from __future__ import annotations

from typing import Any

from .base import FLOOR_ROUNDS, QUICK_ROUNDS
from .session import Calibration, aa_summary


def run_floor(cal: Calibration) -> dict[str, Any]:
    suite = cal.call_suite()
    rounds = QUICK_ROUNDS if cal.args.quick else FLOOR_ROUNDS
    bm_args = ["--virt-envs=baremetal,control=baremetal", "--virt-claim=control ~= baremetal +- 2%",
               *cal.rounds_args(rounds)]
    ct_args = ["--virt-envs=baremetal,container,c2=container", "--virt-claim=container ~= baremetal +- 2%",
               "--virt-claim=c2 ~= container +- 2%", *cal.rounds_args(rounds)]
    n = cal.n("floor")
    bm = cal.sessions("floor", "floor-bm", n, suite, bm_args)
    ct = cal.sessions("floor", "floor-ctr", n, suite, ct_args)
    return {"workload": f"the aa-call test ({cal.loops['call']} iterations)", "rounds": rounds,
            "args": {"baremetal": bm_args, "container": ct_args}, "sessions": bm + ct}


def summarize(part: dict[str, Any]) -> dict[str, Any]:
    ss = part.get("sessions", [])
    bm = [s for s in ss if s["label"].startswith("floor-bm")]
    ct = [s for s in ss if s["label"].startswith("floor-ctr")]
    return {"control/baremetal": aa_summary(bm, "control", "baremetal"),
            "container/baremetal": aa_summary(ct, "container", "baremetal"),
            "c2/container": aa_summary(ct, "c2", "container")}
