"""pytest glue, the entry module pytest imports in every run: options, ini
keys, the ``virt`` marker and the environment fixtures.

Nothing else is imported here: a run that neither compares, nor sets a
--virt-* option, nor uses an environment fixture loads no more of the
plugin and runs none of its per-test hooks. Otherwise :func:`.state.activate`
builds the session state and registers the session's hooks (:mod:`.hooks`).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from .envvars import WORKER_ENV_VAR
from .stash import MARKER, STATE_KEY

#: For the help text: the environment kinds, the default of --virt-envs and
#: the report's install hint, literal so that registering the options
#: imports nothing (tests/test_plugin_import.py checks them against envs,
#: config and htmlreport).
HELP_KINDS = "baremetal, container, vm"
HELP_DEFAULT_ENVS = "baremetal,container,vm"
HELP_REPORT_INSTALL = "pip install pytest-virtoverhead[report]"


def _wanted(config: pytest.Config) -> bool:
    """Does this run compare, or set a --virt-* option? Only then is the rest
    loaded and the session state built at configure time (so that a bad
    option is a usage error at once); otherwise on a virt fixture's first
    use (ini keys are read then)."""
    return any(v not in (None, False, [], "") for k, v in vars(config.option).items() if k.startswith("virt_"))


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
    group.addoption("--virt-explain", action="store_true", default=False,
                    help="add ablation environments (a container with seccomp off, with its scratch on a volume) "
                         "and report the share of the overhead each removes; say what a VM's accelerator allows")
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
    parser.addini("virt_machine", "this host's name in the run document's machine block (the variable "
                  "VIRTOVERHEAD_MACHINE wins; default: the hostname)", default=None)


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
    from .scaleout import auto_workers

    return auto_workers(config)


def _activate(config: pytest.Config) -> None:
    """Build the session state (:func:`.state.activate`) and register the
    session's hooks (:mod:`.hooks`): only now, so a run that does not use
    the plugin pays for none of its per-test hooks."""
    from . import hooks
    from .state import activate

    activate(config)
    if not config.pluginmanager.is_registered(hooks):
        config.pluginmanager.register(hooks, "virtoverhead-session")


def _on_first_use(config: pytest.Config) -> None:
    """A run without --virt-* options activates on its first environment
    fixture (not inside a worker: environments do not nest)."""
    if STATE_KEY not in config.stash and not os.environ.get(WORKER_ENV_VAR):
        _activate(config)


def _make_env_fixture(kind: str) -> Any:
    @pytest.fixture(scope="session", name=kind)
    def env_fixture(pytestconfig: pytest.Config) -> Any:
        from .state import get_environment

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
    from .state import LazyEnvs

    _on_first_use(pytestconfig)
    return LazyEnvs(pytestconfig)
