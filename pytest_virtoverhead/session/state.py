"""Activation: the settings and the session (:class:`.session.VirtSession`,
registered as a plugin) built from the options when a run compares, sets a
--virt-* option or first uses an environment fixture; and the environments
handed to fixtures.

Importing this module loads the host side (settings, claims, the pool);
the entry module (plugin.py) imports it only when the plugin is active.
"""

from __future__ import annotations

import atexit
import os
from typing import Any

import pytest

from ..envs.errors import EnvUnavailable
from ..render import benchjson, htmlreport
from ..results import JSON_VERSION
from .config import Settings, build_settings
from .options import raw_settings
from .selection import compile_groups, compile_select
from .stash import SESSION_PLUGIN
from .virtsession import VirtSession


def activate(config: pytest.Config) -> VirtSession:
    """Settings and the session (environments start later, on use),
    registered as a plugin only now: a run that does not use the plugin
    pays for none of its per-test hooks."""
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
        # traceback after the measurements.
        from ..results.outputs import check_outputs, shared_paths

        paths = output_paths(config, settings)
        problems = check_outputs(paths) or shared_paths(
            {**paths, **other_outputs(config)}, appended=frozenset({"GITHUB_STEP_SUMMARY"}))
        if problems:
            raise pytest.UsageError("\n".join(problems))
    session = VirtSession(config, settings)
    scaleout.configure(config, session)  # pytest-xdist: each worker's CPU (usage error: too few)
    session.select = select
    session.footprint_claims = footprint_claims(config, session.settings)
    session.groups = groups
    config.pluginmanager.register(session, SESSION_PLUGIN)
    atexit.register(session.stop_quietly)
    benchjson.register(config, lambda: benchmark_summary(session))
    return session


def output_paths(config: pytest.Config, settings: Settings) -> dict[str, str | None]:
    """The run's output files by option (those not asked for are None)."""
    return {"--virt-json": settings.json_path,
            "--virt-report": config.option.virt_report or None,
            "--virt-markdown": settings.markdown_path}


def other_outputs(config: pytest.Config) -> dict[str, str | None]:
    """Files other writers of the session fill, which a run's output must
    not share: the GitHub job summary, --junitxml,
    --benchmark-json."""
    bench = getattr(config.option, "benchmark_json", None)
    bench = getattr(bench, "name", bench)  # pytest-benchmark opens the file (argparse.FileType)
    return {"GITHUB_STEP_SUMMARY": os.environ.get("GITHUB_STEP_SUMMARY") or None,
            "--junitxml": getattr(config.option, "xmlpath", None) or None,
            "--benchmark-json": bench if isinstance(bench, str) else None}


def benchmark_summary(session: VirtSession) -> dict[str, Any] | None:
    """The ``virtoverhead`` key of pytest-benchmark's JSON."""
    if not session.settings.compare or not session.results:
        return None
    s = session.settings
    return {"version": JSON_VERSION, "session": session.ctx.session_id, "seed": s.seed, "baseline": s.baseline,
            "rounds": s.rounds, "environments": session.metadata()}


def session_of(config: pytest.Config) -> VirtSession:
    """The session (built by the entry module's activation: at configure,
    or on a fixture's first use); inside a worker there is none."""
    session = config.pluginmanager.get_plugin(SESSION_PLUGIN)
    if session is None:
        pytest.skip("environments do not nest: this test already runs inside a pytest-virtoverhead worker")
    return session


def get_environment(config: pytest.Config, name: str):
    """The started environment ``name``, or skip (fail if required)."""
    session = session_of(config)
    session.lock_cpus_or_skip()
    try:
        spec = session.pool.spec_for(name)
    except KeyError as exc:
        raise pytest.UsageError(str(exc.args[0])) from None
    try:
        return session.pool.get(name)
    except EnvUnavailable as exc:
        reason = str(exc)
    # Outside the except block, so the report is the message alone.
    if session.settings.required(spec):
        pytest.fail(f"environment {name!r} is required (--virt-require) but unavailable: {reason}", pytrace=False)
    pytest.skip(f"{name}: {reason.splitlines()[0]}")


class LazyEnvs(dict):
    """Mapping name -> environment; an environment starts on first access."""

    def __init__(self, config: pytest.Config):
        super().__init__()
        self._config = config
        self._names = session_of(config).settings.env_names

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
    from .. import footprint
    from ..judge.claims import absent_reason

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
