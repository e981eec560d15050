"""The session's hooks: collection, running a compared test in every
environment, the CPU lock of fixture sessions, the summary and the result
files. Registered by :func:`.state.activate` only when the plugin is in
use, so a run without it pays for none of them.
"""

from __future__ import annotations

import os
import shlex
import time
import warnings
from typing import Any

import pytest

from . import benchargs, benchjson, judging, testreports
from .config import ItemPlan, plan_for_marker
from .finish import explained, finish_footprint, verdict_method, write_outputs
from .progress import Progress
from .report import claim_lines, environment_lines, host_line, table_lines
from .results import ItemResult, record_of
from .rounds import Comparator
from .selection import check_waivers, duplicate_waivers, groups_of, plan, selected, shadowed_fixtures
from .stash import ENV_FIXTURES, ITEM_KEY, MARKER, STATE_KEY
from .state import VirtState, lock_cpus, lock_cpus_or_skip, stop_quietly
from .textfmt import method_line
from .verdicts import bonferroni_confidence, outcome_of


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE_KEY, None)
    if state is not None:
        stop_quietly(state)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(STATE_KEY, None)
    if state is None or not state.settings.compare:
        return None
    s = state.settings
    cpus = ",".join(map(str, s.cpus)) if s.cpus else "all"
    if state.controller is not None:
        cpus = f"one per xdist worker ({state.controller.header()})"
    return [f"virtoverhead: envs={','.join(f'{sp.name}={sp.kind}' if sp.name != sp.kind else sp.name for sp in s.specs)} "
            f"baseline={s.baseline} rounds={s.rounds} processes={s.processes or 'auto'} calls={s.calls or 'auto'} "
            f"warmup={s.warmup} confidence={s.confidence:g}"
            f"{' correction=' + s.correction if s.correction != 'none' else ''} seed={s.seed} cpus={cpus} "
            f"memory={s.memory_mb}MiB (repeat with --virt-seed={s.seed})"]


def pytest_deselected(items: list[pytest.Item]) -> None:
    if not items:
        return
    state = items[0].config.stash.get(STATE_KEY, None)
    if state is not None:
        state.deselected.extend(item.nodeid for item in items)


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: deselected tests' markers are not read
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash.get(STATE_KEY, None)
    if state is None:
        return
    used: set[Any] = set()
    picked = 0
    for item in items:
        if item.get_closest_marker(MARKER) is not None:
            groups = groups_of(item, state.groups)
            item.stash[ITEM_KEY] = plan(item, state.settings, groups)
            used.update(groups)
        elif selected(item, state.select):
            # As if marked @pytest.mark.virt(): the run's claims, every
            # environment, --virt-rounds.
            groups = groups_of(item, state.groups)
            try:
                item.stash[ITEM_KEY] = plan_for_marker(item.nodeid, (), {}, state.settings, groups)
            except ValueError as exc:
                raise pytest.UsageError(str(exc)) from None
            used.update(groups)
            picked += 1
    check_waivers(state, items)
    for message in duplicate_waivers(items):
        warnings.warn(pytest.PytestConfigWarning(message), stacklevel=1)
    if state.settings.compare:
        for rc, _ in state.groups:
            if rc not in used:
                hint = ("-k expressions match test names and keywords, not node ids: write the test's name "
                        "or its file's stem, e.g. 'test_x and test_a'; " if "::" in rc.expr or "/" in rc.expr else "")
                warnings.warn(pytest.PytestConfigWarning(
                    f"{rc.source}: the group '{rc.expr}' matches no compared test of this run, so its claim "
                    f"'{rc.claim.text}' is not checked ({hint}a group chooses among the compared tests: those "
                    "marked @pytest.mark.virt and those --virt-select picks)"), stacklevel=1)
        if state.select is not None and not picked and items:
            warnings.warn(pytest.PytestConfigWarning(
                f"--virt-select {state.settings.select!r} matches no unmarked test of this run, so it compares "
                "nothing more (it is a -k expression over the collected tests' names and keywords)"), stacklevel=1)


def pytest_collection_finish(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE_KEY, None)
    if state is None:
        return
    for message in shadowed_fixtures(session.items):
        warnings.warn(pytest.PytestConfigWarning(message), stacklevel=1)
    if not state.settings.compare:
        return
    state.compared = tuple(item.nodeid for item in session.items if ITEM_KEY in item.stash)
    if state.compared and not session.config.option.collectonly:
        lock_cpus(session.config, state)
    args: list[str] = []
    if session.config.inipath:
        args += ["-c", str(session.config.inipath)]
    args += ["--rootdir", str(session.config.rootpath),
             f"--import-mode={session.config.option.importmode}"]
    args += testreports.worker_args(session.config)
    # PYTEST_ADDOPTS first, then the command line, as pytest reads them.
    addopts = shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    args += benchargs.timing_args([*addopts, *session.config.invocation_params.args])
    state.progress = Progress(session.config.pluginmanager.get_plugin("terminalreporter"))
    state.comparator = Comparator(state.settings, state.pool, state.compared, tuple(args), state.progress)
    state.comparator.start_cpus = state.start_cpus
    if state.settings.correction == "holm":
        planned = sum(len(item.stash[ITEM_KEY].claims) for item in session.items if ITEM_KEY in item.stash)
        state.comparator.adaptive_confidence = bonferroni_confidence(state.settings.confidence, planned)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    state = item.config.stash.get(STATE_KEY, None)
    if state is None or not state.settings.compare or ITEM_KEY not in item.stash or state.comparator is None:
        return None
    plan: ItemPlan = item.stash[ITEM_KEY]
    ihook = item.ihook
    deferred = state.settings.correction == "holm"
    if not deferred:
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    start = time.time()
    progress = state.progress
    try:
        if progress is not None:
            progress.begin(item.nodeid)
        if state.cpu_refusal:
            result = ItemResult(nodeid=item.nodeid, envs=list(plan.envs), baseline=state.settings.baseline)
            result.failure = ("host", f"not measured: {state.cpu_refusal}")
        elif plan.absent_envs and plan.envs == [state.settings.baseline]:
            # Every environment the marker asks for is absent from this run.
            result = ItemResult(nodeid=item.nodeid, envs=list(plan.envs), baseline=state.settings.baseline)
            result.skipped = (plan.absent_envs[0], "no environment to compare with: "
                              + "; ".join(f"{n}: not in this run" for n in plan.absent_envs))
        else:
            result = state.comparator.run(item.nodeid, plan.envs, plan.claims, plan.rounds)
        result.claims = list(judging.judge(result, plan, judging.context(state.settings, state.pool.metadata())))
    finally:
        if progress is not None:
            progress.end()
    state.results.append(result)
    if deferred:
        state.deferred.append((item, result, start, time.time()))
        if len(state.results) >= len(state.compared):
            _report_deferred(state)
        return True
    benchjson.add_entries(item.config, record_of(result), result.baseline, state.metadata())
    stop = time.time()
    _log_reports(item, state, result, start, stop)
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _report_deferred(state: VirtState) -> None:
    """Under --virt-correction=holm: correct the verdicts over every claim
    measured, then report the compared tests kept back, in their order."""
    verdict_method(state)
    deferred, state.deferred = state.deferred, []
    from .scaleout import reporting

    for item, result, start, stop in deferred:
        benchjson.add_entries(item.config, record_of(result), result.baseline, state.metadata())
        with reporting(item):
            item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
            _log_reports(item, state, result, start, stop)
            item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Any:
    """Under --virt-correction=holm, a loop that stopped before the last
    compared test (-x, --maxfail) still reports those it measured."""
    outcome = yield
    state = session.config.stash.get(STATE_KEY, None)
    excinfo = outcome.excinfo
    # An xdist worker under holm meets the others here (state.peers) even
    # with no test of its own kept back: every worker counts its claims.
    if state is not None and (state.deferred or state.peers is not None) and (
            excinfo is None or isinstance(excinfo[1], (session.Interrupted, session.Failed))):
        _report_deferred(state)


def _required_missing(state: VirtState, result: ItemResult) -> list[str]:
    return [f"{name}: {reason}" for name, reason in result.unavailable.items()
            if state.settings.required(state.pool.spec_for(name))]


def _log_reports(item: pytest.Item, state: VirtState, result: ItemResult, start: float, stop: float) -> None:
    """Report a compared test to pytest (terminal, junitxml...): the reports
    of its run in an environment, with the plugin's outcome settled on them."""
    for name, (ratio, ci) in result.ratios.items():
        item.user_properties.append((f"virt_ratio_{name}", f"{ratio:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]"))
    end = outcome_of(result, strict=state.settings.strict, gate=state.settings.gate,
                     required_missing=_required_missing(state, result))
    testreports.log(item, end, result.reports, start, stop)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A fixture session holds its CPUs only while a test that uses an
    environment runs: taken again here (the same CPUs), let go after the
    test's teardown, so a long suite does not block other measuring sessions
    on the host (nor a pytester session inside it) between those tests."""
    state = item.config.stash.get(STATE_KEY, None)
    if state is not None and state.cpus_chosen and not state.settings.compare \
            and ENV_FIXTURES & set(getattr(item, "fixturenames", ())):
        lock_cpus_or_skip(state)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    state = item.config.stash.get(STATE_KEY, None)
    if state is not None:
        state.unlock_cpus()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE_KEY, None)
    if state is None or not state.settings.compare:
        return
    if exitstatus == pytest.ExitCode.USAGE_ERROR:
        return  # pytest prints the usage error; there is no comparison to show
    tr = terminalreporter
    s = state.settings
    gate = "" if s.gate else ", findings only: claims do not fail tests"
    tr.write_sep("=", f"virtoverhead: comparison (baseline {s.baseline}, seed {s.seed}{gate})")
    if not state.results:
        tr.write_line("no test marked @pytest.mark.virt was run" + (
            f" and none matched --virt-select={s.select!r}" if s.select else ""))
        for line in state.output_notes:
            tr.write_line(line)
        return
    metadata = state.metadata()
    host = host_line(metadata)
    if host:
        tr.write_line(host)
    for line in table_lines(state.results, metadata, s.confidence):
        tr.write_line(line)
    method = verdict_method(state)
    lines = claim_lines(state.results, s.strict)
    if lines:
        tr.write_line("")
        tr.write_line("claims:")
        for line in lines:
            tr.write_line("  " + line)
        tr.write_line(method_line(method))
    explain = explained(state).get("explain")
    if explain is not None:
        from .explain import explain_lines

        tr.write_line("")
        tr.write_line("explain (--virt-explain: ablations remove one mechanism each):")
        for line in explain_lines(explain) or ["no ablation measured (no container environment in the run)"]:
            tr.write_line("  " + line)
    if s.time_budget:
        tr.write_line("")
        tr.write_line(f"adaptive sampling (--virt-time-budget={s.time_budget:g} s per test):")
        for res in state.results:
            tr.write_line(f"  {res.nodeid}: {res.rounds} rounds, stopped: {res.stopped_by or 'not measured'}")
    tr.write_line("")
    tr.write_line("environments:")
    for line in environment_lines(metadata):
        tr.write_line("  " + line)
    if state.footprint:
        from .report import footprint_lines

        tr.write_line("")
        tr.write_line("footprint (what each environment holds on the host; [source]):")
        for line in footprint_lines(state.footprint, metadata):
            tr.write_line("  " + line)
    if state.pool.reaped:
        tr.write_line(f"  removed leftovers of earlier sessions: {', '.join(state.pool.reaped)}")
    for line in state.output_notes:
        tr.write_line(line)
    for line in state.output_failures:
        tr.write_line(line, red=True, bold=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(STATE_KEY, None)
    if state is None:
        return
    try:
        if state.settings.compare:
            finish_outputs(session, state, exitstatus)
    finally:
        stop_quietly(state)
        if state.controller is not None:
            state.controller.close()


def finish_outputs(session: pytest.Session, state: VirtState, exitstatus: int) -> None:
    """The footprint and result files; an xdist worker sends its results to
    the controller instead, which writes them for the whole run."""
    from . import scaleout

    if scaleout.is_worker(session.config):
        finish_footprint(session, state)
        scaleout.send(session.config, state)
        return
    if state.controller is not None:
        state.footprint = state.controller.footprint()
        if state.output_failures and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        try:
            finish_footprint(session, state)
        except KeyboardInterrupt:
            # A second Ctrl-C while the footprint's last readings are taken
            # (requests to the environments): the results are still written.
            state.output_notes.append("virtoverhead: interrupted while reading the environments' footprint: "
                                      "the footprint section is left out, the results are written")
    write_outputs(session, state, exitstatus)
