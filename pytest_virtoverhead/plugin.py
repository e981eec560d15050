"""pytest glue, the entry module pytest imports in every run: options and
ini keys (from the table in :mod:`.options`), the ``virt`` marker and the
environment fixtures.

Nothing else is imported here: a run that neither compares, nor sets a
--virt-* option, nor uses an environment fixture loads no more of the
plugin and runs none of its per-test hooks. Otherwise :func:`.state.activate`
builds the settings and the session, :class:`.session.VirtSession`, a
plugin object whose methods are the session's hooks.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from .session.options import HELP_DEFAULT_ENVS, HELP_KINDS, HELP_REPORT_INSTALL, register
from .session.stash import MARKER, SESSION_PLUGIN
from .wire.envvars import WORKER_ENV_VAR

__all__ = ["HELP_DEFAULT_ENVS", "HELP_KINDS", "HELP_REPORT_INSTALL"]


def _wanted(config: pytest.Config) -> bool:
    """Does this run compare, or set a --virt-* option? Only then is the rest
    loaded and the session state built at configure time (so that a bad
    option is a usage error at once); otherwise on a virt fixture's first
    use (ini keys are read then)."""
    return any(v not in (None, False, [], "") for k, v in vars(config.option).items() if k.startswith("virt_"))


def pytest_addoption(parser: pytest.Parser) -> None:
    register(parser)


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


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto --virt-compare``: one pytest-xdist worker per measuring CPU."""
    if not getattr(config.option, "virt_compare", False):
        return None
    from .session.scaleout import auto_workers

    return auto_workers(config)


def _activate(config: pytest.Config) -> None:
    """Build the settings and the session and register it
    (:func:`.state.activate`): only now, so a run that does not use the
    plugin pays for none of its per-test hooks."""
    from .session.state import activate

    activate(config)


def _on_first_use(config: pytest.Config) -> None:
    """A run without --virt-* options activates on its first environment
    fixture (not inside a worker: environments do not nest)."""
    if not config.pluginmanager.has_plugin(SESSION_PLUGIN) and not os.environ.get(WORKER_ENV_VAR):
        _activate(config)


def _make_env_fixture(kind: str) -> Any:
    @pytest.fixture(scope="session", name=kind)
    def env_fixture(pytestconfig: pytest.Config) -> Any:
        from .session.state import get_environment

        _on_first_use(pytestconfig)
        return get_environment(pytestconfig, kind)

    env_fixture.__doc__ = (f"The ``{kind}`` environment handle (started once per session). A fixture of the "
                           f"same name in a conftest shadows it; ``virt_envs['{kind}']`` is the same handle.")
    return env_fixture


baremetal = _make_env_fixture("baremetal")
container = _make_env_fixture("container")
vm = _make_env_fixture("vm")


@pytest.fixture(scope="session")
def virt_envs(pytestconfig: pytest.Config) -> Any:
    """Every environment of the run (``--virt-envs``) by name, started on first use."""
    from .session.state import LazyEnvs

    _on_first_use(pytestconfig)
    return LazyEnvs(pytestconfig)
