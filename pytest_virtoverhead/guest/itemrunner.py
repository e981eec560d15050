"""Runs collected pytest items inside the worker, on request.

The worker starts one in-process pytest session per host session with the
node ids it will be asked for. Once collected, :class:`ItemServer` takes over
pytest's run-test loop (as pytest-xdist's workers do) and runs an item each
time the host sends ``item``, so a test module is imported and collected once
however many rounds follow. The sample of a round is the call phase's wall
time, or the samples of pytest-benchmark's ``benchmark`` fixture when the
test used it. The reply carries pytest's own reports of a run that
failed, serialized (:mod:`.testreports`), and of a passing run only when the
host asks (``reports``: once per test, after its measured rounds, so that
serializing them never sits between a process's warm-up and its rounds).
"""

from __future__ import annotations

import gc
import os
from typing import Any, Callable, Protocol

import pytest

from ..wire import testreports
from ..wire.protocol import NO_REPLY
from . import noise, rusage
from .work import take_work


class Worker(Protocol):
    """What the item server needs of :class:`.worker.Worker`."""

    end_loop: bool

    def reply(self, msg_id: Any, result: Any) -> None: ...

    def serve(self, extra: dict[str, Callable[[dict], Any]] | None = None,
              until: str = "shutdown") -> dict | None: ...


def _longrepr_text(report: Any) -> str:
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip
        return str(longrepr[2])
    return str(longrepr)


def _benchmark_samples(item: pytest.Item) -> list[float] | None:
    funcargs = getattr(item, "funcargs", None) or {}
    fixture = funcargs.get("benchmark")
    stats = getattr(fixture, "stats", None)
    data = getattr(getattr(stats, "stats", None), "data", None)
    if not data:
        return None
    return [float(x) for x in data]


#: pytest-benchmark options that write or compare files, and their "off"
#: values. A worker process must not act on them when a user's ``addopts``
#: (or PYTEST_ADDOPTS) carries them: the host saves, once, with one entry
#: per environment (:mod:`.benchjson`); a worker's own file would hold its
#: raw runs and, saved after the host's, become the "latest" run that
#: ``--benchmark-compare`` reads. Timing options (``--benchmark-min-rounds``,
#: ``--benchmark-disable-gc``...) stay: they shape the worker's measurement.
BENCHMARK_HOST_ONLY: dict[str, Any] = {
    "benchmark_autosave": None,       # --benchmark-autosave
    "benchmark_save": None,           # --benchmark-save=NAME
    "benchmark_json": None,           # --benchmark-json=PATH
    "benchmark_compare": [],          # --benchmark-compare[=NUM]
    "benchmark_compare_fail": None,   # --benchmark-compare-fail=EXPR
    "benchmark_histogram": [],        # --benchmark-histogram[=PREFIX]: SVG files
    "benchmark_cprofile_dump": [],    # --benchmark-cprofile-dump[=PREFIX]: .prof files
}


def host_only_benchmark_options(option: Any) -> list[str]:
    """Turn off, on a worker's ``config.option``, the pytest-benchmark
    options only the host acts on; return the names that were on."""
    changed = []
    for name, off in BENCHMARK_HOST_ONLY.items():
        if hasattr(option, name) and getattr(option, name) not in (None, False, [], off):
            changed.append(name)
            setattr(option, name, off)
    return changed


class ItemServer:
    def __init__(self, worker: Worker, session_msg_id: Any, pin: list[int] | None = None):
        self.worker = worker
        self.session_msg_id = session_msg_id
        #: CPUs to move onto once collected (a process started elsewhere).
        self.pin = pin
        self.items: dict[str, pytest.Item] = {}
        self.collect_errors: list[dict[str, str]] = []
        self.started = False
        self.end_msg: dict | None = None
        self._reports: list[Any] = []
        self._warnings: list[Any] = []
        self._bench: list[float] | None = None
        #: Resource counters around each call phase (the "why" of a ratio).
        self._usage = rusage.CallCounters()

    # -- pytest hooks -------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        # Before pytest-benchmark's own pytest_configure (trylast) reads
        # the options into its session.
        host_only_benchmark_options(config.option)

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.collect_errors.append({"nodeid": report.nodeid, "longrepr": _longrepr_text(report)})

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = {item.nodeid: item for item in session.items}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        # The first full collection walks everything pytest and the test
        # modules made (~10 ms natively, ~0.5 s under TCG); made here, while
        # the processes start side by side on the spare CPUs, and the
        # survivors frozen, a round's collection request walks only what the
        # calls since left.
        gc.collect()
        gc.freeze()
        if self.pin:
            try:
                os.sched_setaffinity(0, self.pin)
            except OSError as exc:
                raise RuntimeError(f"cannot move onto the measuring CPUs {self.pin}: {exc}") from None
        self.started = True
        self.worker.reply(self.session_msg_id, {
            "collected": list(self.items),
            "collect_errors": self.collect_errors,
        })
        self.end_msg = self.worker.serve({"item": self.handle_item}, until="end_session")
        return True

    def pytest_runtest_logreport(self, report: Any) -> None:
        self._reports.append(report)

    def pytest_warning_recorded(self, warning_message: Any, when: str) -> None:
        if when == "runtest":
            self._warnings.append(warning_message)

    # Resource counters from the end of setup to the call's report: around
    # the call phase pytest times, with the reading itself outside it.
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item):
        result = yield
        self._usage.start()
        return result

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: Any) -> None:
        if call.when == "call":
            self._usage.stop()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        try:
            return (yield)
        finally:
            self._bench = _benchmark_samples(item)

    # -- requests -----------------------------------------------------------

    def _outcome(self) -> tuple[str, str, float | None]:
        """(outcome, text, call duration) of the reports of one run, as
        plain pytest would show it: xfailed and xpassed included."""
        outcome, longrepr, duration = "passed", "", None
        for rep in self._reports:
            if rep.when == "call":
                duration = rep.duration
            wasxfail = getattr(rep, "wasxfail", None)
            if rep.failed:
                return "failed", f"[{rep.when}] {_longrepr_text(rep)}", duration
            if rep.skipped and wasxfail is not None:
                outcome, longrepr = "xfailed", str(wasxfail)
            elif rep.skipped and outcome == "passed":
                outcome, longrepr = "skipped", _longrepr_text(rep)
            elif rep.passed and rep.when == "call" and wasxfail is not None and outcome == "passed":
                outcome, longrepr = "xpassed", str(wasxfail)
        return outcome, longrepr, duration

    def handle_item(self, msg: dict) -> dict[str, Any]:
        """Run the item ``calls`` times (default 1): one round's share of
        this environment. The round's value is the median call time, or for
        a test using pytest-benchmark's fixture the median of its samples;
        the raw samples sent back are capped (``RAW_CAP``) so a round of a
        million samples stays small."""
        nodeid = msg["nodeid"]
        item = self.items.get(nodeid)
        if item is None:
            raise LookupError(
                f"{nodeid} was not collected in this environment "
                f"(collected: {len(self.items)} item(s); errors: "
                f"{[e['nodeid'] for e in self.collect_errors]})"
            )
        calls = max(1, int(msg.get("calls") or 1))
        bench_session = getattr(item.config, "_benchmarksession", None)
        untimed = bool(msg.get("untimed")) and bench_session is not None and _uses_benchmark(item)
        if untimed:
            # A warm-up or reporting run of a pytest-benchmark test: its
            # function runs once (the fixture's own "disabled" mode), not a
            # whole calibrated benchmark whose samples nobody reads.
            was, bench_session.disabled = bench_session.disabled, True
            try:
                out = self._run_calls(item, msg, calls)
            finally:
                bench_session.disabled = was
            out["source"] = "benchmark"
            return out
        return self._run_calls(item, msg, calls)

    def _run_calls(self, item: pytest.Item, msg: dict, calls: int) -> dict[str, Any]:
        durations: list[float] = []
        bench: list[float] = []
        work = None
        call_seconds = 0.0
        before = noise.snapshot()
        self._usage = rusage.CallCounters()
        for _ in range(calls):
            self._reports, self._warnings = [], []
            self._bench = None
            take_work()
            if msg.get("gc", True):
                gc.collect()
            try:
                _leave_others(item)
                item.config.hook.pytest_runtest_protocol(item=item, nextitem=item.parent)
            except (KeyboardInterrupt, pytest.exit.Exception) as exc:
                # pytest lets these end the session; here they end this
                # worker process's session only, answered at once.
                self.worker.end_loop = True
                what = "pytest.exit()" if isinstance(exc, pytest.exit.Exception) else type(exc).__name__
                return {"outcome": "failed", "fatal": True, "pid": os.getpid(),
                        "longrepr": f"the test raised {what}: {exc}".rstrip(": ")
                                    + " (this worker process was ended; the next test gets a new one)"}
            outcome, longrepr, duration = self._outcome()
            if outcome not in ("passed", "xpassed"):
                return {"outcome": outcome, "longrepr": testreports.bound_text(longrepr), "pid": os.getpid(),
                        "reports": testreports.dump(item.config, self._reports, self._warnings)}
            call_seconds += duration or 0.0
            work = take_work() or work
            if self._bench:
                bench.extend(self._bench)
            elif duration is not None:
                durations.append(duration)
        out: dict[str, Any] = {"outcome": outcome, "longrepr": longrepr, "work": work, "pid": os.getpid(),
                               "noise": noise.since(before), "calls": calls, "call_seconds": call_seconds,
                               "resources": self._usage.per_call()}
        if bench:
            ordered = sorted(bench)
            out.update(source="benchmark", value=_median_sorted(ordered), n_samples=len(bench),
                       raw=_thin(bench, RAW_CAP), min=ordered[0], max=ordered[-1])
        else:
            out.update(source="call", value=_median_sorted(sorted(durations)) if durations else None,
                       n_samples=len(durations), raw=durations)
        out["duration"] = out["value"]
        if msg.get("reports"):
            out["reports"] = testreports.dump(item.config, self._reports, self._warnings)
        return out


def _uses_benchmark(item: pytest.Item) -> bool:
    return "benchmark" in getattr(item, "fixturenames", ())


def _leave_others(item: pytest.Item) -> None:
    """Tear down what the item's chain does not share with the last one run
    here (another module's, another class's fixtures), as pytest's own loop
    does with ``nextitem`` at the end of the previous item.

    Each call runs the item with ``nextitem=item.parent``: its function
    fixtures end after the call, while session, package, module and class
    fixtures stay set up for the next call, the next round and the next
    test in this worker process, as in a plain pytest run of the same
    tests (a session fixture is set up once per worker process); pytest
    ends them when the process's session ends."""
    state = getattr(item.session, "_setupstate", None)
    if state is not None:
        state.teardown_exact(item)


#: Raw samples sent back per round at most (evenly spaced in time order).
RAW_CAP = 200


def _median_sorted(xs: list[float]) -> float:
    n = len(xs)
    mid = n // 2
    return xs[mid] if n % 2 else (xs[mid - 1] + xs[mid]) / 2


def _thin(xs: list[float], cap: int) -> list[float]:
    if len(xs) <= cap:
        return list(xs)
    step = len(xs) / cap
    return [xs[int(i * step)] for i in range(cap)]


def run_session(worker: Worker, msg: dict) -> Any:
    """Handle ``session``: collect, then serve items until ``end_session``."""
    rootdir = msg.get("rootdir")
    if rootdir:
        os.chdir(rootdir)
    server = ItemServer(worker, msg.get("id"), pin=msg.get("pin"))
    args = ["-q", "-p", "no:cacheprovider", *msg.get("args", []), *msg["nodeids"]]
    exitcode = pytest.main(args, plugins=[server])
    if not server.started:
        raise RuntimeError(
            f"pytest in the environment stopped before running tests (exit code {int(exitcode)}); "
            f"collection errors: {server.collect_errors or 'none reported (see the worker log)'}"
        )
    if server.end_msg is not None:
        worker.reply(server.end_msg.get("id"), {"exitcode": int(exitcode)})
    return NO_REPLY
