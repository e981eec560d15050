"""The plugin's options into settings: the run's environments and their
options (:class:`Settings`), and each compared test's plan from its marker
(:class:`ItemPlan`). Single values are read by :mod:`.optionvalues`, claim
entries by :mod:`.runclaims`.

Pure functions raising ``ValueError`` with the message a user should see;
the plugin turns them into ``pytest.UsageError``. Imports no pytest.
"""

from __future__ import annotations

import numbers
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..envs import KINDS
from ..envs.base import NAME_RE, EnvSpec
from ..judge import waivers
from ..judge.claims import Claim
from ..judge.optionvalues import (
    DEFAULT_CONFIDENCE,
    parse_confidence,
    parse_cpus,
    parse_memory,
    positive_float,
    positive_int,
)
from ..judge.runclaims import RunClaim, parse_claims, parse_run_claims, split_absent
from .options import (
    CORRECTIONS,
    DEFAULT_CPU_WAIT,
    DEFAULT_ENVS,
    DEFAULT_MAX_ROUNDS,
    DEFAULT_MEMORY_MB,
    DEFAULT_ROUNDS,
    DEFAULT_TIMEOUT,
    DEFAULT_WARMUP,
    HASH_SEED_MODES,
)

#: Worker processes per environment under --virt-processes=auto (the
#: default): the clusters of the interval (see docs/verdicts.md for the
#: measurements behind these). An environment whose processes start in
#: under a second gets one per round, up to AUTO_PROCESSES_MAX (each holds
#: ~28 MiB: 20 take ~560 MiB of a container's 1 GiB); a VM (a
#: worker process takes 6-11 s to start in a TCG guest) gets
#: AUTO_PROCESSES_VM.
AUTO_PROCESSES_MAX = 20
AUTO_PROCESSES_VM = 4
#: Most rounds one test may ask for, whatever --virt-max-rounds says.
ROUNDS_CAP = 100_000


def parse_envs(text: str) -> list[EnvSpec]:
    """``baremetal,container,control=baremetal`` -> specs (no options yet)."""
    specs: list[EnvSpec] = []
    items = [part.strip() for part in text.split(",")]
    if not any(items):
        raise ValueError("--virt-envs: empty list; e.g. --virt-envs=baremetal,container,vm")
    for item in items:
        if not item:
            raise ValueError(f"--virt-envs: empty item in {text!r}")
        name, sep, kind = item.partition("=")
        name, kind = name.strip(), (kind.strip() if sep else name.strip())
        if kind not in KINDS:
            raise ValueError(f"--virt-envs: unknown environment kind {kind!r} in {item!r}; "
                             f"known kinds: {', '.join(KINDS)} (use NAME=KIND for named environments)")
        if not NAME_RE.match(name):
            raise ValueError(f"--virt-envs: invalid environment name {name!r}: use letters, digits "
                             "and underscores, not starting with a digit")
        if any(s.name == name for s in specs):
            raise ValueError(f"--virt-envs: environment {name!r} is named twice; give the second one "
                             f"its own name, e.g. {name}2={kind}")
        specs.append(EnvSpec(name, kind))
    return specs


def parse_env_options(lines: Iterable[str]) -> dict[str, dict[str, str]]:
    """Ini lines ``NAME: key=value key=value`` -> {NAME: {key: value}}."""
    out: dict[str, dict[str, str]] = {}
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, rest = line.partition(":")
        name = name.strip()
        if not sep or not NAME_RE.match(name):
            raise ValueError(f"virt_env_options: expected 'NAME: key=value ...', got {raw!r}")
        opts = out.setdefault(name, {})
        for pair in rest.split():
            key, eq, value = pair.partition("=")
            if not eq or not key:
                raise ValueError(f"virt_env_options: expected key=value for {name!r}, got {pair!r}")
            opts[key] = value
    return out


def declared_names(text: str | None) -> set[str]:
    """Names an ini's ``virt_envs`` declares (``control=baremetal`` ->
    ``control``), read leniently: the run's own list is checked elsewhere."""
    names = set()
    for item in (text or "").split(","):
        name = item.partition("=")[0].strip()
        if name and NAME_RE.match(name):
            names.add(name)
    return names


def marker_rounds(value: Any, cap: int) -> int:
    """The marker's ``rounds=``: a whole number (not a bool, a float or a
    string), at least 1, at most ``cap``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"rounds: expected a whole number such as rounds=10, got {value!r} "
                         f"({type(value).__name__})")
    value = int(value)
    if value < 1:
        raise ValueError(f"rounds: must be at least 1, got {value}")
    check_rounds_cap(value, cap, "rounds")
    return value


def check_rounds_cap(value: int, cap: int, what: str) -> None:
    if value > cap:
        raise ValueError(f"{what}: {value} rounds is more than --virt-max-rounds ({cap}); raise "
                         f"--virt-max-rounds if you mean it (at most {ROUNDS_CAP})")


def resolve_names(texts: Iterable[str], specs: list[EnvSpec], what: str) -> set[str]:
    """Names or kinds (``container`` = every container env), or ``all``."""
    names: set[str] = set()
    known = [s.name for s in specs]
    for text in texts:
        for item in (t.strip() for t in text.split(",")):
            if not item:
                continue
            if item == "all":
                names.update(known)
            elif item in known:
                names.add(item)
            elif item in KINDS:
                names.update(s.name for s in specs if s.kind == item)
                names.add(item)
            else:
                raise ValueError(f"{what}: unknown environment {item!r}; environments of this run: "
                                 f"{', '.join(known)}; kinds: {', '.join(KINDS)}")
    return names


@dataclass(frozen=True)
class Settings:
    """The run's settings, built once from the options (:func:`build_settings`).
    What a session learns later (the CPUs it locked, an xdist worker's CPU
    and seed) makes a new one with ``dataclasses.replace``."""

    compare: bool = False
    specs: list[EnvSpec] = field(default_factory=list)
    baseline: str = "baremetal"
    claims: list[Claim] = field(default_factory=list)
    strict: bool = False
    gate: bool = True
    json_path: str | None = None
    #: --virt-markdown / ini virt_markdown: the comparison as Markdown.
    markdown_path: str | None = None
    #: --virt-select / ini virt_select: a ``-k`` expression; matching tests
    #: without the marker are compared too (the plugin compiles it with
    #: pytest's own matcher: this module imports no pytest).
    select: str | None = None
    require: set[str] = field(default_factory=set)
    rounds: int = DEFAULT_ROUNDS
    warmup: int = DEFAULT_WARMUP
    #: --virt-processes: worker processes per environment (0: auto, see processes_for).
    processes: int = 0
    #: --virt-calls: calls per environment and round (0: auto, from the warm-up).
    calls: int = 0
    confidence: float = DEFAULT_CONFIDENCE
    #: --virt-hash-seed: paired (a slot's processes share PYTHONHASHSEED across environments) or random.
    hash_seed: str = "paired"
    seed: int = 0
    timeout: float = DEFAULT_TIMEOUT
    #: Seconds of extra rounds per test while a claim is inconclusive (0: off).
    time_budget: float = 0.0
    max_rounds: int = DEFAULT_MAX_ROUNDS
    cpus: tuple[int, ...] | None = None
    #: --virt-cpus=auto: the session may take another free CPU when a peer
    #: session holds this one (see :mod:`.hostlock`).
    cpus_auto: bool = False
    #: Seconds to wait for CPUs another session measures on (--virt-cpu-wait).
    cpu_wait: float = DEFAULT_CPU_WAIT
    memory_mb: int = DEFAULT_MEMORY_MB
    #: Names a claim or marker may use although they are not in this run:
    #: the kinds and the names the ini's ``virt_envs`` declares. Claims
    #: about them are skipped ("not in this run").
    elsewhere: set[str] = field(default_factory=set)
    #: Run-wide claims (--virt-claim, ini) naming such an environment.
    skipped_claims: list[tuple[Claim, str]] = field(default_factory=list)
    #: Every run-wide entry in order (ini, then --virt-claim), plain and
    #: group (``EXPR: CLAIM``) alike; ``claims`` and ``skipped_claims``
    #: hold the plain ones.
    run_claims: list[RunClaim] = field(default_factory=list)
    #: --virt-correction / ini virt_correction: none or holm.
    correction: str = "none"
    kind_defaults: dict[str, dict[str, str]] = field(default_factory=dict)
    #: ini virt_waivers (waivers.Waiver), checked against the tests' claims at collection.
    waivers: list[Any] = field(default_factory=list)
    #: --virt-explain: the ablation environments (explain.Ablation) added to specs.
    ablations: list[Any] = field(default_factory=list)
    explain: bool = False

    @property
    def env_names(self) -> list[str]:
        return [s.name for s in self.specs]

    def spec(self, name: str) -> EnvSpec | None:
        return next((s for s in self.specs if s.name == name), None)

    def required(self, spec: EnvSpec) -> bool:
        return spec.name in self.require or spec.kind in self.require

    def processes_for(self, name: str, rounds: int) -> int:
        """Worker processes of environment ``name`` for a test of ``rounds``
        rounds: --virt-processes when given, else (auto) one per round up
        to AUTO_PROCESSES_MAX, and AUTO_PROCESSES_VM for a VM."""
        if self.processes:
            return self.processes
        spec = self.spec(name)
        if (spec.kind if spec else name) == "vm":
            return AUTO_PROCESSES_VM
        return max(2, min(AUTO_PROCESSES_MAX, rounds))


def build_settings(raw: Mapping[str, Any]) -> Settings:
    """Settings from raw option values (strings as the user typed them)."""
    envs = raw.get("envs")
    parsed = parse_envs(DEFAULT_ENVS if envs is None else envs)  # "" (--virt-envs=) is an error
    options = parse_env_options(raw.get("env_options") or [])
    kind_defaults: dict[str, dict[str, str]] = {k: dict(v) for k, v in (raw.get("kind_defaults") or {}).items()}
    elsewhere = (set(KINDS) | declared_names(raw.get("declared_envs"))) - {sp.name for sp in parsed}
    unknown = sorted(set(options) - {sp.name for sp in parsed} - set(KINDS) - elsewhere)
    if unknown:
        raise ValueError(f"virt_env_options: options for unknown environment(s) {', '.join(unknown)}; "
                         f"environments of this run: {', '.join(sp.name for sp in parsed)}")
    specs = [EnvSpec(sp.name, sp.kind, {**kind_defaults.get(sp.kind, {}), **options.get(sp.kind, {}),
                                        **options.get(sp.name, {})})
             for sp in parsed]
    explain = bool(raw.get("explain"))
    ablations: list[Any] = []
    if explain:  # --virt-explain: ablation environments beside their parents
        from .explain import ablation_specs

        extra = ablation_specs(specs)
        specs += [sp for sp, _ in extra]
        ablations = [ab for _, ab in extra]
    # Options for fixture-only kinds (a `vm` fixture used without vm in the run).
    for kind in KINDS:
        kind_defaults[kind] = {**kind_defaults.get(kind, {}), **options.get(kind, {})}
    names = [sp.name for sp in specs]
    baseline = raw.get("baseline") or ("baremetal" if "baremetal" in names else names[0])
    if baseline not in names:
        raise ValueError(f"--virt-baseline: unknown environment {baseline!r}; environments of this run: "
                         f"{', '.join(names)}")
    run_claims = (parse_run_claims(raw.get("ini_claims") or [], "virt_claims (ini)", names, elsewhere)
                  + parse_run_claims(raw.get("cli_claims") or [], "--virt-claim", names, elsewhere))
    claims, skipped_claims = split_absent([rc.claim for rc in run_claims if rc.expr is None], names)
    ini_waivers = waivers.ini_waivers(raw.get("ini_waivers") or [])
    require = resolve_names(raw.get("require") or [], specs, "--virt-require")
    max_rounds = positive_int(raw.get("max_rounds") or DEFAULT_MAX_ROUNDS, "--virt-max-rounds")
    if max_rounds > ROUNDS_CAP:
        raise ValueError(f"--virt-max-rounds: at most {ROUNDS_CAP}, got {max_rounds}")
    rounds = positive_int(raw.get("rounds") or DEFAULT_ROUNDS, "--virt-rounds")
    check_rounds_cap(rounds, max_rounds, "--virt-rounds")
    warmup = raw.get("warmup")
    try:
        warmup = int(DEFAULT_WARMUP if warmup in (None, "") else warmup)
    except (TypeError, ValueError):
        raise ValueError(f"--virt-warmup: expected a whole number, got {warmup!r}") from None
    if warmup < 0:
        raise ValueError("--virt-warmup: must be 0 or more")
    seed = raw.get("seed")
    if seed in (None, ""):
        seed = random.SystemRandom().randrange(1, 2**31)
    else:
        try:
            seed = int(seed)
        except (TypeError, ValueError):
            raise ValueError(f"--virt-seed: expected a whole number, got {seed!r}") from None
    timeout = positive_float(raw.get("timeout") or DEFAULT_TIMEOUT, "--virt-timeout")
    budget = raw.get("time_budget")
    time_budget = 0.0 if budget in (None, "", "0") else positive_float(budget, "--virt-time-budget")
    procs = str(raw.get("processes") or "auto").strip().lower()
    processes = 0 if procs == "auto" else positive_int(procs, "--virt-processes")
    calls_text = str(raw.get("calls") or "auto").strip().lower()
    calls = 0 if calls_text == "auto" else positive_int(calls_text, "--virt-calls")
    confidence = parse_confidence(raw.get("confidence"))
    correction = str(raw.get("correction") or "none").strip().lower()
    if correction not in CORRECTIONS:
        raise ValueError(f"--virt-correction: expected one of {', '.join(CORRECTIONS)}, got {correction!r}")
    mode = str(raw.get("hash_seed") or "paired").strip().lower()
    if mode not in HASH_SEED_MODES:
        raise ValueError(f"--virt-hash-seed: expected one of {', '.join(HASH_SEED_MODES)}, got {mode!r}")
    cpus_text = str(raw.get("cpus") or "auto")
    cpus = parse_cpus(cpus_text)
    cpu_wait = _cpu_wait(raw.get("cpu_wait"))
    memory_mb = parse_memory(str(raw.get("memory") or DEFAULT_MEMORY_MB))
    s = Settings(
        compare=bool(raw.get("compare")), specs=specs, baseline=baseline, claims=claims, strict=bool(raw.get("strict")),
        gate=bool(raw.get("gate", True)), json_path=raw.get("json_path") or None,
        markdown_path=raw.get("markdown_path") or None, select=str(raw.get("select") or "").strip() or None,
        require=require, rounds=rounds, warmup=warmup,
        processes=processes, calls=calls, confidence=confidence,
        hash_seed=mode, seed=seed, timeout=timeout, time_budget=time_budget, max_rounds=max_rounds, cpus=cpus,
        cpus_auto=cpus_text.strip().lower() == "auto", cpu_wait=cpu_wait,
        memory_mb=memory_mb, elsewhere=elsewhere,
        skipped_claims=skipped_claims, run_claims=run_claims, correction=correction, kind_defaults=kind_defaults,
        waivers=ini_waivers, ablations=ablations, explain=explain)
    _check_env_options(s.specs)
    return s


def _cpu_wait(wait: Any) -> float:
    if wait in (None, ""):
        return DEFAULT_CPU_WAIT
    try:
        value = float(wait)
    except (TypeError, ValueError):
        raise ValueError(f"--virt-cpu-wait: expected a number of seconds, got {wait!r}") from None
    if not 0 <= value < float("inf"):
        raise ValueError(f"--virt-cpu-wait: must be 0 (refuse at once) or more seconds, got {wait!r}")
    return value


def _check_env_options(specs: Iterable[EnvSpec]) -> None:
    """Validate per-kind options early (unknown keys are usage errors). An
    environment without options has nothing to check: its backend module
    (~20 ms to import) is not loaded in runs that never start it."""
    from ..envs import backend_class

    for sp in specs:
        if not sp.options:
            continue
        try:
            cls = backend_class(sp.kind)
        except ImportError:
            continue  # the backend reports itself unavailable when used
        cls.check_options(sp.options)


@dataclass
class ItemPlan:
    """What the ``virt`` marker of one test asks for."""

    claims: list[Claim]
    envs: list[str]
    rounds: int
    #: Claims naming a known environment that is not in this run, with the
    #: reason (``vm: not in this run``): their verdict is ``skipped``.
    skipped_claims: list[tuple[Claim, str]] = field(default_factory=list)
    #: Environments the marker's ``envs=`` names that are not in this run.
    absent_envs: list[str] = field(default_factory=list)
    #: Waivers (waivers.Waiver) of this test's claims: the marker's
    #: ``waive=``, then the ini ``virt_waivers`` whose scope takes this test.
    waivers: list[Any] = field(default_factory=list)
    #: Where each claim was written: (``marker``, None), or a run-wide
    #: entry's (source, the group's -k expression or None).
    sources: dict[Claim, tuple[str, str | None]] = field(default_factory=dict)


def plan_for_marker(nodeid: str, args: tuple, kwargs: Mapping[str, Any], settings: Settings,
                    groups: Iterable[RunClaim] = ()) -> ItemPlan:
    """Read ``@pytest.mark.virt(claims=[...], envs=[...], rounds=N)`` of one
    test against the run's settings; ValueError names the test. The run's
    plain claims apply, and of its group entries (``EXPR: CLAIM``) those in
    ``groups``: the plugin's -k matcher chose them for this test.

    A claim or ``envs=`` entry naming a kind or a declared environment that
    this run does not have is not an error: the claim is set aside in
    ``skipped_claims`` ("not in this run"). Only a name that is neither is.
    """
    unknown = set(kwargs) - {"claims", "envs", "rounds", "waive"}
    if unknown or args:
        raise ValueError(f"{nodeid}: @pytest.mark.virt takes claims=[...], envs=[...], rounds=N and "
                         f"waive={{CLAIM: (UNTIL, REASON)}} as keywords; got {args or ''} "
                         f"{sorted(unknown) or ''}".rstrip())
    names = settings.env_names
    wanted = kwargs.get("envs") or names
    if isinstance(wanted, str):
        wanted = [wanted]
    absent_envs: list[str] = []
    for name in wanted:
        if name in names:
            continue
        if name in settings.elsewhere:
            absent_envs.append(name)
            continue
        raise ValueError(f"{nodeid}: @pytest.mark.virt(envs=...) names unknown environment "
                         f"{name!r}; environments of this run: {', '.join(names)}; kinds and other "
                         f"declared environments: {', '.join(sorted(settings.elsewhere))}")
    parents = {ab.name: ab.parent for ab in settings.ablations}
    envs = [n for n in names if n in wanted or n == settings.baseline or parents.get(n) in wanted]
    texts = kwargs.get("claims") or []
    claims = parse_claims([texts] if isinstance(texts, str) else texts, nodeid, names, settings.elsewhere)
    sources: dict[Claim, tuple[str, str | None]] = {c: ("marker", None) for c in claims}
    groups = list(groups)
    for rc in settings.run_claims:
        if (rc.expr is None or rc in groups) and rc.claim not in claims:
            claims.append(rc.claim)
            sources[rc.claim] = (rc.source, rc.expr)
    if kwargs.get("envs"):
        # Claims about environments this test does not run in do not apply.
        scope = set(envs) | set(absent_envs)
        claims = [c for c in claims if all(n in scope for n in c.envs)]
    claims, skipped = split_absent(claims, names)
    rounds = kwargs.get("rounds")
    try:
        rounds = settings.rounds if rounds is None else marker_rounds(rounds, settings.max_rounds)
    except ValueError as exc:
        raise ValueError(f"{nodeid}: @pytest.mark.virt: {exc}") from None
    every = claims + [c for c, _ in skipped]
    marked = waivers.marker_waivers(nodeid, kwargs["waive"]) if kwargs.get("waive") is not None else []
    for w in marked:
        if not any(w.matches(c) for c in every):
            raise waivers.WaiverError(waivers.waiver_usage(w, every))
    ini = [w for w in settings.waivers if w.applies_to(nodeid) and any(w.matches(c) for c in every)]
    return ItemPlan(claims, envs, rounds, skipped, absent_envs, marked + ini, sources)
