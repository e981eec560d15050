"""The plugin's session state: built from the options when a run compares,
sets a --virt-* option or first uses an environment fixture; it holds the
environment pool and the CPU locks, and hands environments to fixtures.

Importing this module loads the host side (settings, claims, the pool);
the entry module (plugin.py) imports it only when the plugin is active.
"""

from __future__ import annotations

import atexit
import os
import sys
import uuid
from typing import Any

import pytest

from . import benchjson, htmlreport
from .config import Settings, build_settings
from .envs.base import RunContext
from .envs.errors import EnvUnavailable
from .fsutil import default_cache_dir
from .pool import EnvironmentPool
from .progress import Progress
from .results import JSON_VERSION, ItemResult
from .rounds import Comparator
from .selection import compile_groups, compile_select
from .stash import STATE_KEY


class VirtState:
    """The plugin's per-session state, kept on ``config.stash``."""

    def __init__(self, config: pytest.Config, settings: Settings):
        self.config = config
        self.settings = settings
        cache = config.getini("virt_cache_dir") or default_cache_dir()
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
        #: footprint report once the run ends.
        self.footprint_claims: tuple[list[Any], list[Any]] = ([], [])
        self.footprint: dict[str, Any] | None = None
        #: Under pytest-xdist: the controller's side (:class:`.scaleout.Controller`),
        #: and on a worker under holm, the other workers' claims' p-values.
        self.controller: Any = None
        self.peers: Any = None
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


def raw_settings(config: pytest.Config) -> dict[str, Any]:
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
        "explain": opt.virt_explain,
    }


def activate(config: pytest.Config) -> None:
    """Settings, the session state (environments start later, on use) and
    the session's hooks (:mod:`.hooks`), registered only now: a run that
    does not use the plugin pays for none of its per-test hooks."""
    from . import scaleout

    raw = raw_settings(config)
    if scaleout.chooses_own_cpu(config):
        raw["cpus"] = "auto"  # an xdist worker on another host: the controller's --virt-cpus are not its CPUs
    try:
        settings = build_settings(raw)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    select = compile_select(settings.select)
    groups = compile_groups(settings)
    if config.option.virt_report:
        try:
            htmlreport.require_matplotlib()
        except htmlreport.ReportUnavailable as exc:
            raise pytest.UsageError(str(exc)) from None
    if settings.compare:
        # An output that cannot be written is a usage error now, not a
        # traceback after the measurements have been lost.
        from .outputs import check_outputs, shared_paths

        paths = output_paths(config, settings)
        problems = check_outputs(paths) or shared_paths(
            {**paths, **other_outputs(config)}, appended=frozenset({"GITHUB_STEP_SUMMARY"}))
        if problems:
            raise pytest.UsageError("\n".join(problems))
    state = VirtState(config, settings)
    scaleout.configure(config, state)  # pytest-xdist: each worker's CPU (usage error: too few)
    state.select = select
    state.footprint_claims = footprint_claims(config, settings)
    state.groups = groups
    config.stash[STATE_KEY] = state
    atexit.register(stop_quietly, state)
    benchjson.register(config, lambda: benchmark_summary(state))


def output_paths(config: pytest.Config, settings: Settings) -> dict[str, str | None]:
    """The run's output files by option (those not asked for are None)."""
    return {"--virt-json": settings.json_path,
            "--virt-report": config.option.virt_report or None,
            "--virt-markdown": settings.markdown_path}


def other_outputs(config: pytest.Config) -> dict[str, str | None]:
    """Files other writers of the session fill, which a run's output must
    not share, lest one replace the other: the GitHub job summary, --junitxml,
    --benchmark-json."""
    bench = getattr(config.option, "benchmark_json", None)
    bench = getattr(bench, "name", bench)  # pytest-benchmark opens the file (argparse.FileType)
    return {"GITHUB_STEP_SUMMARY": os.environ.get("GITHUB_STEP_SUMMARY") or None,
            "--junitxml": getattr(config.option, "xmlpath", None) or None,
            "--benchmark-json": bench if isinstance(bench, str) else None}


def benchmark_summary(state: VirtState) -> dict[str, Any] | None:
    """The ``virtoverhead`` key of pytest-benchmark's JSON."""
    if not state.settings.compare or not state.results:
        return None
    s = state.settings
    return {"version": JSON_VERSION, "session": state.ctx.session_id, "seed": s.seed, "baseline": s.baseline,
            "rounds": s.rounds, "environments": state.metadata()}


def stop_quietly(state: VirtState) -> None:
    try:
        state.stop()
    except Exception as exc:  # noqa: BLE001 - at exit, say it and go on
        sys.stderr.write(f"pytest-virtoverhead: {exc}\n")
    except KeyboardInterrupt:  # a third Ctrl-C while stopping: leave at once
        sys.stderr.write("pytest-virtoverhead: interrupted while stopping environments: what is left is "
                         "removed by the next session's reaper\n")


def state_of(config: pytest.Config) -> VirtState:
    """The session state (built by the entry module's activation: at
    configure, or on a fixture's first use); inside a worker there is none."""
    state = config.stash.get(STATE_KEY, None)
    if state is None:
        pytest.skip("environments do not nest: this test already runs inside a pytest-virtoverhead worker")
    return state


def lock_cpus(config: pytest.Config, state: VirtState) -> None:
    """Before anything is measured: this session's CPUs, or a usage error
    naming the session that holds them (two sessions on one CPU would
    each measure the other's load)."""
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
        if state.controller is None and hasattr(config, "workerinput"):
            # An xdist worker: a usage error here would stall the controller
            # (it waits for this worker's collection); each compared test
            # fails with the reason instead.
            state.cpu_refusal = str(exc)
            return
        raise pytest.UsageError(str(exc)) from None


def lock_cpus_or_skip(state: VirtState) -> None:
    """A fixture session's CPUs, or skip the test naming their holder."""
    if state.cpu_locks is None:
        from .hostlock import CpuBusy

        try:
            state.lock_cpus(lambda msg: sys.stderr.write(msg + "\n"))
        except CpuBusy as exc:
            pytest.skip(str(exc))


def get_environment(config: pytest.Config, name: str):
    """The started environment ``name``, or skip (fail if required)."""
    state = state_of(config)
    lock_cpus_or_skip(state)
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


class LazyEnvs(dict):
    """Mapping name -> environment; an environment starts on first access."""

    def __init__(self, config: pytest.Config):
        super().__init__()
        self._config = config
        self._names = state_of(config).settings.env_names

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


def footprint_claims(config: pytest.Config, settings: Settings) -> tuple[list[Any], list[Any]]:
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
