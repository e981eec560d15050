"""The plugin's options and ini keys, each named once in :data:`OPTIONS`:
its flag, its ini key, its help, its default and the key of the raw
settings (:func:`raw_settings`) that :func:`.config.build_settings` reads
into the frozen :class:`.config.Settings`. ``pytest_addoption``
(:func:`register`) and the raw settings are both made from the table.

Imported by the entry module, and by :mod:`.config`: standard library only
(pytest for the type checker), so a run without the plugin pays for
nothing more and the settings stay free of pytest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

#: For the help text: the environment kinds, the default of --virt-envs and
#: the report's install hint, literal so that registering the options
#: imports nothing (tests/test_plugin_import.py checks them against envs,
#: config and htmlreport).
HELP_KINDS = "baremetal, container, vm"
HELP_DEFAULT_ENVS = "baremetal,container,vm"
HELP_REPORT_INSTALL = "pip install pytest-virtoverhead[report]"

#: Defaults the settings and the help text share (config re-exports them).
DEFAULT_ENVS = HELP_DEFAULT_ENVS
DEFAULT_ROUNDS = 12
DEFAULT_WARMUP = 1
DEFAULT_TIMEOUT = 300.0
DEFAULT_MEMORY_MB = 1024
DEFAULT_MAX_ROUNDS = 200
DEFAULT_CPU_WAIT = 600.0
#: --virt-correction: none (each claim at --virt-confidence) or holm
#: (family-wise over the run's claims; see docs/verdicts.md).
CORRECTIONS = ("none", "holm")
HASH_SEED_MODES = ("paired", "random")
VM_ACCELS = ("auto", "kvm", "tcg")


@dataclass(frozen=True)
class Option:
    """One option: where the user sets it (``flag``, ``ini`` or both) and
    the raw settings' key it fills (``field``).

    ``merge`` says how flag and ini key meet: ``empty`` (the ini key when
    the flag is unset or empty), ``unset`` (only when unset: ``--virt-envs=``
    stays an error), ``negate`` (``--virt-no-gate`` against ini
    ``virt_gate``). ``env_option`` puts the value into the kind's default
    environment options instead (``("vm", "kernel")``).
    """

    field: str
    flag: str | None = None
    help: str = ""
    ini: str | None = None
    ini_help: str = ""
    ini_type: str | None = None
    ini_default: Any = None
    default: Any = None
    action: str | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    merge: str = "empty"
    env_option: tuple[str, str] | None = None

    @property
    def dest(self) -> str:
        assert self.flag is not None
        return self.flag.lstrip("-").replace("-", "_")


def _default_for(flag: str) -> str:
    return f"default for {flag}"


OPTIONS: tuple[Option, ...] = (
    Option("compare", "--virt-compare", action="store_true", default=False,
           help="run each test marked 'virt' in every environment and compare"),
    Option("envs", "--virt-envs", metavar="LIST", merge="unset", ini="virt_envs", ini_help=_default_for("--virt-envs"),
           help=f"environments of the run: KIND or NAME=KIND, comma-separated "
                f"(kinds: {HELP_KINDS}; default: {HELP_DEFAULT_ENVS})"),
    Option("baseline", "--virt-baseline", metavar="NAME",
           help="environment ratios are taken against (default: baremetal)"),
    Option("cli_claims", "--virt-claim", metavar="CLAIM", action="append", default=[],
           help="claim applied to every marked test, e.g. 'container <= 1.05 * baremetal', or "
                "'EXPR: CLAIM' for the compared tests matching the -k expression EXPR (repeatable)"),
    Option("cli_footprint_claims", "--virt-footprint-claim", metavar="CLAIM", action="append", default=[],
           help="claim on the environments' footprint, e.g. 'vm.memory >= 4 * container.memory' or "
                "'container.start <= 0.5 s' (repeatable; see docs/footprint.md)"),
    Option("strict", "--virt-strict", action="store_true", merge="unset", ini="virt_strict", ini_type="bool",
           ini_default=False, ini_help="inconclusive claims fail", help="an inconclusive claim fails its test"),
    Option("gate", "--virt-no-gate", action="store_true", merge="negate", ini="virt_gate", ini_type="bool",
           ini_default=True, ini_help="failed claims fail their tests (false: report them as findings)",
           help="report claim verdicts as findings without failing tests (ini: virt_gate = false)"),
    Option("json_path", "--virt-json", metavar="PATH", help="write results and verdicts as JSON"),
    Option("markdown_path", "--virt-markdown", metavar="PATH", ini="virt_markdown",
           ini_help=_default_for("--virt-markdown"),
           help="write the comparison as Markdown, claims first (it is also appended to "
                "$GITHUB_STEP_SUMMARY when that is set)"),
    Option("select", "--virt-select", metavar="EXPR", ini="virt_select",
           ini_help="default for --virt-select: unmarked tests matching this -k expression are compared too",
           help="also compare the unmarked tests matching EXPR (a -k expression), with the claims "
                "of --virt-claim and virt_claims"),
    Option("report_path", "--virt-report", metavar="PATH",
           help=f"write a self-contained HTML report with plots (needs matplotlib: {HELP_REPORT_INSTALL})"),
    Option("explain", "--virt-explain", action="store_true", default=False,
           help="add ablation environments (a container with seccomp off, with its scratch on a volume) "
                "and report the share of the overhead each removes; say what a VM's accelerator allows"),
    Option("require", "--virt-require", metavar="LIST", action="append", default=[],
           help="environments (names or kinds, or 'all') that must start: an error instead of a skip"),
    Option("rounds", "--virt-rounds", metavar="N", ini="virt_rounds", ini_help=_default_for("--virt-rounds"),
           help=f"measured rounds per marked test (default {DEFAULT_ROUNDS}; the marker's rounds= wins)"),
    Option("time_budget", "--virt-time-budget", metavar="SECONDS", ini="virt_time_budget",
           ini_help=_default_for("--virt-time-budget"),
           help="per marked test, keep adding rounds while a claim is inconclusive, for up to "
                "this many seconds (default 0: fixed rounds only)"),
    Option("max_rounds", "--virt-max-rounds", metavar="N",
           help=f"most measured rounds one test may take under --virt-time-budget (default {DEFAULT_MAX_ROUNDS})"),
    Option("warmup", "--virt-warmup", metavar="N",
           help=f"warm-up calls per marked test in each worker process, not measured (default {DEFAULT_WARMUP})"),
    Option("processes", "--virt-processes", metavar="N", ini="virt_processes",
           ini_help=_default_for("--virt-processes"),
           help="fresh worker processes per environment; rounds rotate over them and the interval "
                "counts the variation between them (default auto: one per round up to 20, 4 in a VM)"),
    Option("calls", "--virt-calls", metavar="N", ini="virt_calls", ini_help=_default_for("--virt-calls"),
           help="calls of a test per round and environment; the round's value is their median "
                "(default auto: enough for about 150 ms of the baseline, at most 10)"),
    Option("confidence", "--virt-confidence", metavar="LEVEL", ini="virt_confidence",
           ini_help=_default_for("--virt-confidence"),
           help="confidence level of the intervals, e.g. 0.95 or 99%% (default 0.95)"),
    Option("correction", "--virt-correction", metavar="METHOD", choices=CORRECTIONS, ini="virt_correction",
           ini_help="default for --virt-correction (none or holm)",
           help="multiple-comparison correction of the verdicts: none (each claim at --virt-confidence) "
                "or holm (family-wise over the run's claims; outcomes are reported after the last "
                "compared test) (default none)"),
    Option("hash_seed", "--virt-hash-seed", metavar="MODE", choices=HASH_SEED_MODES,
           help="PYTHONHASHSEED of the worker processes: paired (process K has the same seed in "
                "every environment) or random (default paired)"),
    Option("seed", "--virt-seed", metavar="N",
           help="seed of the round order, the worker processes' hash seeds and the schedule (default: random, printed)"),
    Option("timeout", "--virt-timeout", metavar="SECONDS", ini="virt_timeout", ini_help=_default_for("--virt-timeout"),
           help=f"longest one job may run in an environment before it is recycled (default {DEFAULT_TIMEOUT:g})"),
    Option("cpus", "--virt-cpus", metavar="CPUS", ini="virt_cpus", ini_help=_default_for("--virt-cpus"),
           help="CPU set of every environment: auto (one CPU, the host's last), all, or e.g. 0-1 (default auto)"),
    Option("cpu_wait", "--virt-cpu-wait", metavar="SECONDS",
           help="how long to wait for CPUs another pytest-virtoverhead session on this host measures "
                f"on, then refuse (default {DEFAULT_CPU_WAIT:g}; 0: refuse at once)"),
    Option("memory", "--virt-memory", metavar="SIZE", ini="virt_memory", ini_help=_default_for("--virt-memory"),
           help=f"memory of containers and VMs, e.g. 1024, 512m, 2g (default {DEFAULT_MEMORY_MB} MiB)"),
    Option("container_image", "--virt-container-image", metavar="IMAGE", env_option=("container", "image"),
           help="run container environments in this image instead of mirroring the host"),
    Option("vm_kernel", "--virt-vm-kernel", metavar="PATH", env_option=("vm", "kernel"),
           help="guest kernel for VM environments (default: the host's under /boot)"),
    Option("vm_accel", "--virt-vm-accel", metavar="ACCEL", choices=VM_ACCELS, env_option=("vm", "accel"),
           help="VM acceleration: auto (KVM if it works, else TCG), kvm or tcg (default auto)"),
    Option("libvirt_uri", "--virt-libvirt-uri", metavar="URI", env_option=("vm", "uri"),
           help="libvirt connection (default qemu:///system for root, qemu:///session otherwise)"),
    # Ini keys without a flag.
    Option("ini_claims", ini="virt_claims", ini_type="linelist", ini_default=[],
           ini_help="claims applied to every marked test, one per line; 'EXPR: CLAIM' applies "
                    "CLAIM to the compared tests matching the -k expression EXPR"),
    Option("ini_footprint_claims", ini="virt_footprint_claims", ini_type="linelist", ini_default=[],
           ini_help="footprint claims (ENV.METRIC OP ...), one per line"),
    Option("ini_waivers", ini="virt_waivers", ini_type="linelist", ini_default=[],
           ini_help="waivers that expire, one per line: '[TEST-ID: ]CLAIM until YYYY-MM-DD: REASON'"),
    Option("env_options", ini="virt_env_options", ini_type="linelist", ini_default=[],
           ini_help="options per named environment: 'NAME: key=value ...' per line"),
    Option("cache_dir", ini="virt_cache_dir", ini_help="where built images, kernels and initramfs are cached"),
    Option("machine", ini="virt_machine",
           ini_help="this host's name in the run document's machine block (the variable "
                    "VIRTOVERHEAD_MACHINE wins; default: the hostname)"),
)


def register(parser: pytest.Parser) -> None:
    """Every flag into the plugin's option group, every ini key (pytest_addoption)."""
    group = parser.getgroup("virtoverhead", "virtualization overhead (pytest-virtoverhead)")
    for opt in OPTIONS:
        if opt.flag is None:
            continue
        kwargs: dict[str, Any] = {"help": opt.help, "default": opt.default}
        if opt.action:
            kwargs["action"] = opt.action
            if opt.action == "store_true" and opt.merge != "empty":
                kwargs["default"] = None  # unset: the ini key decides
        if opt.metavar:
            kwargs["metavar"] = opt.metavar
        if opt.choices:
            kwargs["choices"] = opt.choices
        if opt.action == "append":
            kwargs["default"] = list(opt.default)
        group.addoption(opt.flag, **kwargs)
    for opt in OPTIONS:
        if opt.ini is not None:
            parser.addini(opt.ini, opt.ini_help, type=opt.ini_type,  # type: ignore[arg-type]
                          default=list(opt.ini_default) if isinstance(opt.ini_default, list) else opt.ini_default)


def raw_settings(config: pytest.Config) -> dict[str, Any]:
    """Every option's value as the user gave it, by its raw settings key
    (flag and ini key met as the table says), plus ``kind_defaults`` (the
    environment options of the kinds) and ``declared_envs`` (the ini's
    ``virt_envs``: names a claim may use although they are not in this run)."""
    raw: dict[str, Any] = {}
    kind_defaults: dict[str, dict[str, str]] = {"container": {}, "vm": {}}
    for opt in OPTIONS:
        value = getattr(config.option, opt.dest) if opt.flag else None
        if opt.ini is not None:
            if opt.flag is None:
                value = config.getini(opt.ini)
            elif opt.merge == "negate":
                value = not value and config.getini(opt.ini)
            elif opt.merge == "unset":
                value = value if value is not None else (config.getini(opt.ini) or None)
            elif value in (None, ""):
                value = config.getini(opt.ini)
        if opt.env_option is not None:
            if value:
                kind, key = opt.env_option
                kind_defaults[kind][key] = value
            continue
        raw[opt.field] = value
    raw["kind_defaults"] = kind_defaults
    raw["declared_envs"] = config.getini("virt_envs")
    return raw
