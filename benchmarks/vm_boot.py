"""How long a VM environment takes to start, where the time goes, and what a
job costs once warm.

    python benchmarks/vm_boot.py [--boots 5] [--warmup 0] [--calls 200] [--cpus 1] [OPTION=VALUE ...]
        [--variant "OPTION=VALUE ..."]... [--guest-python]

OPTION=VALUE are vm options (accel=tcg, snapshot=0, machine=q35,
cache9p=none, elf=0, firmware=bios, memory is --memory, ...). With
``--variant`` the boots alternate between the base options and each variant
(ABAB...), so a variant's effect is measured under the same load. Prints,
per variant: start to worker ready as seen by Environment.start() and by the
backend, the phases of a start (from the backend's ``boot_phases``: domain
creation, state restore or kernel boot, 9p mount, interpreter), how many
starts restored the saved state, the first job after each start (its
first import of a module outside the standard library), and the round trip
of an empty job over the ttyS1 channel; with ``--guest-python``, how long
interpreters take to start inside the guest (what every worker process
there pays). The machine, its load and steal, QEMU and the acceleration are
named. Each start is a fresh transient domain, destroyed afterwards.
``--warmup N`` starts each variant N times first without counting them (a
new configuration's first start boots and saves the state).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [p for p in (os.path.dirname(HERE), HERE) if p not in sys.path]

import common  # noqa: E402  (as a module, so the worker can import its jobs)

from pytest_virtoverhead.envs import Environment, EnvSpec, RunContext, backend_class  # noqa: E402


def noop():
    return None


def guest_kernel():
    return platform.release()


#: Interpreter starts timed inside the guest (--guest-python).
GUEST_PYTHON = [
    ("python -S -c pass (no site)", ["-S", "-c", "pass"]),
    ("python -I -c pass (site, no user site, no env)", ["-I", "-c", "pass"]),
    ("python -c pass (as the worker starts)", ["-c", "pass"]),
    ("python -c 'import pytest_virtoverhead.guest.worker'", ["-c", "import pytest_virtoverhead.guest.worker"]),
    ("python -c 'import pytest'", ["-c", "import pytest"]),
]


def guest_python_starts(executable: str, reps: int = 3) -> dict[str, list[float]]:
    """Run inside the guest: wall time of interpreter starts."""
    import subprocess

    out: dict[str, list[float]] = {}
    for _ in range(reps):
        for label, args in GUEST_PYTHON:
            t0 = time.perf_counter()
            subprocess.run([executable, *args], check=True)
            out.setdefault(label, []).append(time.perf_counter() - t0)
    return out


def _row(name: str, values: list[float], unit: str = "s", scale: float = 1.0) -> str:
    values = [v * scale for v in values]
    return (f"{name:<58} {statistics.median(values):>9.3f} {min(values):>9.3f} {max(values):>9.3f} "
            f"{len(values):>4}  {unit}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boots", type=int, default=5, help="starts per variant")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=0,
                        help="uncounted starts per variant first (a new configuration's first start boots and "
                             "saves the state; later ones restore it)")
    parser.add_argument("--cpus", default="1", help="host CPUs for the guest (comma list), or 'none'")
    parser.add_argument("--memory", type=int, default=1024)
    parser.add_argument("--cache-dir", default=os.path.join(os.path.expanduser("~/.cache"), "pytest-virtoverhead"))
    parser.add_argument("--variant", action="append", default=[],
                        help="another set of vm options (space-separated KEY=VALUE; memory=MiB allowed), "
                             "measured alternately with the base")
    parser.add_argument("--guest-python", action="store_true", help="time interpreter starts inside the guest")
    parser.add_argument("options", nargs="*", help="vm options as KEY=VALUE")
    args = parser.parse_args()
    base = dict(o.split("=", 1) for o in args.options if o)
    base.setdefault("accel", "tcg")
    variants = [("base", base)]
    for v in args.variant:
        variants.append((v, {**base, **dict(o.split("=", 1) for o in v.split() if o)}))
    # Jobs name functions by module: run them from this file imported as a
    # module, not from __main__ (which the worker cannot import).
    import vm_boot as jobs
    cpus = None if args.cpus == "none" else tuple(int(c) for c in args.cpus.split(","))
    res = {name: {"start": [], "returned": [], "boot": [], "first": [], "metas": [], "dispatch": [], "guest_python": {}}
           for name, _ in variants}
    kernel = "?"
    load0, ticks0 = os.getloadavg(), common.cpu_ticks()
    for i in range(-args.warmup, args.boots):
        for name, opts in variants:
            opts = dict(opts)
            memory = int(opts.pop("memory", args.memory))
            ctx = RunContext(session_id=f"bench{uuid.uuid4().hex[:6]}", rootdir=os.getcwd(), cpus=cpus,
                             memory_mb=memory, cache_dir=args.cache_dir)
            env = Environment(backend_class("vm")(EnvSpec("vm", "vm", opts), ctx))
            r = res[name]
            t0 = time.monotonic()
            if i < 0:  # warm-up: not counted
                try:
                    env.start()
                    meta = env.metadata
                finally:
                    env.stop()
                print(f"{name}: warm-up start: ready {meta['boot_seconds']:.2f} s ({meta.get('start_mode')})",
                      file=sys.stderr, flush=True)
                continue
            try:
                env.start()
                r["returned"].append(time.monotonic() - t0)
                r["start"].append(env.start_time)
                meta = env.metadata
                r["boot"].append(meta["boot_seconds"])
                r["metas"].append(meta)
                t = time.perf_counter()
                env.run(common.noop)  # the first job: its first import outside the standard library
                r["first"].append(time.perf_counter() - t)
                if i == args.boots - 1:
                    for _ in range(10):
                        env.run(common.noop)  # warm up (imports, caches)
                    for _ in range(args.calls):
                        t = time.perf_counter()
                        env.run(common.noop)
                        r["dispatch"].append(time.perf_counter() - t)
                    kernel = env.run(jobs.guest_kernel)
                    if args.guest_python:
                        r["guest_python"] = env.run(jobs.guest_python_starts, ctx.python)
            finally:
                env.stop()
            print(f"{name}: start {i + 1}/{args.boots}: ready {r['boot'][-1]:.2f} s (start {r['start'][-1]:.2f} s, "
                  f"{r['metas'][-1].get('start_mode')}) {r['metas'][-1].get('boot_phases')}", file=sys.stderr, flush=True)
    ticks1 = common.cpu_ticks()
    total, steal = ticks1[0] - ticks0[0], ticks1[1] - ticks0[1]
    meta = res["base"]["metas"][-1]
    print()
    print(f"host       {common.cpu_model()}, {os.cpu_count()} CPUs, kernel {platform.release()}; load "
          f"{load0[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end; steal {100.0 * steal / max(total, 1):.1f}% "
          "of CPU time")
    print(f"guest      kernel {kernel} ({meta.get('boot_image')}), machine {meta.get('machine')}, "
          f"accel {str(meta.get('accel')).upper()} ({meta.get('accel_reason')})")
    print(f"           QEMU {meta.get('qemu_version')}, libvirt {meta.get('libvirt_version')}, "
          f"{meta.get('vcpus')} vCPU pinned to {meta.get('cpus_pinned')}, clocksource {meta.get('clocksource')}, "
          f"9p {meta.get('share')}")
    for name, opts in variants:
        r = res[name]
        modes = [m.get("start_mode") for m in r["metas"]]
        print()
        print(f"[{name}] options {opts}; starts: {', '.join(map(str, modes))}")
        print(f"{'':<10} interpreter: {r['metas'][-1].get('interpreter_start')}")
        print(f"{'':<58} {'median':>9} {'min':>9} {'max':>9} {'n':>4}")
        print(_row("Environment.start() (+hello): start_time", r["start"]))
        print(_row("start() returned (+footprint's idle reading)", r["returned"]))
        print(_row("boot to worker ready (backend)", r["boot"]))
        for what, values in common.vm_phase_values(r["metas"]):
            print(_row("  " + what, values))
        print(_row("first job (benchmarks/common.py's noop)", r["first"], "ms", 1000.0))
        if r["dispatch"]:
            print(_row("warm dispatch, empty job", r["dispatch"], "ms", 1000.0))
        for label, values in r["guest_python"].items():
            print(_row("in the guest: " + label, values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
