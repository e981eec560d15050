"""The host's pytest-benchmark timing options, passed on to the worker
processes' pytest sessions.

A worker's pytest reads the project's ini file (so ``addopts`` there
reach it) but not the host's command line: without this,
``pytest --benchmark-max-time=0.2 --virt-compare`` timed every call in the
environments with pytest-benchmark's defaults (up to 1 s a call). Only the
options that shape a measurement cross; those that save, compare or draw
files stay with the host (:data:`.itemrunner.BENCHMARK_HOST_ONLY`).
Standard library only.
"""

from __future__ import annotations

from typing import Sequence

#: Timing options that take a value (``--opt VALUE`` or ``--opt=VALUE``).
WITH_VALUE = ("--benchmark-min-time", "--benchmark-max-time", "--benchmark-min-rounds",
              "--benchmark-precision", "--benchmark-confidence", "--benchmark-timer",
              "--benchmark-calibration-precision", "--benchmark-warmup-iterations")
#: Timing flags.
FLAGS = ("--benchmark-disable-gc", "--benchmark-disable", "--benchmark-enable")
#: ``--benchmark-warmup [KIND]``: the value is optional (argparse takes the
#: next argument when it does not start with "-").
OPTIONAL_VALUE = ("--benchmark-warmup",)


def timing_args(args: Sequence[str]) -> list[str]:
    """The timing options of a pytest command line ``args`` (in order, as
    given), each with its value."""
    out: list[str] = []
    i = 0
    args = list(args)
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0]
        if name in WITH_VALUE + OPTIONAL_VALUE and "=" in arg:
            out.append(arg)
        elif name in WITH_VALUE and i + 1 < len(args):
            out += [arg, args[i + 1]]
            i += 1
        elif name in OPTIONAL_VALUE:
            if i + 1 < len(args) and not args[i + 1].startswith("-"):
                out.append(f"{arg}={args[i + 1]}")
                i += 1
            else:
                out.append(arg)
        elif name in FLAGS and "=" not in arg:
            out.append(arg)
        i += 1
    return out
