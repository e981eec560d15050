"""pytest glue: options, the ``virt`` marker, fixtures and hooks.

The work is done elsewhere: :mod:`.config` parses options, :mod:`.session`
runs environments and rounds, :mod:`.claims` and :mod:`.stats` judge,
:mod:`.report` shows.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
import uuid
import warnings
from typing import TYPE_CHECKING, Any

import pytest

from .envvars import WORKER_ENV_VAR

if TYPE_CHECKING:
    from .config import ItemPlan, Settings
    from .results import ItemResult

#: For the help text: the environment kinds, the default of --virt-envs and
#: the report's install hint, literal so that registering the options
#: imports nothing (tests/test_plugin_import.py checks them against envs,
#: config and htmlreport).
HELP_KINDS = "baremetal, container, vm"
HELP_DEFAULT_ENVS = "baremetal,container,vm"
HELP_REPORT_INSTALL = "pip install pytest-virtoverhead[report]"


def _load() -> None:
    """Import the rest of the plugin (settings, claims, sessions, reports,
    the environments) into this module's globals.

    Not at import: pytest imports this module in every run of every project
    where the plugin is installed, and a run without ``--virt-compare``, any
    ``--virt-*`` option or ini key, or a virt fixture needs none of it
    (``_wanted``, ``_state``). Registering options, the marker and the
    fixtures needs pytest only.
    """
    if "build_settings" in globals():
        return
    from . import benchjson, htmlreport, testreports, waivers
    from .config import DEFAULT_ENVS, ItemPlan, Settings, build_settings, plan_for_marker
    from .envs import KINDS
    from .envs.base import EnvUnavailable, RunContext
    from .progress import Progress
    from .report import JSON_VERSION, claim_lines, environment_lines, host_line, table_lines, to_json, write_json_atomic
    from .pool import EnvironmentPool
    from .results import ItemResult
    from .rounds import Comparator, add_skipped_claims
    from .verdicts import bonferroni_confidence, correct_verdicts, outcome_of
    from .textfmt import method_line
    globals().update({k: v for k, v in locals().items() if not k.startswith("_")})


def _wanted(config: pytest.Config) -> bool:
    """Does this run compare, or set a --virt-* option? Only then is the rest
    loaded and the session state built at configure time (so that a bad
    option is a usage error at once); otherwise on a virt fixture's first
    use (ini keys are read then)."""
    return any(v not in (None, False, [], "") for k, v in vars(config.option).items() if k.startswith("virt_"))

STATE_KEY = pytest.StashKey["VirtState"]()
ITEM_KEY = pytest.StashKey["ItemPlan"]()
MARKER = "virt"


class VirtState:
    """The plugin's per-session state, kept on ``config.stash``."""

    def __init__(self, config: pytest.Config, settings: Settings):
        self.config = config
        self.settings = settings
        cache = config.getini("virt_cache_dir") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pytest-virtoverhead")
        self.ctx = RunContext(
            session_id=uuid.uuid4().hex[:12],
            rootdir=str(config.rootpath),
            cpus=settings.cpus,
            memory_mb=settings.memory_mb,
            cache_dir=str(cache),
            job_timeout=settings.timeout,
        )
        self.pool = EnvironmentPool(settings, self.ctx)
        self.results: list[ItemResult] = []
        self.compared: tuple[str, ...] = ()
        self.comparator: Comparator | None = None
        self.progress: Progress | None = None
        self.stopped = False
        #: What the summary says about --virt-json/--virt-report, and which failed.
        self.output_notes: list[str] = []
        self.output_failures: list[str] = []
        #: This session's CPU locks (hostlock.CpuLocks), taken before measuring.
        self.cpu_locks: Any = None
        #: Whether CPUs were chosen (the environments are pinned to them): a
        #: fixture session takes the same ones again for each test that uses
        #: an environment (see :meth:`unlock_cpus`).
        self.cpus_chosen = False
        #: --virt-select compiled (pytest's -k Expression), or None.
        self.select: Any = None
        #: Group entries of the run's claims ``EXPR: CLAIM``: [(RunClaim, compiled EXPR)].
        self.groups: list[tuple[Any, Any]] = []
        #: Under --virt-correction=holm: compared tests measured but not yet
        #: reported, [(item, result, start, stop)] (the correction needs
        #: every claim of the run); and the verdict method once decided.
        self.deferred: list[tuple[Any, Any, float, float]] = []
        self.method: dict[str, Any] | None = None
        #: Test ids deselected by -k / -m (a scoped ini waiver may be for one).
        self.deselected: list[str] = []
        #: Footprint claims (to judge, skipped) and the environments'
        #: footprint report once the run ends (issue 16).
        self.footprint_claims: tuple[list[Any], list[Any]] = ([], [])
        self.footprint: dict[str, Any] | None = None

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            try:
                self.pool.stop_all()
            finally:
                if self.cpu_locks is not None:
                    self.cpu_locks.release()

    def lock_cpus(self, say: Any) -> None:
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
        s.cpus = self.ctx.cpus = cpus

    def unlock_cpus(self) -> None:
        """Between the tests of a fixture session: let other measuring
        sessions have the CPUs while no test of this one uses an environment
        (the started environments stay up, idle). A --virt-compare session
        keeps them to the end."""
        if self.cpu_locks is not None and not self.settings.compare:
            self.cpu_locks.release()
            self.cpu_locks = None


# --------------------------------------------------------------------------
# options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("virtoverhead", "virtualization overhead (pytest-virtoverhead)")
    group.addoption("--virt-compare", action="store_true", default=False,
                    help="run each test marked 'virt' in every environment and compare")
    group.addoption("--virt-envs", metavar="LIST", default=None,
                    help=f"environments of the run: KIND or NAME=KIND, comma-separated "
                         f"(kinds: {HELP_KINDS}; default: {HELP_DEFAULT_ENVS})")
    group.addoption("--virt-baseline", metavar="NAME", default=None,
                    help="environment ratios are taken against (default: baremetal)")
    group.addoption("--virt-claim", metavar="CLAIM", action="append", default=[],
                    help="claim applied to every marked test, e.g. 'container <= 1.05 * baremetal', or "
                         "'EXPR: CLAIM' for the compared tests matching the -k expression EXPR (repeatable)")
    group.addoption("--virt-footprint-claim", metavar="CLAIM", action="append", default=[],
                    help="claim on the environments' footprint, e.g. 'vm.memory >= 4 * container.memory' or "
                         "'container.start <= 0.5 s' (repeatable; see docs/footprint.md)")
    group.addoption("--virt-strict", action="store_true", default=None,
                    help="an inconclusive claim fails its test")
    group.addoption("--virt-no-gate", action="store_true", default=None,
                    help="report claim verdicts as findings without failing tests (ini: virt_gate = false)")
    group.addoption("--virt-json", metavar="PATH", default=None, help="write results and verdicts as JSON")
    group.addoption("--virt-markdown", metavar="PATH", default=None,
                    help="write the comparison as Markdown, claims first (it is also appended to "
                         "$GITHUB_STEP_SUMMARY when that is set)")
    group.addoption("--virt-select", metavar="EXPR", default=None,
                    help="also compare the unmarked tests matching EXPR (a -k expression), with the claims "
                         "of --virt-claim and virt_claims")
    group.addoption("--virt-report", metavar="PATH", default=None,
                    help="write a self-contained HTML report with plots (needs matplotlib: "
                         f"{HELP_REPORT_INSTALL})")
    group.addoption("--virt-require", metavar="LIST", action="append", default=[],
                    help="environments (names or kinds, or 'all') that must start: an error instead of a skip")
    group.addoption("--virt-rounds", metavar="N", default=None,
                    help="measured rounds per marked test (default 12; the marker's rounds= wins)")
    group.addoption("--virt-time-budget", metavar="SECONDS", default=None,
                    help="per marked test, keep adding rounds while a claim is inconclusive, for up to "
                         "this many seconds (default 0: fixed rounds only)")
    group.addoption("--virt-max-rounds", metavar="N", default=None,
                    help="most measured rounds one test may take under --virt-time-budget (default 200)")
    group.addoption("--virt-warmup", metavar="N", default=None,
                    help="warm-up calls per marked test in each worker process, not measured (default 1)")
    group.addoption("--virt-processes", metavar="N", default=None,
                    help="fresh worker processes per environment; rounds rotate over them and the interval "
                         "counts the variation between them (default auto: one per round up to 20, 4 in a VM)")
    group.addoption("--virt-calls", metavar="N", default=None,
                    help="calls of a test per round and environment; the round's value is their median "
                         "(default auto: enough for about 150 ms of the baseline, at most 10)")
    group.addoption("--virt-confidence", metavar="LEVEL", default=None,
                    help="confidence level of the intervals, e.g. 0.95 or 99%% (default 0.95)")
    group.addoption("--virt-correction", metavar="METHOD", default=None, choices=("none", "holm"),
                    help="multiple-comparison correction of the verdicts: none (each claim at --virt-confidence) "
                         "or holm (family-wise over the run's claims; outcomes are reported after the last "
                         "compared test) (default none)")
    group.addoption("--virt-hash-seed", metavar="MODE", default=None, choices=("paired", "random"),
                    help="PYTHONHASHSEED of the worker processes: paired (process K has the same seed in "
                         "every environment) or random (default paired)")
    group.addoption("--virt-seed", metavar="N", default=None,
                    help="seed of the round order, the worker processes' hash seeds and the schedule (default: random, printed)")
    group.addoption("--virt-timeout", metavar="SECONDS", default=None,
                    help="longest one job may run in an environment before it is recycled (default 300)")
    group.addoption("--virt-cpus", metavar="CPUS", default=None,
                    help="CPU set of every environment: auto (one CPU, the host's last), all, or e.g. 0-1 "
                         "(default auto)")
    group.addoption("--virt-cpu-wait", metavar="SECONDS", default=None,
                    help="how long to wait for CPUs another pytest-virtoverhead session on this host measures "
                         "on, then refuse (default 600; 0: refuse at once)")
    group.addoption("--virt-memory", metavar="SIZE", default=None,
                    help="memory of containers and VMs, e.g. 1024, 512m, 2g (default 1024 MiB)")
    group.addoption("--virt-container-image", metavar="IMAGE", default=None,
                    help="run container environments in this image instead of mirroring the host")
    group.addoption("--virt-vm-kernel", metavar="PATH", default=None,
                    help="guest kernel for VM environments (default: the host's under /boot)")
    group.addoption("--virt-vm-accel", metavar="ACCEL", default=None, choices=("auto", "kvm", "tcg"),
                    help="VM acceleration: auto (KVM if it works, else TCG), kvm or tcg (default auto)")
    group.addoption("--virt-libvirt-uri", metavar="URI", default=None,
                    help="libvirt connection (default qemu:///system for root, qemu:///session otherwise)")

    parser.addini("virt_envs", "default for --virt-envs", default=None)
    parser.addini("virt_claims", "claims applied to every marked test, one per line; 'EXPR: CLAIM' applies "
                  "CLAIM to the compared tests matching the -k expression EXPR", type="linelist", default=[])
    parser.addini("virt_footprint_claims", "footprint claims (ENV.METRIC OP ...), one per line",
                  type="linelist", default=[])
    parser.addini("virt_waivers", "waivers that expire, one per line: '[TEST-ID: ]CLAIM until YYYY-MM-DD: REASON'",
                  type="linelist", default=[])
    parser.addini("virt_select", "default for --virt-select: unmarked tests matching this -k expression "
                  "are compared too", default=None)
    parser.addini("virt_markdown", "default for --virt-markdown", default=None)
    parser.addini("virt_env_options", "options per named environment: 'NAME: key=value ...' per line",
                  type="linelist", default=[])
    parser.addini("virt_strict", "inconclusive claims fail", type="bool", default=False)
    parser.addini("virt_gate", "failed claims fail their tests (false: report them as findings)",
                  type="bool", default=True)
    parser.addini("virt_rounds", "default for --virt-rounds", default=None)
    parser.addini("virt_timeout", "default for --virt-timeout", default=None)
    parser.addini("virt_processes", "default for --virt-processes", default=None)
    parser.addini("virt_calls", "default for --virt-calls", default=None)
    parser.addini("virt_confidence", "default for --virt-confidence", default=None)
    parser.addini("virt_correction", "default for --virt-correction (none or holm)", default=None)
    parser.addini("virt_time_budget", "default for --virt-time-budget", default=None)
    parser.addini("virt_cpus", "default for --virt-cpus", default=None)
    parser.addini("virt_memory", "default for --virt-memory", default=None)
    parser.addini("virt_cache_dir", "where built images, kernels and initramfs are cached", default=None)


def _raw_settings(config: pytest.Config) -> dict[str, Any]:
    opt = config.option

    def pick(cli: str, ini: str | None = None) -> Any:
        value = getattr(opt, cli)
        if value in (None, "") and ini:
            value = config.getini(ini)
        return value

    kind_defaults: dict[str, dict[str, str]] = {"container": {}, "vm": {}}
    if opt.virt_container_image:
        kind_defaults["container"]["image"] = opt.virt_container_image
    if opt.virt_vm_kernel:
        kind_defaults["vm"]["kernel"] = opt.virt_vm_kernel
    if opt.virt_vm_accel:
        kind_defaults["vm"]["accel"] = opt.virt_vm_accel
    if opt.virt_libvirt_uri:
        kind_defaults["vm"]["uri"] = opt.virt_libvirt_uri
    return {
        "compare": opt.virt_compare,
        # --virt-envs= (empty) is a usage error, not "the default".
        "envs": opt.virt_envs if opt.virt_envs is not None else (config.getini("virt_envs") or None),
        "declared_envs": config.getini("virt_envs"),
        "baseline": opt.virt_baseline,
        "ini_claims": config.getini("virt_claims"),
        "cli_claims": opt.virt_claim,
        "ini_waivers": config.getini("virt_waivers"),
        "strict": opt.virt_strict if opt.virt_strict is not None else config.getini("virt_strict"),
        "json_path": opt.virt_json,
        "markdown_path": pick("virt_markdown", "virt_markdown"),
        "select": pick("virt_select", "virt_select"),
        "gate": not opt.virt_no_gate and config.getini("virt_gate"),
        "require": opt.virt_require,
        "rounds": pick("virt_rounds", "virt_rounds"),
        "warmup": opt.virt_warmup,
        "processes": pick("virt_processes", "virt_processes"),
        "calls": pick("virt_calls", "virt_calls"),
        "confidence": pick("virt_confidence", "virt_confidence"),
        "correction": pick("virt_correction", "virt_correction"),
        "hash_seed": opt.virt_hash_seed,
        "time_budget": pick("virt_time_budget", "virt_time_budget"),
        "max_rounds": opt.virt_max_rounds,
        "seed": opt.virt_seed,
        "timeout": pick("virt_timeout", "virt_timeout"),
        "cpus": pick("virt_cpus", "virt_cpus"),
        "cpu_wait": opt.virt_cpu_wait,
        "memory": pick("virt_memory", "virt_memory"),
        "env_options": config.getini("virt_env_options"),
        "kind_defaults": kind_defaults,
    }


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(claims=[...], envs=[...], rounds=N): measure this test on the host, in containers and "
        "in VMs under --virt-compare and check claims such as 'container <= 1.05 * baremetal'",
    )
    if os.environ.get(WORKER_ENV_VAR):
        return  # inside an environment's worker: tests just run; the host compares
    if _wanted(config):
        _activate(config)


def _activate(config: pytest.Config) -> None:
    """Settings and the session state (environments start later, on use)."""
    _load()
    try:
        settings = build_settings(_raw_settings(config))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    select = _compile_select(settings.select)
    groups = _compile_groups(settings)
    if settings.compare and getattr(config.option, "numprocesses", None):
        raise pytest.UsageError(
            "--virt-compare cannot run under pytest-xdist (-n): parallel tests would load the CPU "
            "and corrupt every ratio; run the comparison without -n (or with -n 0)")
    if config.option.virt_report:
        try:
            htmlreport.require_matplotlib()
        except htmlreport.ReportUnavailable as exc:
            raise pytest.UsageError(str(exc)) from None
    if settings.compare:
        # An output that cannot be written is a usage error now, not a
        # traceback after the measurements (issue 12, point 3).
        from .outputs import check_outputs

        problems = check_outputs(_output_paths(config, settings))
        if problems:
            raise pytest.UsageError("\n".join(problems))
    state = VirtState(config, settings)
    state.select = select
    state.footprint_claims = _footprint_claims(config, settings)
    state.groups = groups
    config.stash[STATE_KEY] = state
    atexit.register(_stop_quietly, state)
    benchjson.register(config, lambda: _benchmark_summary(state))


def _output_paths(config: pytest.Config, settings: Settings) -> dict[str, str | None]:
    """The run's output files by option (those not asked for are None)."""
    return {"--virt-json": settings.json_path,
            "--virt-report": config.option.virt_report or None,
            "--virt-markdown": settings.markdown_path}


def _benchmark_summary(state: VirtState) -> dict[str, Any] | None:
    """The ``virtoverhead`` key of pytest-benchmark's JSON."""
    if not state.settings.compare or not state.results:
        return None
    s = state.settings
    return {"version": JSON_VERSION, "session": state.ctx.session_id, "seed": s.seed, "baseline": s.baseline,
            "rounds": s.rounds, "environments": state.pool.metadata()}


def _stop_quietly(state: VirtState) -> None:
    try:
        state.stop()
    except Exception as exc:  # noqa: BLE001 - at exit, say it and go on
        sys.stderr.write(f"pytest-virtoverhead: {exc}\n")
    except KeyboardInterrupt:  # a third Ctrl-C while stopping: leave at once
        sys.stderr.write("pytest-virtoverhead: interrupted while stopping environments: what is left is "
                         "removed by the next session's reaper\n")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE_KEY, None)
    if state is not None:
        _stop_quietly(state)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(STATE_KEY, None)
    if state is None or not state.settings.compare:
        return None
    s = state.settings
    cpus = ",".join(map(str, s.cpus)) if s.cpus else "all"
    return [f"virtoverhead: envs={','.join(f'{sp.name}={sp.kind}' if sp.name != sp.kind else sp.name for sp in s.specs)} "
            f"baseline={s.baseline} rounds={s.rounds} processes={s.processes or 'auto'} calls={s.calls or 'auto'} "
            f"warmup={s.warmup} confidence={s.confidence:g}"
            f"{' correction=' + s.correction if s.correction != 'none' else ''} seed={s.seed} cpus={cpus} "
            f"memory={s.memory_mb}MiB (repeat with --virt-seed={s.seed})"]


# --------------------------------------------------------------------------
# collection


def _plan(item: pytest.Item, settings: Settings, groups: list[Any] = ()) -> ItemPlan | None:
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None
    try:
        return plan_for_marker(item.nodeid, marker.args, marker.kwargs, settings, groups)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _groups_of(item: pytest.Item, groups: list[tuple[Any, Any]]) -> list[Any]:
    """The group entries (``EXPR: CLAIM``) whose -k expression matches the
    item, with pytest's own matcher (as --virt-select)."""
    if not groups:
        return []
    from _pytest.mark import KeywordMatcher

    matcher = KeywordMatcher.from_item(item)
    return [rc for rc, expr in groups if expr.evaluate(matcher)]


def _compile_select(text: str | None) -> Any:
    """``--virt-select`` / ini ``virt_select`` compiled with pytest's own
    ``-k`` machinery, or None; a malformed expression is a usage error
    naming the option.

    ``_pytest.mark.expression.Expression`` and ``_pytest.mark.KeywordMatcher``
    are what pytest's ``-k`` itself uses (``_pytest.mark.deselect_by_keyword``:
    ``Expression.compile(expr).evaluate(KeywordMatcher.from_item(item))``);
    they are not exported by ``pytest``, so they are imported from there,
    as pytest-xdist and others do for what pytest keeps private.
    """
    if not text:
        return None
    try:
        return _compile_expr(text)
    except _ExprError as exc:
        where = f" at column {exc.column}" if exc.column else ""
        raise pytest.UsageError(
            f"--virt-select (or ini virt_select): invalid -k expression {text!r}{where}: {exc.message}") from None


class _ExprError(Exception):
    def __init__(self, column: int | None, message: str):
        super().__init__(message)
        self.column, self.message = column, message


def _compile_expr(text: str) -> Any:
    """A ``-k`` expression compiled by pytest; _ExprError(column, message)."""
    from _pytest.mark.expression import Expression

    try:
        return Expression.compile(text)
    except Exception as exc:  # SyntaxError (pytest >= 8.3) or ParseError (older)
        column = getattr(exc, "offset", None) or getattr(exc, "column", None)
        message = getattr(exc, "msg", None) or getattr(exc, "message", None) or str(exc)
        raise _ExprError(column, message) from None


def _compile_groups(settings: Settings) -> list[tuple[Any, Any]]:
    """[(RunClaim, compiled EXPR)] of the group entries (``EXPR: CLAIM``);
    a malformed EXPR is a usage error naming the entry and the column."""
    out = []
    for rc in settings.run_claims:
        if rc.expr is None:
            continue
        try:
            out.append((rc, _compile_expr(rc.expr)))
        except _ExprError as exc:
            raise pytest.UsageError(rc.error(exc.column or 1, f"invalid -k expression: {exc.message}")) from None
    return out


def _selected(item: pytest.Item, select: Any) -> bool:
    """Does ``--virt-select`` pick this (unmarked) item? pytest's own
    ``-k`` matcher: names of the item and its parents, markers, extra
    keywords, substrings case-insensitively."""
    if select is None:
        return False
    from _pytest.mark import KeywordMatcher

    return bool(select.evaluate(KeywordMatcher.from_item(item)))


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
    for item in items:
        if item.get_closest_marker(MARKER) is not None:
            groups = _groups_of(item, state.groups)
            item.stash[ITEM_KEY] = _plan(item, state.settings, groups)
            used.update(groups)
        elif _selected(item, state.select):
            # As if marked @pytest.mark.virt(): the run's claims, every
            # environment, --virt-rounds.
            groups = _groups_of(item, state.groups)
            try:
                item.stash[ITEM_KEY] = plan_for_marker(item.nodeid, (), {}, state.settings, groups)
            except ValueError as exc:
                raise pytest.UsageError(str(exc)) from None
            used.update(groups)
    _check_waivers(state, items)
    if state.settings.compare:
        for rc, _ in state.groups:
            if rc not in used:
                warnings.warn(pytest.PytestConfigWarning(
                    f"{rc.source}: the group '{rc.expr}' matches no compared test of this run, so its claim "
                    f"'{rc.claim.text}' is not checked (a group chooses among the compared tests: those "
                    "marked @pytest.mark.virt and those --virt-select picks)"), stacklevel=1)


def _check_waivers(state: VirtState, items: list[pytest.Item]) -> None:
    """Every ini waiver must match a claim of a test it is for: one that
    matches none is a usage error (no silent, permanent ignore lists).
    A scoped waiver is let be when its tests are not in this run: -k / -m
    deselected them (their markers are not read), or their file was not
    collected (``pytest tests/test_other.py``); a scope that names no test
    of a collected file is an error. An unscoped waiver must match a claim
    of some compared test. $VIRTOVERHEAD_TODAY, when set, must be a date."""
    plans = [(item.nodeid, item.stash[ITEM_KEY]) for item in items if ITEM_KEY in item.stash]
    if not state.settings.waivers and not any(plan.waivers for _, plan in plans):
        return
    try:
        waivers.today()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    collected = [item.nodeid for item in items] + state.deselected
    for w in state.settings.waivers:
        if any(w in plan.waivers for _, plan in plans):
            continue
        if w.scope is not None and not any(w.applies_to(item.nodeid) for item in items):
            if any(w.applies_to(n) for n in state.deselected):
                continue  # for tests -k / -m deselected: their markers are not read
            where = w.scope.split("::")[0]
            if any(ch in w.scope for ch in "*?[") or not any(n.split("::")[0] == where for n in collected):
                continue  # for tests of files this run did not collect
            raise pytest.UsageError(f"{w.source}: the waiver of '{w.claim.text}' is for {w.scope!r}, which "
                                    "names no collected test")
        if w.scope is None and not plans:
            continue  # nothing compared in this selection
        mine = [c for n, plan in plans if w.applies_to(n) for c in plan.claims + [c for c, _ in plan.skipped_claims]]
        raise pytest.UsageError(waivers.waiver_usage(w, list(dict.fromkeys(mine))))


def pytest_collection_finish(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE_KEY, None)
    if state is None or not state.settings.compare:
        return
    state.compared = tuple(item.nodeid for item in session.items if ITEM_KEY in item.stash)
    if state.compared and not session.config.option.collectonly:
        _lock_cpus(session.config, state)
    args: list[str] = []
    if session.config.inipath:
        args += ["-c", str(session.config.inipath)]
    args += ["--rootdir", str(session.config.rootpath),
             f"--import-mode={session.config.option.importmode}"]
    args += testreports.worker_args(session.config)
    state.progress = Progress(session.config.pluginmanager.get_plugin("terminalreporter"))
    state.comparator = Comparator(state.settings, state.pool, state.compared, tuple(args), state.progress)
    if state.settings.correction == "holm":
        planned = sum(len(item.stash[ITEM_KEY].claims) for item in session.items if ITEM_KEY in item.stash)
        state.comparator.adaptive_confidence = bonferroni_confidence(state.settings.confidence, planned)


# --------------------------------------------------------------------------
# running a compared test


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
            starting = [n for n in plan.envs if n not in state.pool.started() and state.pool.failure(n) is None]
            if starting:
                progress.note(f"starting {', '.join(starting)}")
        if plan.absent_envs and plan.envs == [state.settings.baseline]:
            # Every environment the marker asks for is absent from this run.
            result = ItemResult(nodeid=item.nodeid, envs=list(plan.envs), baseline=state.settings.baseline)
            result.skipped = (plan.absent_envs[0], "no environment to compare with: "
                              + "; ".join(f"{n}: not in this run" for n in plan.absent_envs))
        else:
            result = state.comparator.run(item.nodeid, plan.envs, plan.claims, plan.rounds)
        add_skipped_claims(result, plan.skipped_claims)
        for cr in result.claims:
            cr.source, cr.group = plan.sources.get(cr.claim, ("", None))
        waivers.apply(result.claims, plan.waivers)
    finally:
        if progress is not None:
            progress.end()
    state.results.append(result)
    if deferred:
        state.deferred.append((item, result, start, time.time()))
        if len(state.results) >= len(state.compared):
            _report_deferred(state)
        return True
    benchjson.add_entries(item.config, result, state.pool.metadata())
    stop = time.time()
    _log_reports(item, state, result, start, stop)
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _verdict_method(state: VirtState) -> dict[str, Any]:
    """--virt-correction applied to the run's claims (once), and the method
    the reports name (the JSON's ``verdict_method``)."""
    if state.method is None:
        s = state.settings
        state.method = correct_verdicts(state.results, s.confidence, s.correction)
    return state.method


def _report_deferred(state: VirtState) -> None:
    """Under --virt-correction=holm: correct the verdicts over every claim
    measured, then report the compared tests kept back, in their order."""
    _verdict_method(state)
    deferred, state.deferred = state.deferred, []
    for item, result, start, stop in deferred:
        benchjson.add_entries(item.config, result, state.pool.metadata())
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
    if state is not None and state.deferred and (
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


# --------------------------------------------------------------------------
# fixtures


def _state(config: pytest.Config) -> VirtState:
    state = config.stash.get(STATE_KEY, None)
    if state is None and not os.environ.get(WORKER_ENV_VAR):
        _activate(config)  # a run without --virt-* options: built on first use
        state = config.stash.get(STATE_KEY, None)
    if state is None:
        pytest.skip("environments do not nest: this test already runs inside a pytest-virtoverhead worker")
    return state


def _lock_cpus(config: pytest.Config, state: VirtState) -> None:
    """Before anything is measured: this session's CPUs, or a usage error
    naming the session that holds them (issue 12, point 5)."""
    from .hostlock import CpuBusy

    tr = config.pluginmanager.get_plugin("terminalreporter")

    def say(msg: str) -> None:
        if tr is not None:
            tr.write_line(msg, yellow=True)
        else:
            sys.stderr.write(msg + "\n")

    try:
        state.lock_cpus(say)
    except CpuBusy as exc:
        raise pytest.UsageError(str(exc)) from None


def _lock_cpus_or_skip(state: VirtState) -> None:
    """A fixture session's CPUs, or skip the test naming their holder."""
    if state.cpu_locks is None:
        from .hostlock import CpuBusy

        try:
            state.lock_cpus(lambda msg: sys.stderr.write(msg + "\n"))
        except CpuBusy as exc:
            pytest.skip(str(exc))


#: The fixtures that hand out environments.
ENV_FIXTURES = frozenset({"baremetal", "container", "vm", "virt_envs"})


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A fixture session holds its CPUs only while a test that uses an
    environment runs: taken again here (the same CPUs), let go after the
    test's teardown, so a long suite does not block other measuring sessions
    on the host (nor a pytester session inside it) between those tests."""
    state = item.config.stash.get(STATE_KEY, None)
    if state is not None and state.cpus_chosen and not state.settings.compare \
            and ENV_FIXTURES & set(getattr(item, "fixturenames", ())):
        _lock_cpus_or_skip(state)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    state = item.config.stash.get(STATE_KEY, None)
    if state is not None:
        state.unlock_cpus()


def get_environment(config: pytest.Config, name: str):
    """The started environment ``name``, or skip (fail if required)."""
    state = _state(config)
    _lock_cpus_or_skip(state)
    try:
        spec = state.pool.spec_for(name)
    except KeyError as exc:
        raise pytest.UsageError(str(exc.args[0])) from None
    try:
        return state.pool.get(name)
    except EnvUnavailable as exc:
        reason = str(exc)
    # Outside the except block, so the report is the message alone.
    if state.settings.required(spec):
        pytest.fail(f"environment {name!r} is required (--virt-require) but unavailable: {reason}", pytrace=False)
    pytest.skip(f"{name}: {reason.splitlines()[0]}")


def _make_env_fixture(kind: str):
    @pytest.fixture(scope="session", name=kind)
    def env_fixture(pytestconfig: pytest.Config):
        return get_environment(pytestconfig, kind)

    env_fixture.__doc__ = f"The ``{kind}`` environment handle (started once per session)."
    return env_fixture


baremetal = _make_env_fixture("baremetal")
container = _make_env_fixture("container")
vm = _make_env_fixture("vm")


class _LazyEnvs(dict):
    """Mapping name -> environment; an environment starts on first access."""

    def __init__(self, config: pytest.Config):
        super().__init__()
        self._config = config
        self._names = _state(config).settings.env_names

    def __getitem__(self, name: str):
        if name not in self._names:
            raise KeyError(f"unknown environment {name!r}; environments of this run: {', '.join(self._names)}")
        if not super().__contains__(name):
            super().__setitem__(name, get_environment(self._config, name))
        return super().__getitem__(name)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def keys(self):  # type: ignore[override]
        return list(self._names)

    def items(self):  # type: ignore[override]
        return [(n, self[n]) for n in self._names]

    def values(self):  # type: ignore[override]
        return [self[n] for n in self._names]

    def get(self, name, default=None):  # type: ignore[override]
        return self[name] if name in self._names else default


@pytest.fixture(scope="session")
def virt_envs(pytestconfig: pytest.Config) -> _LazyEnvs:
    """Every environment of the run (``--virt-envs``) by name, started on first use."""
    return _LazyEnvs(pytestconfig)


# --------------------------------------------------------------------------
# the end


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
    metadata = state.pool.metadata()
    host = host_line(metadata)
    if host:
        tr.write_line(host)
    for line in table_lines(state.results, metadata, s.confidence):
        tr.write_line(line)
    method = _verdict_method(state)
    lines = claim_lines(state.results, s.strict)
    if lines:
        tr.write_line("")
        tr.write_line("claims:")
        for line in lines:
            tr.write_line("  " + line)
        tr.write_line(method_line(method))
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


#: Exit statuses of a run that did not finish: its --virt-json says
#: "aborted": true, and ``pytest-virtoverhead compare`` refuses it.
_ABORTED = (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR)


def _statistics(s: Settings) -> dict[str, Any]:
    return {"confidence": s.confidence, "processes": s.processes or "auto", "calls": s.calls or "auto",
            "warmup": s.warmup, "hash_seed": s.hash_seed}


def _write_outputs(session: pytest.Session, state: VirtState, exitstatus: int) -> None:
    """Write --virt-json, --virt-report, --virt-markdown and the GitHub job
    summary ($GITHUB_STEP_SUMMARY, appended), each on its own: one that
    fails is named in the summary (and the run exits non-zero) while the
    others are still written. A run that measured nothing writes nothing,
    so an earlier file at the same path is kept (issue 12, points 3 and 6)."""
    from . import markdown

    s = state.settings
    config = session.config
    writers = [(option, path, what, write) for option, path, what, write in (
        ("--virt-json", s.json_path, "results", write_json_atomic),
        ("--virt-report", config.option.virt_report, "HTML report", htmlreport.write_report),
        ("--virt-markdown", s.markdown_path, "Markdown summary", markdown.write_markdown),
        ("GITHUB_STEP_SUMMARY", os.environ.get("GITHUB_STEP_SUMMARY") or None, "GitHub job summary",
         markdown.append_summary)) if path]
    if not writers or exitstatus == pytest.ExitCode.USAGE_ERROR:
        return
    aborted = exitstatus in _ABORTED
    if not state.results:
        # The job summary is appended to, never replaced: it says that
        # nothing was compared (a --virt-select that matched nothing shows).
        summary = [w for w in writers if w[0] == "GITHUB_STEP_SUMMARY"]
        writers = [w for w in writers if w[0] != "GITHUB_STEP_SUMMARY"]
        if writers:
            kept = [p for _, p, _, _ in writers if os.path.exists(p)]
            state.output_notes.append(
                f"nothing was measured (exit status {int(exitstatus)}): {', '.join(p for _, p, _, _ in writers)} "
                "not written" + (f"; the earlier {', '.join(kept)} kept" if kept else ""))
        data = {"version": JSON_VERSION, "seed": s.seed, "baseline": s.baseline, "rounds": s.rounds,
                "statistics": _statistics(s), "environments": {}, "results": [], "claims": [], "tests": [],
                "aborted": aborted, "exitstatus": int(exitstatus), "verdict_method": _verdict_method(state)}
        _write_each(session, state, summary, data, aborted)
        return
    try:
        data = to_json(state.results, state.pool.metadata(), seed=s.seed, baseline=s.baseline,
                       rounds=s.rounds, statistics=_statistics(s),
                       extra={"session": state.ctx.session_id,
                              "interrupted": exitstatus == pytest.ExitCode.INTERRUPTED,
                              "aborted": aborted, "exitstatus": int(exitstatus), "footprint": state.footprint})
        data["verdict_method"] = _verdict_method(state)
    except Exception as exc:  # noqa: BLE001 - the table is still shown
        state.output_failures.append(f"virtoverhead: could not assemble the results for "
                                     f"{', '.join(p for _, p, _, _ in writers)}: {type(exc).__name__}: {exc}")
        writers = []
    _write_each(session, state, writers, data, aborted)


def _write_each(session: pytest.Session, state: VirtState, writers: list[tuple[str, str, str, Any]],
                data: dict[str, Any], aborted: bool) -> None:
    """Each writer on its own; a failure is named by option (or variable)
    and path, and makes the run exit non-zero."""
    for option, path, what, write in writers:
        append = option == "GITHUB_STEP_SUMMARY"
        try:
            write(path, data)
        except Exception as exc:  # noqa: BLE001 - say which output failed, write the others
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            state.output_failures.append(
                f"virtoverhead: {option}: could not {'append to' if append else 'write'} {path}: {reason}")
            continue
        note = f"{what} {'appended to' if append else 'written to'} {path}"
        if aborted:
            note += (" (the run did not finish: marked \"aborted\", which compare refuses)"
                     if option in ("--virt-json", "--virt-report") else " (the run did not finish)")
        state.output_notes.append(note)
    if state.output_failures and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _footprint_claims(config: pytest.Config, settings: Settings) -> tuple[list[Any], list[Any]]:
    """(claims to judge, [(claim, reason)] skipped) of virt_footprint_claims
    and --virt-footprint-claim; a malformed one is a usage error."""
    from . import footprint
    from .claims import absent_reason

    try:
        claims = (footprint.parse_claims(config.getini("virt_footprint_claims"), "virt_footprint_claims (ini)",
                                         settings.env_names, settings.elsewhere)
                  + footprint.parse_claims(config.option.virt_footprint_claim, "--virt-footprint-claim",
                                           settings.env_names, settings.elsewhere))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    skipped = [(c, absent_reason(n for n in c.envs if n not in settings.env_names)) for c in claims
               if not all(n in settings.env_names for n in c.envs)]
    return [c for c in claims if all(n in settings.env_names for n in c.envs)], skipped


def _finish_footprint(session: pytest.Session, state: VirtState) -> None:
    """The environments' last footprint readings, before reports are
    written and environments stopped; footprint claims judged (issue 16)."""
    from . import footprint
    from .report import footprint_report

    started = state.pool.started()
    for env in started.values():
        try:
            env.footprint_end()
        except Exception:  # noqa: BLE001 - a footprint never fails the run
            pass
    claims, skipped = state.footprint_claims
    try:
        state.footprint = footprint_report(started, state.pool.metadata(), claims, skipped)
    except Exception as exc:  # noqa: BLE001 - the results are still written
        state.footprint = {"environments": {}, "claims": [], "error": f"{type(exc).__name__}: {exc}"}
        state.output_failures.append(f"virtoverhead: the footprint could not be assembled: {type(exc).__name__}: {exc}")
        return
    s = state.settings
    for res in state.footprint["claims"]:
        if s.gate and (res["verdict"] == footprint.FAIL or (s.strict and res["verdict"] == footprint.INCONCLUSIVE)):
            state.output_failures.append(f"virtoverhead: footprint claim {footprint.claim_line(res)}")
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(STATE_KEY, None)
    if state is None:
        return
    try:
        if state.settings.compare:
            _finish_footprint(session, state)
            _write_outputs(session, state, exitstatus)
    finally:
        _stop_quietly(state)
