"""How long a VM environment takes to boot, and what a job costs once warm.

    python benchmarks/vm_boot.py [--boots 5] [--calls 200] [--cpus 1] [OPTION=VALUE ...]

OPTION=VALUE are vm options (accel=tcg, machine=q35, cache9p=none, elf=0,
firmware=bios, ...). Prints one table: boot to worker ready (libvirt domain
creation, kernel, initramfs, 9p mount, interpreter start) as measured by the
backend and as seen by Environment.start(), and the round trip of an empty
job over the ttyS1 serial channel, with the machine, QEMU and acceleration
named. Each boot is a fresh transient domain, destroyed afterwards.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pytest_virtoverhead.envs import EnvSpec, Environment, RunContext, backend_class  # noqa: E402


def noop():
    return None


def guest_kernel():
    return platform.release()


def _row(name: str, values: list[float], unit: str = "s", scale: float = 1.0) -> str:
    values = [v * scale for v in values]
    return (f"{name:<34} {statistics.median(values):>9.3f} {min(values):>9.3f} {max(values):>9.3f} "
            f"{len(values):>4}  {unit}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boots", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--cpus", default="1", help="host CPUs for the guest (comma list), or 'none'")
    parser.add_argument("--memory", type=int, default=1024)
    parser.add_argument("--cache-dir", default=os.path.join(os.path.expanduser("~/.cache"), "pytest-virtoverhead"))
    parser.add_argument("options", nargs="*", help="vm options as KEY=VALUE")
    args = parser.parse_args()
    options = dict(o.split("=", 1) for o in args.options if o)
    options.setdefault("accel", "tcg")
    # Jobs name functions by module: run them from this file imported as a
    # module, not from __main__ (which the worker cannot import).
    import vm_boot as jobs  # noqa: PLC0415
    cpus = None if args.cpus == "none" else tuple(int(c) for c in args.cpus.split(","))
    boot, start, dispatch = [], [], []
    meta = {}
    for i in range(args.boots):
        ctx = RunContext(session_id=f"bench{uuid.uuid4().hex[:6]}", rootdir=os.getcwd(), cpus=cpus,
                         memory_mb=args.memory, cache_dir=args.cache_dir)
        env = Environment(backend_class("vm")(EnvSpec("vm", "vm", options), ctx))
        t0 = time.monotonic()
        try:
            env.start()
            start.append(time.monotonic() - t0)
            meta = env.metadata
            boot.append(meta["boot_seconds"])
            if i == 0:
                for _ in range(10):
                    env.run(jobs.noop)  # warm up (imports, caches)
                for _ in range(args.calls):
                    t = time.perf_counter()
                    env.run(jobs.noop)
                    dispatch.append(time.perf_counter() - t)
                kernel = env.run(jobs.guest_kernel)
        finally:
            env.stop()
        print(f"boot {i + 1}/{args.boots}: ready {boot[-1]:.2f} s (start {start[-1]:.2f} s)", file=sys.stderr)
    print()
    print(f"host       {platform.node()} kernel {platform.release()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"guest      kernel {kernel} ({meta.get('boot_image')}), machine {meta.get('machine')}, "
          f"accel {meta.get('accel').upper()} ({meta.get('accel_reason')})")
    print(f"           QEMU {meta.get('qemu_version')}, libvirt {meta.get('libvirt_version')}, "
          f"{meta.get('vcpus')} vCPU pinned to {meta.get('cpus_pinned')}, {meta.get('memory_mb')} MiB, "
          f"clocksource {meta.get('clocksource')}, 9p {meta.get('share')}")
    print(f"options    {options}")
    print()
    print(f"{'':<34} {'median':>9} {'min':>9} {'max':>9} {'n':>4}")
    print(_row("boot to worker ready (backend)", boot))
    print(_row("Environment.start() (+hello)", start))
    print(_row("warm dispatch, empty job", dispatch, "ms", 1000.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
