"""How much two back-to-back calls of the same function differ on this
machine: the noise that the verdict engine's rounds, calls per block and
worker processes have to average away.

    .venv/bin/python benchmarks/call_noise.py [--cpu 1] [--seconds 3]

For calls of about 0.1, 1, 10 and 60 ms of pure-Python work, pinned to one
CPU, it times calls back to back for ``--seconds`` each and prints, over
the pairs of consecutive calls: the standard deviation of their log ratio
(in %), the same from the median absolute deviation (robust: what most
pairs see), and the standard deviation of the median of 5 pairs (what a
block of 5 paired calls sees). It also prints the load average and the
steal share of CPU time over the run (/proc/stat).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

SIZES = {"0.1 ms": 1_500, "1 ms": 15_000, "10 ms": 150_000, "60 ms": 900_000}


def work(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def cpu_ticks() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return fields[7], sum(fields)


def pair_noise(n: int, seconds: float) -> dict[str, float]:
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 12:
        t0 = time.perf_counter()
        work(n)
        times.append(time.perf_counter() - t0)
    d = [100 * math.log(times[i + 1] / times[i]) for i in range(0, len(times) - 1, 2)]
    med = statistics.median(d)
    blocks = [statistics.median(d[i:i + 5]) for i in range(0, len(d) - 4, 5)]
    return {"call_ms": 1000 * statistics.median(times), "pairs": len(d), "sd": statistics.stdev(d),
            "mad_sd": 1.4826 * statistics.median(abs(x - med) for x in d),
            "block5_sd": statistics.stdev(blocks) if len(blocks) > 2 else math.nan}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)), help="CPU to pin to")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds of calls per size")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    load_before = os.getloadavg()
    ticks0 = cpu_ticks()
    print(f"CPU {args.cpu}; log ratio of consecutive calls, in %")
    print(f"{'call':>8} {'pairs':>6} {'sd':>6} {'MAD sd':>7} {'sd of median of 5':>18}")
    for label, n in SIZES.items():
        r = pair_noise(n, args.seconds)
        print(f"{r['call_ms']:7.2f}ms {r['pairs']:6d} {r['sd']:6.1f} {r['mad_sd']:7.1f} {r['block5_sd']:18.1f}"
              f"   ({label} target)")
    ticks1 = cpu_ticks()
    steal = (ticks1[0] - ticks0[0]) / max(1, ticks1[1] - ticks0[1])
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; "
          f"steal {steal:.2%} of all CPU time over the run")


if __name__ == "__main__":
    main()
