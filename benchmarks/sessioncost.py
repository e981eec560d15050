"""What a compared test costs: whole sessions, timed, with the plugin's own
per-phase account of them (the run document's ``cost``).

    .venv/bin/python benchmarks/sessioncost.py [--json PATH] [--markdown PATH]
        [--skip-vm] [--bench-suite DIR --bench-args "..."] [--reps N]

(also a section of benchmarks/harness.py). Measures, on this machine:

1. **call path**: a generated suite of pure-Python tests of ~3.5 ms a call,
   ``--virt-envs=baremetal,container``, plugin defaults: a 1-test session
   and a 16-test session (``--reps`` each, alternating); each further test's
   wall time, ``(wall16 - wall1) / 15``, against its measured calls (the
   run document's ``measured`` phase per test); the phases of the 16-test
   session (environment start, worker-process start, warm-up, gc, measured
   calls, requests, reporting run, statistics, the rest);
2. **benchmark path**: a suite of sub-microsecond pytest-benchmark tests
   (``--bench-suite DIR``: a third-party suite, run with ``--bench-args``;
   default: a generated one of 12) under plain pytest-benchmark and under
   ``--virt-compare --virt-envs=baremetal,container --virt-rounds=5``, both
   with ``--benchmark-max-time=0.2``; the ratio of the wall times;
3. **VM** (TCG here): a 1-test and a 2-test session of the call-path test
   with ``--virt-envs=baremetal,vm``, and a test using the ``vm`` fixture in
   a new directory, after one such test ran elsewhere (the saved guest
   state is per machine configuration).

Every session runs in a fresh temporary directory; its JSON is read for
the phases. Wall clock on the host; read it with the load and steal the
header gives.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = sys.executable

CALL_TEST = '''
import pytest

LOOPS = {loops}

def spin():
    s = 0
    for i in range(LOOPS):
        s += i * i % 7
    return s

@pytest.mark.parametrize("i", range({n}))
@pytest.mark.virt(claims=["container ~= baremetal +- 5%", "vm <= 20 * baremetal"])
def test_spin(i):
    spin()
'''

BENCH_TEST = '''
import pytest

@pytest.mark.parametrize("i", range(12))
def test_tiny(benchmark, i):
    benchmark(abs, -i)
'''

VM_FIXTURE_TEST = '''
import os

def test_vm_answers(vm):
    assert vm.run(os.getcwd) == os.getcwd()
'''


def loops_for(seconds: float = 0.0035) -> int:
    """Loops of the call-path test's body that take ``seconds`` here."""
    code = ("import time\ndef spin(n):\n s=0\n for i in range(n):\n  s += i*i%7\n"
            "n=20000\nfor _ in range(3): spin(n)\nt=time.perf_counter(); spin(n); print(time.perf_counter()-t)")
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True).stdout
    return max(1000, int(20000 * seconds / float(out.strip())))


def run(cwd: str, *args: str, timeout: float = 1800) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - t0, proc


def _session(directory: str, n: int, loops: int, envs: str, reps: int) -> dict[str, Any]:
    """``reps`` sessions of the first ``n`` call-path tests: wall times, the
    last session's document cost."""
    with open(os.path.join(directory, "test_call.py"), "w") as f:
        f.write(CALL_TEST.format(loops=loops, n=n))
    walls, cost = [], {}
    for _ in range(reps):
        out = os.path.join(directory, "run.json")
        wall, proc = run(directory, "test_call.py", "--virt-compare", f"--virt-envs={envs}",
                         f"--virt-json={out}", "--virt-require=" + envs.split(",")[-1])
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"session of {n} test(s) failed:\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
        walls.append(wall)
        with open(out) as f:
            doc = json.load(f)
        cost = doc.get("cost") or {}
        cost["per_test_measured"] = [t["cost"]["phases"].get("measured", {}).get("seconds", 0.0)
                                     for t in doc.get("tests", [])]
        cost["per_test_wall"] = [t["cost"].get("wall", 0.0) for t in doc.get("tests", [])]
        cost["conclusive"] = sum(1 for c in doc.get("claims", []) if c["verdict"] in ("pass", "fail"))
        cost["claims"] = len(doc.get("claims", []))
    return {"walls": walls, "cost": cost}


def call_path(table: Any, data: dict[str, Any], args: argparse.Namespace, envs: str = "baremetal,container",
              label: str = "call path", many: int = 16) -> None:
    loops = data.setdefault("cost_loops", loops_for())
    one = tempfile.mkdtemp(prefix="cost-1-")
    big = tempfile.mkdtemp(prefix=f"cost-{many}-")
    try:
        res1, resn = {"walls": []}, {"walls": []}
        ratios, inside = [], []
        for _ in range(args.reps):  # alternating, so a change of load hits both
            r = _session(one, 1, loops, envs, 1)
            res1["walls"] += r["walls"]
            res1["cost"] = r["cost"]
            rn = _session(big, many, loops, envs, 1)
            resn["walls"] += rn["walls"]
            resn["cost"] = rn["cost"]
            # this pair's own figures: its two sessions ran next to each other
            measured = rn["cost"]["per_test_measured"][1:]
            if measured and statistics.median(measured) > 0:
                ratios.append((rn["walls"][0] - r["walls"][0]) / (many - 1) / statistics.median(measured))
            walls = rn["cost"]["per_test_wall"][1:]
            if walls and sum(measured) > 0:
                inside.append(sum(walls) / sum(measured))
    finally:
        shutil.rmtree(one, ignore_errors=True)
        shutil.rmtree(big, ignore_errors=True)
    w1, wn = statistics.median(res1["walls"]), statistics.median(resn["walls"])
    per_test = (wn - w1) / (many - 1)
    measured = resn["cost"]["per_test_measured"]
    per_measured = statistics.median(measured[1:]) if len(measured) > 1 else float("nan")
    data.setdefault("session_cost", {})[label] = {"loops": loops, "one": res1, "many": resn, "n": many}
    table.add("session cost", f"{label}: 1-test session ({envs}), wall time", res1["walls"], "s",
              target="<= 5 s" if "vm" not in envs else "", met=w1 <= 5 if "vm" not in envs else None)
    table.add("session cost", f"{label}: {many}-test session, wall time", resn["walls"], "s")
    table.add("session cost", f"{label}: each further test, wall time ((wall{many} - wall1) / {many - 1})",
              [per_test], "s")
    table.add("session cost", f"{label}: each further test, measured calls (median of tests 2-{many})",
              [per_measured], "s")
    # Per pair of sessions (1-test, then N-test, next to each other), not
    # from the medians of all: this machine's speed moves between pairs.
    ratio = statistics.median(ratios) if ratios else float("nan")
    table.add("session cost", f"{label}: each further test / its measured calls (per pair of sessions)", ratios, "x",
              target="<= 1.5" if "vm" not in envs else "", met=ratio <= 1.5 if "vm" not in envs else None)
    table.add("session cost", f"{label}: tests 2-{many}, their own wall time / their measured calls "
              "(run document's cost; without the host's pytest work between tests)", inside, "x")
    phases = resn["cost"].get("phases") or {}
    wall = resn["cost"].get("wall") or 0.0
    for name, row in phases.items():
        table.add("session cost", f"{label}: phase of the {many}-test session: {name} ({row.get('count', 0)})",
                  [row["seconds"]], "s", note=f"{100 * row['seconds'] / wall:.0f}% of the tests' {wall:.1f} s"
                  if wall else "")
    table.add("session cost", f"{label}: claims decided (pass or fail) in the {many}-test session",
              [resn["cost"]["conclusive"]], f"of {resn['cost']['claims']}")


def bench_path(table: Any, data: dict[str, Any], args: argparse.Namespace) -> None:
    tmp = None
    if args.bench_suite:
        cwd, targets = args.bench_suite, shlex.split(args.bench_args or "")
        what = f"{args.bench_suite} {args.bench_args or ''}".strip()
    else:
        tmp = cwd = tempfile.mkdtemp(prefix="cost-bench-")
        with open(os.path.join(cwd, "test_bench.py"), "w") as f:
            f.write(BENCH_TEST)
        targets, what = ["test_bench.py"], "generated: 12 x benchmark(abs, -i)"
    opts = ["--benchmark-max-time=0.2"]
    virt = ["--virt-compare", "--virt-envs=baremetal,container", "--virt-rounds=5", "--virt-select=test",
            "--virt-claim=container ~= baremetal +- 5%", "--virt-require=container"]
    try:
        plain, compared = [], []
        for _ in range(args.reps):
            wall, proc = run(cwd, *targets, *opts)
            if proc.returncode != 0:
                raise RuntimeError(f"plain benchmark run failed:\n{proc.stdout[-1500:]}")
            plain.append(wall)
            wall, proc = run(cwd, *targets, *opts, *virt)
            if proc.returncode not in (0, 1):
                raise RuntimeError(f"compared benchmark run failed:\n{proc.stdout[-1500:]}")
            compared.append(wall)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    ratio = statistics.median(compared) / statistics.median(plain)
    data.setdefault("session_cost", {})["bench path"] = {"suite": what, "plain": plain, "compared": compared}
    table.add("session cost", f"benchmark path: plain pytest-benchmark ({what})", plain, "s")
    table.add("session cost", "benchmark path: --virt-compare, baremetal+container, 5 rounds", compared, "s")
    table.add("session cost", "benchmark path: compared / plain", [ratio], "x", target="<= 25", met=ratio <= 25)


def vm_fixture(table: Any, data: dict[str, Any], args: argparse.Namespace) -> None:
    dirs = [tempfile.mkdtemp(prefix="cost-vmfix-") for _ in range(1 + args.reps)]
    walls = []
    try:
        for i, d in enumerate(dirs):
            with open(os.path.join(d, "test_vmfix.py"), "w") as f:
                f.write(VM_FIXTURE_TEST)
            wall, proc = run(d, "test_vmfix.py", "--virt-require=vm")
            if proc.returncode != 0:
                raise RuntimeError(f"VM fixture test failed:\n{proc.stdout[-1500:]}")
            if i:  # the first directory may boot (a machine's first VM)
                walls.append(wall)
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    table.add("session cost", "vm: a vm-fixture test in a new directory (the machine ran one before), session",
              walls, "s", target="<= 6 s", met=statistics.median(walls) <= 6)


def sections(args: argparse.Namespace) -> list[tuple[str, Any]]:
    out = [("session cost", call_path), ("session cost", bench_path)]
    if not args.skip_vm:
        out += [("session cost", lambda t, d, a: call_path(t, d, a, "baremetal,vm", "vm (call path)", 2)),
                ("session cost", vm_fixture)]
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reps", type=int, default=2, help="sessions of each kind (session cost)")
    parser.add_argument("--bench-suite", help="directory of a pytest-benchmark suite to run (session cost)")
    parser.add_argument("--bench-args", help="its pytest arguments (files, -k)")


def main() -> int:
    sys.path[:0] = [HERE]
    import harness  # the table, the machine header and the Markdown writer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=os.path.join(tempfile.gettempdir(), "sessioncost.json"))
    parser.add_argument("--markdown")
    parser.add_argument("--skip-vm", action="store_true")
    add_arguments(parser)
    args = parser.parse_args()
    return harness.run_sections(args, sections(args), command="benchmarks/sessioncost.py")


if __name__ == "__main__":
    sys.exit(main())
