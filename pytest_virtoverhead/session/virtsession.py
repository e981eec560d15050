"""The plugin's session: one object, registered as a pytest plugin
("virtoverhead-session") by :func:`.state.activate` only when the plugin is
in use, that holds the session's state and whose methods are its hooks:
collection, running a compared test in every environment, the CPU lock of
fixture sessions, the summary and the result files.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
import time
import uuid
import warnings
from typing import TYPE_CHECKING, Any, Callable

import pytest

from ..envs.base import RunContext
from ..fsutil import default_cache_dir
from ..render import benchjson
from ..results import ItemResult, record_of
from ..wire import testreports
from . import benchargs, judging
from .config import ItemPlan, Settings, plan_for_marker
from .finish import finish_footprint, verdict_method, write_outputs
from .pool import EnvironmentPool
from .progress import Progress
from .rounds import Comparator
from .selection import check_waivers, duplicate_waivers, groups_of, plan, selected, shadowed_fixtures
from .stash import ENV_FIXTURES, ITEM_KEY, MARKER
from .summary import header_line, write_summary
from .verdicts import bonferroni_confidence, outcome_of

if TYPE_CHECKING:
    from ..judge.runclaims import RunClaim
    from .hostlock import CpuLocks
    from .scaleout import Controller


class VirtSession:
    """The plugin's per-session state and hooks (a plugin object, as
    pytest-xdist's DSession and pytest-benchmark's BenchmarkSession)."""

    def __init__(self, config: pytest.Config, settings: Settings):
        self.config = config
        #: Frozen; replaced (dataclasses.replace) when the session learns its
        #: CPUs (:meth:`lock_cpus`) or an xdist worker its CPU and seed.
        self.settings = settings
        cache = config.getini("virt_cache_dir") or default_cache_dir()
        self.ctx = RunContext(session_id=uuid.uuid4().hex[:12], rootdir=str(config.rootpath), cpus=settings.cpus,
                              memory_mb=settings.memory_mb, cache_dir=str(cache), job_timeout=settings.timeout)
        self.pool = EnvironmentPool(settings, self.ctx)
        self.results: list[ItemResult] = []
        self.compared: tuple[str, ...] = ()
        self.comparator: Comparator | None = None
        self.progress: Progress | None = None
        self.stopped = False
        #: What the summary says about --virt-json/--virt-report, and which failed.
        self.output_notes: list[str] = []
        self.output_failures: list[str] = []
        #: This session's CPU locks, taken before measuring.
        self.cpu_locks: CpuLocks | None = None
        #: Whether CPUs were chosen (the environments are pinned to them): a
        #: fixture session takes the same ones again for each test that uses
        #: an environment (see :meth:`unlock_cpus`).
        self.cpus_chosen = False
        #: --virt-select compiled (pytest's -k Expression), or None.
        self.select: Any = None
        #: Group entries of the run's claims ``EXPR: CLAIM``: [(RunClaim, compiled EXPR)].
        self.groups: list[tuple[RunClaim, Any]] = []
        #: Under --virt-correction=holm: compared tests measured but not yet
        #: reported, [(item, result, start, stop)] (the correction needs
        #: every claim of the run); and the verdict method once decided.
        self.deferred: list[tuple[pytest.Item, ItemResult, float, float]] = []
        self.method: dict[str, Any] | None = None
        #: Test ids deselected by -k / -m (a scoped ini waiver may be for one).
        self.deselected: list[str] = []
        #: Footprint claims (to judge, skipped) and the environments'
        #: footprint report once the run ends.
        self.footprint_claims: tuple[list[Any], list[Any]] = ([], [])
        self.footprint: dict[str, Any] | None = None
        #: --virt-explain's ablation report, once assembled (finish.explained).
        self.explain: dict[str, Any] | None = None
        #: Under pytest-xdist: the controller's side, and on a worker under
        #: holm, the other workers' claims' p-values.
        self.controller: Controller | None = None
        self.peers: Callable[[], Any] | None = None
        #: On an xdist worker whose CPU stayed taken: why its tests fail.
        self.cpu_refusal: str | None = None

    def metadata(self) -> dict[str, dict[str, Any]]:
        """The environments' metadata: the pool's, or on an xdist
        controller (which starts none) what its workers' environments said."""
        if self.controller is not None and self.controller.metadata:
            return {**self.pool.metadata(), **self.controller.metadata}
        return self.pool.metadata()

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            try:
                self.pool.stop_all()
            finally:
                if self.cpu_locks is not None:
                    self.cpu_locks.release()

    def use_cpus(self, cpus: tuple[int, ...] | None, **changes: Any) -> None:
        """The session measures on ``cpus`` (and other settings ``changes``)."""
        self.settings = dataclasses.replace(self.settings, cpus=cpus, **changes)
        self.ctx.cpus = cpus

    def lock_cpus(self, say: Callable[[str], Any]) -> None:
        """Hold this session's CPUs against other measuring sessions on the
        host (waiting, or taking another CPU under --virt-cpus=auto);
        hostlock.CpuBusy when they stay taken. Once per session."""
        if self.cpu_locks is not None:
            return
        from . import hostlock

        locks = hostlock.CpuLocks()
        s = self.settings
        cpus = hostlock.acquire(locks, s.cpus, auto=s.cpus_auto and not self.cpus_chosen,
                                available=os.sched_getaffinity(0), wait=s.cpu_wait,
                                info=hostlock.session_info(self.ctx.session_id, self.ctx.rootdir), say=say)
        self.cpu_locks = locks
        self.cpus_chosen = True
        self.use_cpus(cpus)

    def start_cpus(self) -> tuple[int, ...] | None:
        """Where worker processes may start before they move onto the
        measuring CPUs: this session's CPUs and those no other measuring
        session holds now (None when that adds nothing)."""
        if self.cpu_locks is None or not self.ctx.cpus:
            return None
        spare = self.cpu_locks.spare(os.sched_getaffinity(0))
        return spare if set(spare) - set(self.ctx.cpus) else None

    def unlock_cpus(self) -> None:
        """Between the tests of a fixture session: let other measuring
        sessions have the CPUs while no test of this one uses an environment
        (the started environments stay up, idle). A --virt-compare session
        keeps them to the end."""
        if self.cpu_locks is not None and not self.settings.compare:
            self.cpu_locks.release()
            self.cpu_locks = None

    def stop_quietly(self) -> None:
        try:
            self.stop()
        except Exception as exc:  # noqa: BLE001 - at exit, say it and go on
            sys.stderr.write(f"pytest-virtoverhead: {exc}\n")
        except KeyboardInterrupt:  # a third Ctrl-C while stopping: leave at once
            sys.stderr.write("pytest-virtoverhead: interrupted while stopping environments: what is left is "
                             "removed by the next session's reaper\n")

    def lock_cpus_or_refuse(self) -> None:
        """Before anything is measured: this session's CPUs, or a usage error
        naming the session that holds them."""
        from .hostlock import CpuBusy

        tr = self.config.pluginmanager.get_plugin("terminalreporter")

        def say(msg: str) -> None:
            if tr is not None:
                tr.write_line(msg, yellow=True)
            else:
                sys.stderr.write(msg + "\n")

        try:
            self.lock_cpus(say)
        except CpuBusy as exc:
            if self.controller is None and hasattr(self.config, "workerinput"):
                # An xdist worker: a usage error here would stall the controller
                # (it waits for this worker's collection); each compared test
                # fails with the reason instead.
                self.cpu_refusal = str(exc)
                return
            raise pytest.UsageError(str(exc)) from None

    def lock_cpus_or_skip(self) -> None:
        """A fixture session's CPUs, or skip the test naming their holder."""
        if self.cpu_locks is None:
            from .hostlock import CpuBusy

            try:
                self.lock_cpus(lambda msg: sys.stderr.write(msg + "\n"))
            except CpuBusy as exc:
                pytest.skip(str(exc))

    # The hooks.

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.stop_quietly()

    def pytest_report_header(self, config: pytest.Config) -> list[str] | None:
        if not self.settings.compare:
            return None
        return [header_line(self.settings, self.controller.header() if self.controller is not None else None)]

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected.extend(item.nodeid for item in items)

    @pytest.hookimpl(trylast=True)  # after -k/-m deselection: deselected tests' markers are not read
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        used: set[Any] = set()
        picked = 0
        for item in items:
            if item.get_closest_marker(MARKER) is not None:
                groups = groups_of(item, self.groups)
                item.stash[ITEM_KEY] = plan(item, self.settings, groups)
                used.update(groups)
            elif selected(item, self.select):
                # As if marked @pytest.mark.virt(): the run's claims, every
                # environment, --virt-rounds.
                groups = groups_of(item, self.groups)
                try:
                    item.stash[ITEM_KEY] = plan_for_marker(item.nodeid, (), {}, self.settings, groups)
                except ValueError as exc:
                    raise pytest.UsageError(str(exc)) from None
                used.update(groups)
                picked += 1
        check_waivers(self, items)
        for message in duplicate_waivers(items):
            warnings.warn(pytest.PytestConfigWarning(message), stacklevel=1)
        if self.settings.compare:
            self._warn_unused(used, picked, items)

    def _warn_unused(self, used: set[Any], picked: int, items: list[pytest.Item]) -> None:
        for rc, _ in self.groups:
            if rc not in used:
                hint = ("-k expressions match test names and keywords, not node ids: write the test's name "
                        "or its file's stem, e.g. 'test_x and test_a'; " if "::" in rc.expr or "/" in rc.expr else "")
                warnings.warn(pytest.PytestConfigWarning(
                    f"{rc.source}: the group '{rc.expr}' matches no compared test of this run, so its claim "
                    f"'{rc.claim.text}' is not checked ({hint}a group chooses among the compared tests: those "
                    "marked @pytest.mark.virt and those --virt-select picks)"), stacklevel=1)
        if self.select is not None and not picked and items:
            warnings.warn(pytest.PytestConfigWarning(
                f"--virt-select {self.settings.select!r} matches no unmarked test of this run, so it compares "
                "nothing more (it is a -k expression over the collected tests' names and keywords)"), stacklevel=1)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for message in shadowed_fixtures(session.items):
            warnings.warn(pytest.PytestConfigWarning(message), stacklevel=1)
        if not self.settings.compare:
            return
        config = session.config
        self.compared = tuple(item.nodeid for item in session.items if ITEM_KEY in item.stash)
        if self.compared and not config.option.collectonly:
            self.lock_cpus_or_refuse()
        args: list[str] = []
        if config.inipath:
            args += ["-c", str(config.inipath)]
        args += ["--rootdir", str(config.rootpath), f"--import-mode={config.option.importmode}"]
        args += testreports.worker_args(config)
        # PYTEST_ADDOPTS first, then the command line, as pytest reads them.
        addopts = shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
        args += benchargs.timing_args([*addopts, *config.invocation_params.args])
        self.progress = Progress(config.pluginmanager.get_plugin("terminalreporter"))
        self.comparator = Comparator(self.settings, self.pool, self.compared, tuple(args), self.progress)
        self.comparator.start_cpus = self.start_cpus
        if self.settings.correction == "holm":
            planned = sum(len(item.stash[ITEM_KEY].claims) for item in session.items if ITEM_KEY in item.stash)
            self.comparator.adaptive_confidence = bonferroni_confidence(self.settings.confidence, planned)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        if not self.settings.compare or ITEM_KEY not in item.stash or self.comparator is None:
            return None
        plan_: ItemPlan = item.stash[ITEM_KEY]
        ihook = item.ihook
        deferred = self.settings.correction == "holm"
        if not deferred:
            ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        start = time.time()
        try:
            if self.progress is not None:
                self.progress.begin(item.nodeid)
            result = self._measure(item.nodeid, plan_, self.comparator)
        finally:
            if self.progress is not None:
                self.progress.end()
        self.results.append(result)
        if deferred:
            self.deferred.append((item, result, start, time.time()))
            if len(self.results) >= len(self.compared):
                self._report_deferred()
            return True
        benchjson.add_entries(item.config, record_of(result), result.baseline, self.metadata())
        self._log_reports(item, result, start, time.time())
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def _measure(self, nodeid: str, plan_: ItemPlan, comparator: Comparator) -> ItemResult:
        baseline = self.settings.baseline
        if self.cpu_refusal:
            result = ItemResult(nodeid=nodeid, envs=list(plan_.envs), baseline=baseline)
            result.failure = ("host", f"not measured: {self.cpu_refusal}")
        elif plan_.absent_envs and plan_.envs == [baseline]:
            # Every environment the marker asks for is absent from this run.
            result = ItemResult(nodeid=nodeid, envs=list(plan_.envs), baseline=baseline)
            result.skipped = (plan_.absent_envs[0], "no environment to compare with: "
                              + "; ".join(f"{n}: not in this run" for n in plan_.absent_envs))
        else:
            result = comparator.run(nodeid, plan_.envs, plan_.claims, plan_.rounds)
        result.claims = list(judging.judge(result, plan_, judging.context(self.settings, self.pool.metadata())))
        return result

    def _report_deferred(self) -> None:
        """Under --virt-correction=holm: correct the verdicts over every claim
        measured, then report the compared tests kept back, in their order."""
        verdict_method(self)
        deferred, self.deferred = self.deferred, []
        from .scaleout import reporting

        for item, result, start, stop in deferred:
            benchjson.add_entries(item.config, record_of(result), result.baseline, self.metadata())
            with reporting(item):
                item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
                self._log_reports(item, result, start, stop)
                item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        """Under --virt-correction=holm, a loop that stopped before the last
        compared test (-x, --maxfail) still reports those it measured."""
        outcome = yield
        excinfo = outcome.excinfo
        # An xdist worker under holm meets the others here (self.peers) even
        # with no test of its own kept back: every worker counts its claims.
        if (self.deferred or self.peers is not None) and (
                excinfo is None or isinstance(excinfo[1], (session.Interrupted, session.Failed))):
            self._report_deferred()

    def _log_reports(self, item: pytest.Item, result: ItemResult, start: float, stop: float) -> None:
        """Report a compared test to pytest (terminal, junitxml...): the reports
        of its run in an environment, with the plugin's outcome settled on them."""
        for name, (ratio, ci) in result.ratios.items():
            item.user_properties.append((f"virt_ratio_{name}", f"{ratio:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]"))
        s = self.settings
        missing = [f"{name}: {reason}" for name, reason in result.unavailable.items()
                   if s.required(self.pool.spec_for(name))]
        end = outcome_of(result, strict=s.strict, gate=s.gate, required_missing=missing)
        testreports.log(item, end, result.reports, start, stop)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """A fixture session holds its CPUs only while a test that uses an
        environment runs: taken again here (the same CPUs), let go after the
        test's teardown, so a long suite does not block other measuring sessions
        on the host (nor a pytester session inside it) between those tests."""
        if self.cpus_chosen and not self.settings.compare and ENV_FIXTURES & set(getattr(item, "fixturenames", ())):
            self.lock_cpus_or_skip()

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        self.unlock_cpus()

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        if not self.settings.compare or exitstatus == pytest.ExitCode.USAGE_ERROR:
            return  # on a usage error pytest prints it; there is no comparison to show
        write_summary(self, terminalreporter)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        try:
            if self.settings.compare:
                self.finish_outputs(session, exitstatus)
        finally:
            self.stop_quietly()
            if self.controller is not None:
                self.controller.close()

    def finish_outputs(self, session: pytest.Session, exitstatus: int) -> None:
        """The footprint and result files; an xdist worker sends its results to
        the controller instead, which writes them for the whole run."""
        from . import scaleout

        if scaleout.is_worker(session.config):
            finish_footprint(session, self)
            scaleout.send(session.config, self)
            return
        if self.controller is not None:
            self.footprint = self.controller.footprint()
            if self.output_failures and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        else:
            try:
                finish_footprint(session, self)
            except KeyboardInterrupt:
                # A second Ctrl-C while the footprint's last readings are taken
                # (requests to the environments): the results are still written.
                self.output_notes.append("virtoverhead: interrupted while reading the environments' footprint: "
                                         "the footprint section is left out, the results are written")
        write_outputs(session, self, exitstatus)
