"""Does ``workloads.sysbench.run`` report what plain sysbench reports?

    .venv/bin/python benchmarks/sysbench_agreement.py [--time 5] [--repeat 4]
        [--env baremetal] [--env container] [--env vm] [--no-host]

Two tests, sysbench's reference ones:

- cpu:    ``sysbench cpu --cpu-max-prime=10000 --time=T run`` (events/s)
- memory: ``sysbench memory --time=T run`` (1 KiB blocks, seq write; MiB/s)

Each is run ``--repeat`` times as plain sysbench (a subprocess; its headline
number read by a regex in this script, not by the wrapper's parser) and
through ``workloads.sysbench.run(...)``, alternating plain and wrapper
(ABBA: which goes first swaps every round). On
the host (the script's own process) and, per ``--env KIND``, inside that
environment: there the plain run is ``env.run`` of a helper here that runs
sysbench and returns its raw output, and the wrapper is
``env.run(workloads.sysbench.run, ...)``. Prints, per environment and test,
the median and range of both, the ratio of medians (wrapper / plain; 1.00
is perfect agreement), the ratios of runs made one after the other (less
sensitive to load drifting over the minutes of the run), the spread of the
plain runs (the noise to compare the ratios with) and whether the two ranges
overlap.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from pytest_virtoverhead.workloads import sysbench  # noqa: E402

#: test -> (plain arguments without --time, wrapper keywords, regex of the headline, unit)
TESTS = {
    "cpu": (["cpu", "--cpu-max-prime=10000"], {"cpu_max_prime": 10000},
            r"events per second:\s*([0-9.]+)", "events/s"),
    "memory": (["memory"], {}, r"MiB transferred \(([0-9.]+) MiB/sec\)", "MiB/s"),
}


def plain_sysbench(args: list[str]) -> str:
    """Run ``sysbench ARGS run`` and return its raw standard output (this is
    what runs inside an environment for the plain measurement)."""
    return subprocess.run(["sysbench", *args, "run"], capture_output=True, text=True, check=True).stdout


def headline(text: str, pattern: str) -> float:
    m = re.search(pattern, text)
    if not m:
        raise RuntimeError(f"no match for {pattern!r} in sysbench output:\n{text}")
    return float(m.group(1))


def measure(runner, plain_fn, test: str, seconds: int, repeat: int) -> tuple[list[float], list[float]]:
    """``runner(fn, *args, **kwargs)`` calls fn here or in an environment;
    ``plain_fn`` is :func:`plain_sysbench` under an importable module name."""
    args, kwargs, pattern, _ = TESTS[test]
    plain, wrapped = [], []
    for i in range(repeat):
        # ABBA order: plain first in even rounds, the wrapper first in odd ones.
        for which in ((0, 1) if i % 2 == 0 else (1, 0)):
            if which == 0:
                plain.append(headline(runner(plain_fn, [*args, f"--time={seconds}"]), pattern))
            else:
                wrapped.append(runner(sysbench.run, test, time=seconds, **kwargs)["rate"])
    return plain, wrapped


def local(fn, *args, **kwargs):
    return fn(*args, **kwargs)


def environment(kind: str):
    from pytest_virtoverhead.envs import Environment, EnvSpec, RunContext, backend_class

    ctx = RunContext(session_id=f"sysbench-agreement-{os.getpid()}", rootdir=os.path.dirname(HERE),
                     memory_mb=1024, job_timeout=600)
    return Environment(backend_class(kind)(EnvSpec(kind, kind, {}), ctx))


def fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):10.1f} [{min(xs):.0f}-{max(xs):.0f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time", type=int, default=5, help="seconds per sysbench run (default 5)")
    parser.add_argument("--repeat", type=int, default=4, help="runs of each kind per test (default 4)")
    parser.add_argument("--env", action="append", default=[], choices=["baremetal", "container", "vm"],
                        help="also measure inside this environment kind (repeatable)")
    parser.add_argument("--no-host", action="store_true", help="skip the runs in this process")
    parser.add_argument("--tests", default="cpu,memory", help="comma-separated: cpu, memory")
    args = parser.parse_args()
    tests = [t for t in args.tests.split(",") if t]
    if not sysbench.available():
        print(sysbench.SKIP_MESSAGE, file=sys.stderr)
        return 2

    # The plain helper must be named by a module the worker can import:
    # this file under its own name, not __main__.
    import sysbench_agreement as me

    rows = []
    places = ([] if args.no_host else [("host", None)]) + [(kind, kind) for kind in args.env]
    for label, kind in places:
        env = None
        if kind is None:
            runner, note = local, f"this process, {os.uname().release}"
        else:
            env = environment(kind)
            t0 = time.monotonic()
            env.start()
            md = env.metadata
            note = f"{kind} started in {time.monotonic() - t0:.1f} s" + (f", accel={md['accel']}" if md.get("accel") else "")
            runner = env.run
        print(f"# {label}: {note}", flush=True)
        try:
            for test in tests:
                plain, wrapped = measure(runner, me.plain_sysbench, test, args.time, args.repeat)
                rows.append((label, test, TESTS[test][3], plain, wrapped))
                print(f"#   {test}: plain {plain}  wrapper {wrapped}", flush=True)
        finally:
            if env is not None:
                env.stop()

    print()
    print(f"plain sysbench vs workloads.sysbench.run: {args.repeat} runs x {args.time} s per cell, median [min-max]")
    print(f"{'env':<10} {'test':<7} {'unit':<9} {'plain sysbench':>24} {'workloads.sysbench.run':>24} "
          f"{'ratio':>6} {'paired ratios':>19} {'plain spread':>12} {'overlap':>7}")
    for label, test, unit, plain, wrapped in rows:
        ratio = statistics.median(wrapped) / statistics.median(plain)
        pairs = sorted(w / p for p, w in zip(plain, wrapped))  # runs adjacent in time
        spread = (max(plain) - min(plain)) / statistics.median(plain)
        overlap = "yes" if min(wrapped) <= max(plain) and min(plain) <= max(wrapped) else "no"
        print(f"{label:<10} {test:<7} {unit:<9} {fmt(plain):>24} {fmt(wrapped):>24} {ratio:6.3f} "
              f"{statistics.median(pairs):5.3f} [{pairs[0]:.2f}-{pairs[-1]:.2f}] {spread:12.1%} {overlap:>7}")
    print("ratio: median wrapper / median plain; paired ratios: wrapper / plain of the runs made one after the "
          "other (median [min-max]); plain spread: (max - min) / median of the plain runs, the noise; "
          "overlap: do the two ranges overlap")
    return 0


if __name__ == "__main__":
    sys.exit(main())
