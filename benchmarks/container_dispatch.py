"""How long a container environment takes to start, and what one call costs.

    .venv/bin/python benchmarks/container_dispatch.py [--starts 10] [--calls 2000]
        [--runtime runc] [--scratch layer|volume] [--image IMAGE]

Prints, for baremetal and container: start to worker ready (Environment.start:
create, attach, start, worker imports, "ready" frame, "hello" reply) and the
round trip of a warm no-op call (``env.run(os.getpid)``), as median / p10 /
p90 over the runs. Timing is on the host, wall clock. Needs a Docker daemon.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import RunContext, measure_env, quantiles  # benchmarks/common.py


def measure(kind: str, options: dict[str, str], starts: int, calls: int, ctx: RunContext) -> dict[str, list[float]]:
    """Start to ready and first call per start; warm calls in the last one."""
    return measure_env(kind, options, starts, calls, ctx, job=os.getpid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--runtime")
    parser.add_argument("--scratch")
    parser.add_argument("--image")
    parser.add_argument("--cpus", default="", help="comma-separated CPU set (default: none)")
    args = parser.parse_args()
    cpus = tuple(int(c) for c in args.cpus.split(",") if c) or None
    ctx = RunContext(session_id=f"bench-{os.getpid()}", rootdir=os.getcwd(), cpus=cpus, memory_mb=1024)
    options = {k: v for k, v in (("runtime", args.runtime), ("scratch", args.scratch), ("image", args.image)) if v}

    # Build (or find) the mirror image before timing anything.
    if not args.image:
        from pytest_virtoverhead.envs.container.client import connect
        from pytest_virtoverhead.envs.container.mirror import ensure_mirror_image

        t0 = time.perf_counter()
        image = ensure_mirror_image(connect())
        print(f"mirror image {image.tags[0]} ready in {1000 * (time.perf_counter() - t0):.1f} ms (cached after the first build)")

    rows = []
    for kind, opts in (("baremetal", {}), ("container", options)):
        res = measure(kind, opts, args.starts, args.calls, ctx)
        for what, label in (("start", "start to ready"), ("first", "first call"), ("call", "warm call")):
            med, p10, p90 = quantiles(res[what])
            rows.append((kind, label, len(res[what]), med * 1000, p10 * 1000, p90 * 1000))

    print(f"\n{'env':<10} {'what':<15} {'n':>5} {'median ms':>10} {'p10 ms':>9} {'p90 ms':>9}")
    for kind, label, n, med, p10, p90 in rows:
        print(f"{kind:<10} {label:<15} {n:>5} {med:>10.3f} {p10:>9.3f} {p90:>9.3f}")
    if options:
        print("container options:", options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
