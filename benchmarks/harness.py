"""What the harness itself costs on this machine: starts, dispatch, plugin
overhead, noise floor, and the example suite's wall time.

    .venv/bin/python benchmarks/harness.py [--json PATH] [--markdown PATH]
        [--skip-examples] [--skip-vm] [--quick]

Measures, on the machine it runs on:

1. start to worker ready (Environment.start(): backend start, worker imports,
   "ready" frame, "hello" reply) of baremetal, container and VM (per
   acceleration: TCG; KVM only where a KVM guest boots, else the reason);
2. warm dispatch latency: round trip of a no-op ``env.run(os.getpid)``;
3. parallel start: container + VM started together by
   ``EnvironmentPool.start_all`` against one after the other;
4. the plugin's cost on a suite run without ``--virt-compare``: a generated
   suite of 300 trivial tests (60 marked ``virt``), run alternately with the
   plugin and with ``-p no:virtoverhead``; ratio of medians with the
   project's bootstrap CI (``samplestats.bootstrap_ratio_ci``);
5. the noise floor (A/A): ``--virt-envs=baremetal,control=baremetal`` on a
   50 ms CPU test, the half-width of the ratio's 95% CI after 5, 10 and 20
   rounds (and container vs a second container);
6. the session cost (benchmarks/sessioncost.py: the call path, the
   pytest-benchmark path and the VM, each session's wall time with the
   plugin's per-phase account; ``--skip-cost`` leaves it out);
7. the wall time of ``pytest examples --virt-compare`` (minutes under TCG;
   ``--skip-examples`` leaves it out).

Prints the machine (CPU model, cores, kernel, load average at start) and a
table (median, p10, p90, target, met), writes everything as JSON
(``--json``, default benchmarks/harness.json) and, with ``--markdown``, the
table as Markdown. Measurements are wall clock on the host; the machine may
be shared, so repeat and compare medians, and read the load average.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [p for p in (HERE, ROOT) if p not in sys.path]

import common  # noqa: E402  (as a module, so the worker can import its jobs)
import samplestats  # noqa: E402
import sessioncost  # noqa: E402

from pytest_virtoverhead.envs import RunContext  # noqa: E402
from pytest_virtoverhead.envs.errors import EnvUnavailable  # noqa: E402
from pytest_virtoverhead.judge import stats  # noqa: E402
from pytest_virtoverhead.session.config import build_settings  # noqa: E402
from pytest_virtoverhead.session.pool import EnvironmentPool  # noqa: E402

PY = sys.executable
MS = 1000.0


def log(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


class Table:
    """Rows of (section, what, n, median, p10, p90, unit, target, met)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, section: str, what: str, values: list[float] | None, unit: str, scale: float = 1.0,
            target: str = "", met: bool | None = None, note: str = "", value: float | None = None,
            lo: float | None = None, hi: float | None = None) -> None:
        row: dict[str, Any] = {"section": section, "what": what, "unit": unit, "target": target,
                               "met": met, "note": note}
        if values:
            med, p10, p90 = common.quantiles(values)
            row.update(n=len(values), median=med * scale, p10=p10 * scale, p90=p90 * scale)
        elif value is not None:
            row.update(n=None, median=value, p10=lo, p90=hi)
        else:
            row.update(n=0, median=None, p10=None, p90=None)
        self.rows.append(row)

    @staticmethod
    def _fmt(x: float | None) -> str:
        if x is None:
            return "-"
        if abs(x) >= 100:
            return f"{x:.0f}"
        if abs(x) >= 10:
            return f"{x:.1f}"
        return f"{x:.3g}" if abs(x) < 1 else f"{x:.2f}"

    @staticmethod
    def _met(row: dict[str, Any]) -> str:
        return {True: "yes", False: "NO", None: ""}[row["met"]]

    ORDER = ["start", "dispatch", "plugin cost", "noise floor (A/A)", "session cost", "example suite"]

    def sorted_rows(self) -> list[dict[str, Any]]:
        rank = {s: i for i, s in enumerate(self.ORDER)}
        return sorted(self.rows, key=lambda r: rank.get(r["section"], len(rank)))

    def text(self) -> str:
        head = f"{'what':<64} {'n':>5} {'median':>9} {'p10/lo':>9} {'p90/hi':>9} {'unit':<6} {'target':<10} {'met':<4}"
        lines, section = [head, "-" * len(head)], None
        for r in self.sorted_rows():
            if r["section"] != section:
                section = r["section"]
                lines.append(f"[{section}]")
            n = "" if r["n"] is None else str(r["n"])
            lines.append(f"  {r['what']:<62} {n:>5} {self._fmt(r['median']):>9} {self._fmt(r['p10']):>9} "
                         f"{self._fmt(r['p90']):>9} {r['unit']:<6} {r['target']:<10} {self._met(r):<4}"
                         + (f" {r['note']}" if r["note"] else ""))
        return "\n".join(lines)

    def markdown(self) -> str:
        out = ["| section | what | n | median | p10 / CI lo | p90 / CI hi | unit | target | met |",
               "|---|---|---:|---:|---:|---:|---|---|---|"]
        for r in self.sorted_rows():
            what = r["what"] + (f" ({r['note']})" if r["note"] else "")
            n = "" if r["n"] is None else str(r["n"])
            out.append(f"| {r['section']} | {what} | {n} | {self._fmt(r['median'])} | {self._fmt(r['p10'])} | "
                       f"{self._fmt(r['p90'])} | {r['unit']} | {r['target']} | {self._met(r)} |")
        return "\n".join(out)


# --------------------------------------------------------------------------
# 1-2: starts and dispatch


def ctx_for(tag: str) -> RunContext:
    return RunContext(session_id=f"h{tag}{uuid.uuid4().hex[:6]}", rootdir=ROOT, memory_mb=1024)


def kvm_status(ctx: RunContext) -> tuple[bool, str]:
    """(KVM guests boot here, why), from the VM backend's own accel choice:
    the cached verdict, else a probe (accel=auto: a guest that must reach
    user space within a few seconds)."""
    from pytest_virtoverhead.envs.vm import VMBackend, accel as accel_mod
    from pytest_virtoverhead.envs.vm.connect import import_libvirt, version_string

    ok, why = accel_mod.kvm_device_usable()
    if not ok:
        return False, why
    libvirt = import_libvirt()
    backend = VMBackend(common.EnvSpec("vm", "vm", {}), ctx)
    conn = libvirt.open(backend.uri)
    try:
        qemu = version_string(conn.getVersion())
        try:
            conn.getDomainCapabilities(None, "x86_64", None, "kvm")
            has_kvm, detail = True, ""
        except libvirt.libvirtError as exc:
            has_kvm, detail = False, exc.get_error_message()
    finally:
        conn.close()
    choice = accel_mod.choose("auto", backend.cache_dir, qemu, has_kvm, detail)
    if not choice.probe:
        return choice.accel == "kvm", choice.reason
    log("no cached KVM verdict: probing with accel=auto")
    env = common.make_env("vm", {"accel": "auto"}, ctx)
    try:
        env.start()
        return env.metadata.get("accel") == "kvm", env.metadata.get("accel_reason", "")
    finally:
        env.stop()


def fresh_machine_start(table: Table, data: dict[str, Any]) -> None:
    """The first VM of a fresh machine: accel=auto with an empty cache
    directory, so the start pays everything once (the KVM probe and its
    verdict, the kernel's ELF extraction, the initramfs, a full boot and
    saving the guest's state), as the README's first command on a fresh
    clone or a fresh CI machine does."""
    cache = tempfile.mkdtemp(prefix="harness-fresh-cache-")
    try:
        ctx = dataclasses.replace(ctx_for("f"), cache_dir=cache)
        log("vm (auto): first start on a fresh machine (empty cache)")
        try:
            res = common.measure_env("vm", {"accel": "auto"}, 1, 0, ctx, warmup=0, log=log)
        except EnvUnavailable as exc:
            table.add("start", "vm (auto): first start on a fresh machine", None, "s", note=f"unavailable: {exc}"[:120])
            return
        meta = res["metadata"]
        data["fresh_machine"] = {"start": res["start"], "metadata": meta}
        table.add("start", "vm (auto): first start on a fresh machine (empty cache), start to ready", res["start"], "s",
                  note=f"accel {meta.get('accel')}, {meta.get('start_mode')}, state {meta.get('snapshot', '').split(' (')[0]}")
        probe = meta.get("kvm_probe_seconds")
        if probe is not None:
            table.add("start", "vm (auto): of which the KVM probe's verdict", [probe], "s", target="<= 3 s",
                      met=probe <= 3.0, note=str(meta.get("accel_reason", ""))[:110])
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def starts_and_dispatch(table: Table, data: dict[str, Any], args: argparse.Namespace) -> None:
    plan = [("baremetal", {}, args.starts, args.calls, "< 0.5 s", 0.5, "< 2 ms", 2.0),
            ("container", {}, args.starts, args.calls, "< 0.5 s", 0.5, "< 2 ms", 2.0)]
    if not args.skip_vm:
        plan.append(("vm", {"accel": "tcg"}, args.vm_boots, args.vm_calls, "< 3 s", 3.0, "< 10 ms", 10.0))
    if "container" in [p[0] for p in plan]:
        try:
            from pytest_virtoverhead.envs.container.client import connect
            from pytest_virtoverhead.envs.container.mirror import ensure_mirror_image

            t0 = time.perf_counter()
            ensure_mirror_image(connect())
            data["mirror_image_seconds"] = time.perf_counter() - t0
        except EnvUnavailable as exc:
            log(f"container: unavailable ({exc})")
    for kind, opts, starts, calls, start_target, start_max, call_target, call_max in plan:
        label = kind if kind != "vm" else "vm (TCG)"
        log(f"{label}: {starts} starts, {calls} warm calls")
        try:
            res = common.measure_env(kind, opts, starts, calls, ctx_for(kind[0]), log=log)
        except EnvUnavailable as exc:
            table.add("start", f"{label}: start to worker ready", None, "s", note=f"unavailable: {exc}"[:120])
            data.setdefault("unavailable", {})[kind] = str(exc)
            continue
        data.setdefault("envs", {})[label] = res
        med = common.quantiles(res["start"])[0]
        table.add("start", f"{label}: start to worker ready", res["start"], "s", target=start_target,
                  met=med < start_max)
        if res["boot"]:
            table.add("start", f"{label}: of which boot (domain to ready)", res["boot"], "s")
            modes = [m.get("start_mode") for m in res["metas"]]
            table.add("start", f"{label}: starts that restored the saved state", None, "",
                      value=float(modes.count("restored")), note=f"of {len(modes)}: {', '.join(map(str, modes))}")
            for what, values in common.vm_phase_values(res["metas"]):
                table.add("start", f"{label}: phase: {what}", values, "s")
        table.add("start", f"{label}: first call after start", res["first"], "ms", MS)
        cmed = common.quantiles(res["call"])[0] * MS
        table.add("dispatch", f"{label}: warm no-op env.run", res["call"], "ms", MS, target=call_target,
                  met=cmed < call_max)
    if not args.skip_vm and args.vm_cold_boots:
        log(f"vm (TCG), snapshot=0: {args.vm_cold_boots} boots")
        try:
            res = common.measure_env("vm", {"accel": "tcg", "snapshot": "0"}, args.vm_cold_boots, 0, ctx_for("c"),
                                     warmup=0, log=log)
            data.setdefault("envs", {})["vm (TCG, snapshot=0)"] = res
            table.add("start", "vm (TCG), snapshot=0 (boot every time): start to worker ready", res["start"], "s")
            for what, values in common.vm_phase_values(res["metas"]):
                table.add("start", f"vm (TCG), snapshot=0: phase: {what}", values, "s")
        except EnvUnavailable as exc:
            log(f"vm snapshot=0: unavailable ({exc})")
    if not args.skip_vm and not args.skip_fresh:
        fresh_machine_start(table, data)
    if not args.skip_vm:
        ok, why = kvm_status(ctx_for("k"))
        data["kvm"] = {"works": ok, "reason": why}
        if ok:
            log("vm (KVM): measuring")
            res = common.measure_env("vm", {"accel": "kvm"}, args.vm_boots, args.vm_calls, ctx_for("v"), log=log)
            data["envs"]["vm (KVM)"] = res
            table.add("start", "vm (KVM): start to worker ready", res["start"], "s", target="< 1 s",
                      met=common.quantiles(res["start"])[0] < 1.0)
            table.add("dispatch", "vm (KVM): warm no-op env.run", res["call"], "ms", MS)
        else:
            table.add("start", "vm (KVM)", None, "", note=f"kvm: unavailable here ({why.split('; delete')[0]})")


def parallel_start(table: Table, data: dict[str, Any], args: argparse.Namespace) -> None:
    """container + vm through EnvironmentPool.start_all: its wall time against
    the sum of the two environments' own start times in the same call (what
    one after the other would take), and against starting them apart."""
    if args.skip_vm or data.get("unavailable"):
        return
    names = ["container", "vm"]
    together, own_sum, apart = [], [], []
    for i in range(args.parallel_reps):
        for mode in (("together", "apart") if i % 2 == 0 else ("apart", "together")):
            settings = build_settings({"compare": True, "envs": "baremetal,container,vm",
                                       "kind_defaults": {"vm": {"accel": "tcg"}}})
            pool = EnvironmentPool(settings, ctx_for("p"))
            try:
                t0 = time.perf_counter()
                if mode == "together":
                    failures = pool.start_all(names)
                else:
                    failures = {}
                    for n in names:
                        failures.update(pool.start_all([n]))
                dt = time.perf_counter() - t0
                own = sum(e.start_time or 0.0 for e in pool.started().values())
            finally:
                pool.stop_all()
            if failures:
                log(f"parallel start: {failures}")
                return
            if mode == "together":
                together.append(dt)
                own_sum.append(own)
            else:
                apart.append(dt)
            log(f"container+vm {mode}: {dt:.2f} s (sum of own start times {own:.2f} s)")
    data["parallel_start"] = {"together": together, "own_sum": own_sum, "apart": apart}
    saved = [s - t for s, t in zip(own_sum, together)]
    table.add("start", "container + vm, start_all: wall time", together, "s",
              target="< sum", met=all(x > 0 for x in saved))
    table.add("start", "container + vm, start_all: sum of own start times", own_sum, "s")
    table.add("start", "container + vm, one after the other: wall time", apart, "s")


# --------------------------------------------------------------------------
# 4: plugin cost without --virt-compare


def write_suite(directory: str, files: int = 10, per_file: int = 30, marked_every: int = 5) -> int:
    with open(os.path.join(directory, "pytest.ini"), "w") as f:
        f.write("[pytest]\nmarkers =\n    virt: measured by pytest-virtoverhead\n")
    n = 0
    for i in range(files):
        lines = ["import pytest", ""]
        for j in range(per_file):
            if j % marked_every == 0:
                lines.append('@pytest.mark.virt(claims=["container <= 1.05 * baremetal"])')
            lines += [f"def test_{i}_{j}():", f"    assert {j} + 1 == {j + 1}", ""]
            n += 1
        with open(os.path.join(directory, f"test_gen_{i}.py"), "w") as f:
            f.write("\n".join(lines))
    return n


def run_pytest(cwd: str, *args: str, timeout: float = 600,
               env_update: dict[str, str | None] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    for key, value in (env_update or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    t0 = time.perf_counter()
    proc = subprocess.run([PY, "-m", "pytest", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    return time.perf_counter() - t0, proc


def suite_times(directory: str, reps: int, env_update: dict[str, str | None] | None) -> dict[str, list[float]]:
    """Run the generated suite ``reps`` times with and without the plugin,
    alternating (ABBA), after one untimed run of each."""
    common_args = ["-q", "-p", "no:cacheprovider"]
    variants = {"with": common_args, "without": common_args + ["-p", "no:virtoverhead"]}
    for v in variants.values():  # warm-up (and, with a pycache prefix, compile once)
        _, proc = run_pytest(directory, *v, env_update=env_update)
        if proc.returncode != 0:
            raise RuntimeError(f"generated suite failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    times: dict[str, list[float]] = {"with": [], "without": []}
    for i in range(reps):
        for v in (["with", "without"] if i % 2 == 0 else ["without", "with"]):
            times[v].append(run_pytest(directory, *variants[v], env_update=env_update)[0])
    return times


def plugin_cost(table: Table, data: dict[str, Any], args: argparse.Namespace) -> None:
    """The plugin's cost on a run without --virt-compare, in two set-ups: the
    shell's own (here PYTHONDONTWRITEBYTECODE=1 and no __pycache__ in the
    project, so every run compiles the plugin's modules from source), and
    with bytecode caches (a private PYTHONPYCACHEPREFIX, writing allowed),
    which is what a default Python installation gives."""
    tmp = tempfile.mkdtemp(prefix="harness-suite-")
    try:
        n = write_suite(tmp)
        dwb = "PYTHONDONTWRITEBYTECODE=1, " if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""
        pkg_pyc = os.path.isdir(os.path.join(ROOT, "pytest_virtoverhead", "__pycache__"))
        setups = [(f"[shell: {dwb}package .pyc {'present' if pkg_pyc else 'absent'}]", "shell", None),
                  ("[private pycache]", "pyc", {"PYTHONPYCACHEPREFIX": os.path.join(tmp, "pycache"),
                                               "PYTHONDONTWRITEBYTECODE": None})]
        out: dict[str, Any] = {"tests": n, "marked": n // 5}
        for label, key, env_update in setups:
            times = suite_times(tmp, args.suite_reps, env_update)
            ratio = samplestats.ratio_of_medians(times["with"], times["without"])
            lo, hi = samplestats.bootstrap_ratio_ci(times["with"], times["without"], seed=8)
            out[key] = {"label": label, "times": times, "ratio": ratio, "ci": [lo, hi]}
            table.add("plugin cost", f"{n} tests, plugin on {label}", times["with"], "s")
            table.add("plugin cost", f"{n} tests, -p no:virtoverhead {label}", times["without"], "s")
            table.add("plugin cost", f"cost: ratio - 1, 95% CI {label}", None, "%",
                      value=(ratio - 1) * 100, lo=(lo - 1) * 100, hi=(hi - 1) * 100, target="< 1%",
                      met=(ratio - 1) < 0.01)
            extra = stats.median(times["with"]) - stats.median(times["without"])
            out[key]["extra_seconds"] = extra
            table.add("plugin cost", f"cost: difference of medians {label}", None, "ms",
                      value=extra * MS, note=f"1% of a run from {max(extra, 0) * 100:.1f} s on")
        data["plugin_cost"] = out
        # Where the cost is: importing the plugin module in a fresh
        # interpreter. Two interpreter starts differ by more than the import
        # on a loaded machine, so the figure is the interpreter's own
        # account (-X importtime): the self time of every module that
        # importing the plugin adds to `import pytest`.
        imp = []
        added: list[str] = []
        base = set(_import_times("import pytest"))
        for _ in range(args.import_reps):
            times = _import_times("import pytest, pytest_virtoverhead.plugin")
            added = sorted(m for m in times if m not in base)
            imp.append(sum(times[m] for m in added) / 1e6)
        data["plugin_import"] = imp
        data["plugin_import_modules"] = added
        table.add("plugin cost", "import of the plugin module beyond pytest [shell], -X importtime", imp, "ms", MS,
                  target="< 3 ms", met=common.quantiles(imp)[0] * MS < 3.0,
                  note=f"{len(added)} modules: {', '.join(added)}"[:150])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _import_times(code: str) -> dict[str, int]:
    """Module -> self import time (us) from ``python -X importtime -c code``."""
    proc = subprocess.run([PY, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True)
    out: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[0].split(":")[1].strip().isdigit():
            out[parts[2].strip()] = int(parts[0].split(":")[1])
    return out


# --------------------------------------------------------------------------
# 5: noise floor (A/A)

AA_TEST = '''
import pytest

LOOPS = {loops}


@pytest.mark.virt(claims=[{claim!r}])
def test_cpu_50ms():
    total = 0
    for i in range(LOOPS):
        total += i * i
    assert total >= 0
'''


def calibrate_loops(target: float = 0.05) -> int:
    loops = 200_000
    while True:
        t0 = time.perf_counter()
        total = 0
        for i in range(loops):
            total += i * i
        dt = time.perf_counter() - t0
        if dt > 0.01:
            return max(1, int(loops * target / dt))
        loops *= 4


def noise_floor(table: Table, data: dict[str, Any], args: argparse.Namespace) -> None:
    loops = calibrate_loops()
    cases = [("baremetal / control=baremetal", "baremetal,control=baremetal", "baremetal",
              "control ~= baremetal +- 5%")]
    if not data.get("unavailable", {}).get("container") and not args.skip_container_aa:
        cases.append(("container / c2=container", "container,c2=container", "container",
                      "c2 ~= container +- 5%"))
    out: dict[str, Any] = {"loops": loops}
    for label, envs, baseline, claim in cases:
        tmp = tempfile.mkdtemp(prefix="harness-aa-")
        try:
            with open(os.path.join(tmp, "test_aa.py"), "w") as f:
                f.write(AA_TEST.format(loops=loops, claim=claim))
            with open(os.path.join(tmp, "pytest.ini"), "w") as f:
                f.write("[pytest]\nvirt_gate = false\n")
            for rounds in (5, 10, 20):
                hws, meds = [], []
                for rep in range(args.aa_reps):
                    path = os.path.join(tmp, f"aa-{rounds}-{rep}.json")
                    dt, proc = run_pytest(tmp, "-q", "-p", "no:cacheprovider", "--virt-compare",
                                          f"--virt-envs={envs}", f"--virt-baseline={baseline}",
                                          f"--virt-rounds={rounds}", f"--virt-seed={rep + 1}",
                                          f"--virt-json={path}")
                    if proc.returncode != 0 or not os.path.exists(path):
                        raise RuntimeError(f"A/A run failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
                    with open(path) as f:
                        c = json.load(f)["claims"][0]
                    hws.append(samplestats.relative_half_width(c["ratio"], tuple(c["ci"])))
                    base = [r for r in json.load(open(path))["results"] if r["env"] == baseline][0]
                    meds.append(base["median"])
                out.setdefault(label, {})[rounds] = {"half_widths": hws, "baseline_medians": meds}
                target = "< 2%" if rounds == 20 else ""
                met = (common.quantiles(hws)[0] < 0.02) if rounds == 20 else None
                table.add("noise floor (A/A)", f"{label}: CI half-width, {rounds} rounds", hws, "%", 100,
                          target=target, met=met)
                log(f"A/A {label} {rounds} rounds: half-widths {[round(h * 100, 2) for h in hws]}%")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    data["noise_floor"] = out


# --------------------------------------------------------------------------
# 6: the example suite


def example_suite(table: Table, data: dict[str, Any], args: argparse.Namespace) -> None:
    path = os.path.join(tempfile.mkdtemp(prefix="harness-ex-"), "examples.json")
    log("pytest examples --virt-compare (minutes under TCG)")
    dt, proc = run_pytest(ROOT, "examples", "--virt-compare", "-q", "-p", "no:cacheprovider",
                          f"--virt-json={path}", timeout=3600)
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    info: dict[str, Any] = {"seconds": dt, "returncode": proc.returncode, "summary": summary}
    try:
        with open(path) as f:
            res = json.load(f)
        info["tests"] = len(res.get("tests", []))
        info["rounds"] = sum(t.get("rounds", 0) for t in res.get("tests", []))
        info["accel"] = {n: m.get("accel") for n, m in res.get("environments", {}).items() if m.get("accel")}
        info["start_seconds"] = {n: m.get("start_seconds") for n, m in res.get("environments", {}).items()}
    except (OSError, ValueError):
        pass
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    data["examples"] = info
    note = f"{info.get('tests', '?')} compared tests, {info.get('rounds', '?')} rounds; {summary}"
    table.add("example suite", "pytest examples --virt-compare, wall time", [dt], "s", note=note[:110])
    if "start_seconds" in info:
        example_parts(table, info, res, dt)


def _calls_of(calls: Any, env: str) -> int:
    """Calls per round of ``env`` from a test's JSON ``calls``: a number, or
    (version 2) {env: calls} for each non-baseline environment, the
    baseline running a block of each partner's calls in every round."""
    if isinstance(calls, dict):
        return int(calls[env]) if env in calls else int(sum(calls.values()) or 1)
    return int(calls or 1)


def example_parts(table: Table, info: dict[str, Any], res: dict[str, Any], wall: float) -> None:
    """Where the example suite's wall time goes: environment starts (they
    run in parallel: the longest counts), the measured work per environment
    (each round's per-call value times the calls per round), the statistics
    (the bootstrap intervals recomputed from the JSON's samples and timed
    here: an estimate of the session's own) and the rest (collection, worker
    dispatch and spawns, warm-up rounds, reporting)."""
    starts = {n: s for n, s in info["start_seconds"].items() if s}
    for name, sec in sorted(starts.items()):
        table.add("example suite", f"part: start of {name}", [sec], "s")
    work: dict[str, float] = {}
    rounds: dict[str, int] = {}
    calls = {t["test"]: t.get("calls") or 1 for t in res.get("tests", [])}
    for r in res.get("results", []):
        samples = r.get("samples") or []
        work[r["env"]] = work.get(r["env"], 0.0) + sum(samples) * _calls_of(calls.get(r["test"]), r["env"])
        rounds[r["env"]] = rounds.get(r["env"], 0) + len(samples)
    for name in sorted(work):
        table.add("example suite", f"part: measured work in {name}", [work[name]], "s",
                  note=f"{rounds[name]} rounds")
    baseline = res.get("baseline", "baremetal")
    by_test: dict[str, dict[str, list[float]]] = {}
    for r in res.get("results", []):
        if r.get("samples"):
            by_test.setdefault(r["test"], {})[r["env"]] = r["samples"]
    t0 = time.perf_counter()
    pairs = 0
    for envs in by_test.values():
        for name, samples in envs.items():
            if name != baseline and baseline in envs:
                samplestats.bootstrap_ratio_ci(samples, envs[baseline], seed=1)
                pairs += 1
    stat_s = time.perf_counter() - t0
    table.add("example suite", "part: statistics (bootstrap intervals recomputed, estimate)", [stat_s], "s",
              note=f"{pairs} ratios")
    rest = wall - max(starts.values(), default=0.0) - sum(work.values()) - stat_s
    table.add("example suite", "part: the rest (collection, dispatch, spawns, warm-up rounds, report)", [rest], "s")
    info["parts"] = {"starts": starts, "work": work, "rounds": rounds, "statistics": stat_s, "rest": rest}


# --------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=os.path.join(HERE, "harness.json"), help="write results here")
    parser.add_argument("--markdown", help="also write the table as Markdown to this file")
    parser.add_argument("--skip-examples", action="store_true", help="leave out the example suite (minutes)")
    parser.add_argument("--skip-vm", action="store_true", help="leave out the VM")
    parser.add_argument("--skip-container-aa", action="store_true", help="leave out the container A/A")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--starts", type=int, default=10, help="starts of baremetal and container")
    parser.add_argument("--calls", type=int, default=2000, help="warm calls into baremetal and container")
    parser.add_argument("--vm-boots", type=int, default=5)
    parser.add_argument("--vm-cold-boots", type=int, default=2,
                        help="VM starts with snapshot=0 (a full boot each), for comparison")
    parser.add_argument("--skip-fresh", action="store_true",
                        help="leave out the VM's first start on a fresh machine (empty cache)")
    parser.add_argument("--vm-calls", type=int, default=300)
    parser.add_argument("--parallel-reps", type=int, default=3)
    parser.add_argument("--suite-reps", type=int, default=20, help="runs of the generated suite, each way")
    parser.add_argument("--import-reps", type=int, default=10)
    parser.add_argument("--aa-reps", type=int, default=3, help="A/A runs per round count")
    parser.add_argument("--render", metavar="JSON", help="measure nothing: show the table of an earlier run")
    parser.add_argument("--skip-cost", action="store_true", help="leave out the session cost (minutes)")
    sessioncost.add_arguments(parser)
    args = parser.parse_args()
    if args.render:
        return render(args.render, args.markdown)
    if args.quick:
        args.starts, args.calls, args.vm_boots, args.vm_calls, args.vm_cold_boots = 3, 300, 1, 50, 0
        args.parallel_reps, args.suite_reps, args.import_reps, args.aa_reps, args.reps = 1, 4, 3, 1, 1
    sections = [("start", starts_and_dispatch), ("start", parallel_start), ("plugin cost", plugin_cost),
                ("noise floor (A/A)", noise_floor)]
    if not args.skip_cost:
        sections += sessioncost.sections(args)
    if not args.skip_examples:
        sections.append(("example suite", example_suite))
    return run_sections(args, sections, command="benchmarks/harness.py")


def run_sections(args: argparse.Namespace, sections: list[tuple[str, Any]], command: str) -> int:
    """Measure ``sections`` ((name, function(table, data, args))), then print
    the machine header and the table, write the JSON and the Markdown."""
    random.seed(0)
    mach = common.machine()
    data: dict[str, Any] = {"version": 1, "machine": mach, "command": " ".join([".venv/bin/python", command,
                                                                                 *sys.argv[1:]])}
    t_all = time.perf_counter()
    ticks0 = common.cpu_ticks()
    table = Table()
    for section, measure in sections:
        # One section's failure (an environment, a broken run) is a row of
        # the table; the other sections are still measured and written.
        try:
            measure(table, data, args)
        except Exception as exc:  # noqa: BLE001
            log(f"{measure.__name__} failed: {exc}")
            data.setdefault("failures", {})[measure.__name__] = str(exc)
            table.add(section, f"{measure.__name__}: FAILED", None, "",
                      note=" ".join(str(exc).split())[:160])
    data["rows"] = table.rows
    data["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    ticks1 = common.cpu_ticks()
    total, steal = ticks1[0] - ticks0[0], ticks1[1] - ticks0[1]
    data["steal"] = {"ticks": steal, "of_ticks": total, "percent": round(100.0 * steal / total, 2) if total else None}
    data["seconds"] = time.perf_counter() - t_all
    vm_meta = next((r["metadata"] for k, r in data.get("envs", {}).items() if k.startswith("vm")), {})
    kvm = data.get("kvm")
    header = [
        f"machine   {mach['cpu_model']}, {mach['cores']} cores, kernel {mach['kernel']} ({mach['os']}), "
        f"{mach['python']}",
        f"load      {' '.join(map(str, mach['loadavg']))} at start, "
        f"{' '.join(map(str, data['loadavg_end']))} at end (1/5/15 min); {mach['date']}",
        f"steal     {data['steal']['percent']}% of CPU time during the run ({data['steal']['ticks']} of "
        f"{data['steal']['of_ticks']} ticks, /proc/stat)",
    ]
    if vm_meta:
        header.append(f"vm        accel {str(vm_meta.get('accel')).upper()} ({vm_meta.get('accel_reason')}); "
                      f"QEMU {vm_meta.get('qemu_version')}, guest kernel {vm_meta.get('guest_kernel_version')}, "
                      f"{vm_meta.get('vcpus')} vCPU, {vm_meta.get('memory_mb')} MiB, {vm_meta.get('boot_image')}")
    if kvm is not None and not kvm["works"]:
        header.append(f"kvm       unavailable here ({kvm['reason']})")
    header.append(f"command   {data['command']}")
    data["header"] = header
    text = "\n".join(header) + "\n\n" + table.text()
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(data, f, indent=1, default=str)
    print(f"\nJSON written to {args.json}")
    if args.markdown:
        write_markdown(args.markdown, data, table)
    return 0


def write_markdown(path: str, data: dict[str, Any], table: Table) -> None:
    """Write the table as the file's first section; later top-level
    sections of an existing file (``# Verdict calibration``, written by
    benchmarks/calibration.py) are kept."""
    kept = ""
    try:
        with open(path) as f:
            old = f.read()
        at = old.find("\n# ")
        kept = old[at:] if at >= 0 else ""
    except OSError:
        pass
    with open(path, "w") as f:
        f.write("# Harness performance on this machine\n\n"
                f"Measured by `{data['command']}` on {data['machine']['date']} "
                f"({data['seconds']:.0f} s). What each row means, the targets and what bounds the missed "
                "ones: docs/performance.md.\n\n"
                + "\n".join(f"    {h}" for h in data["header"]) + "\n\n" + table.markdown() + "\n" + kept)
    print(f"Markdown table written to {path}")


def render(json_path: str, markdown: str | None) -> int:
    """Print (and write as Markdown) the table of an earlier run's JSON."""
    with open(json_path) as f:
        data = json.load(f)
    table = Table()
    table.rows = data["rows"]
    print("\n".join(data["header"]) + "\n\n" + table.text())
    if markdown:
        write_markdown(markdown, data, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
