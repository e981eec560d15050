"""One host session: its environments, the rounds of each compared test,
and the verdicts on its claims.

Nothing here imports pytest: the plugin turns results into reports.
"""

from __future__ import annotations

import dataclasses
import math
import random
import signal
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from . import noise, stats
from .claims import ABSOLUTE, FAIL, FIXED, INCONCLUSIVE, PASS, RATIO, Claim
from .config import Settings
from .envs import backend_class
from .envs.base import EnvSpec, RunContext
from .envs.errors import EnvError, EnvUnavailable, RemoteError
from .envs.handle import Environment

SKIPPED = "skipped"


#: Longest stop_all() waits for starts in progress (each gives up early
#: when cancelled) before it stops what exists.
START_CANCEL_WAIT = 20.0


class EnvironmentPool:
    """Creates, starts (lazily, in parallel when asked) and stops environments.

    A failure to start is remembered: the next test that needs the same
    environment is skipped at once with the same reason.

    Interrupts: parallel starts run in daemon threads the main thread waits
    for, so Ctrl-C is seen at once; :meth:`stop_all` cancels starts in
    progress and waits for them before it stops everything. While
    environments may be running, SIGTERM raises KeyboardInterrupt (as
    Ctrl-C does), so a terminated session cleans up too. A second Ctrl-C
    during :meth:`stop_all` kills what is left without waiting for workers.
    """

    def __init__(self, settings: Settings, ctx: RunContext):
        self.settings = settings
        self.ctx = ctx
        self._envs: dict[str, Environment] = {}
        self._failed: dict[str, str] = {}
        self._reaped: set[str] = set()
        self._lock = threading.RLock()
        self.reaped: list[str] = []
        self._starting: list[threading.Thread] = []
        self._closing = False
        self._sigterm: Any = None  # the handler replaced while environments run

    def spec_for(self, name: str) -> EnvSpec:
        spec = self.settings.spec(name)
        if spec is not None:
            return spec
        # A fixture named after a kind works even when the run did not list it.
        from .envs import KINDS

        if name in KINDS:
            return EnvSpec(name, name, dict(self.settings.kind_defaults.get(name, {})))
        raise KeyError(f"unknown environment {name!r}; environments of this run: "
                       f"{', '.join(self.settings.env_names)}")

    def _reap(self, kind: str, cls: Any) -> None:
        if kind in self._reaped:
            return
        self._reaped.add(kind)
        try:
            self.reaped.extend(cls.reap(self.ctx))
        except EnvUnavailable:
            pass  # the start below reports it
        except Exception as exc:  # noqa: BLE001 - reaping is best effort
            self.reaped.append(f"(reaping {kind} failed: {exc})")

    def get(self, name: str) -> Environment:
        """The started environment ``name``; EnvUnavailable if it cannot start."""
        self._arm_sigterm()
        with self._lock:
            if self._closing:
                raise EnvUnavailable(f"environment {name!r} was not started: the session is ending")
            if name in self._failed:
                raise EnvUnavailable(self._failed[name])
            env = self._envs.get(name)
            if env is None:
                spec = self.spec_for(name)
                try:
                    cls = backend_class(spec.kind)
                except ImportError as exc:
                    self._failed[name] = f"{spec.kind} environments need a module that is missing: {exc}"
                    raise EnvUnavailable(self._failed[name]) from None
                self._reap(spec.kind, cls)
                env = Environment(cls(spec, self.ctx))
                env.footprint_on = self.settings.compare
                self._envs[name] = env
        try:
            env.start()
        except EnvUnavailable as exc:
            with self._lock:
                self._failed[name] = str(exc)
            raise
        if self._closing:  # stop_all() ran while this start was in progress
            env.stop(graceful=False)
            raise EnvUnavailable(f"environment {name!r} was stopped: the session is ending")
        return env

    def try_get(self, name: str) -> tuple[Environment | None, str | None]:
        try:
            return self.get(name), None
        except EnvUnavailable as exc:
            return None, str(exc)

    def start_all(self, names: Iterable[str]) -> dict[str, str]:
        """Start several environments in parallel; return {name: reason} of failures.

        Each start runs in a daemon thread: an interrupt reaches the caller
        at once, and an interpreter leaving never waits for a VM to boot.
        """
        self._arm_sigterm()
        names = [n for n in names if n not in self._failed]
        reasons: dict[str, str | None] = {}

        def start(name: str) -> None:
            try:
                reasons[name] = self.try_get(name)[1]
            except Exception as exc:  # noqa: BLE001 - a backend's bug must not end the session
                reasons[name] = f"environment {name!r} could not start: {type(exc).__name__}: {exc}"
                with self._lock:
                    self._failed[name] = reasons[name]

        threads = [threading.Thread(target=start, args=(n,), name=f"virt-start-{n}", daemon=True) for n in names]
        with self._lock:
            self._starting = [t for t in self._starting if t.is_alive()] + threads
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {n: r for n, r in reasons.items() if r}

    def failure(self, name: str) -> str | None:
        return self._failed.get(name)

    def started(self) -> dict[str, Environment]:
        return {n: e for n, e in self._envs.items() if e.start_time is not None}

    def metadata(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for spec in self.settings.specs:
            env = self._envs.get(spec.name)
            if env is not None and env.start_time is not None:
                out[spec.name] = env.metadata
            else:
                out[spec.name] = {"name": spec.name, "kind": spec.kind, "options": dict(spec.options)}
                if spec.name in self._failed:
                    out[spec.name]["unavailable"] = self._failed[spec.name]
        return out

    def stop_all(self) -> None:
        """Stop every environment: cancel starts in progress, wait for them
        (bounded), then stop each one. A KeyboardInterrupt meanwhile (a
        second Ctrl-C) has the rest killed at once; one more propagates."""
        with self._lock:
            self._closing = True
            envs = list(self._envs.values())
            starting = [t for t in self._starting if t.is_alive()]
        for env in envs:
            env.backend.cancelled.set()
        graceful = True
        errors = []
        try:
            try:
                deadline = time.monotonic() + START_CANCEL_WAIT
                for t in starting:
                    t.join(max(0.0, deadline - time.monotonic()))
            except KeyboardInterrupt:
                graceful = False
                _say_interrupted_again()
            with self._lock:
                envs = list(self._envs.values())
            for env in envs:
                try:
                    env.stop(graceful=graceful)
                except KeyboardInterrupt:
                    if not graceful:
                        raise
                    graceful = False
                    _say_interrupted_again()
                    env.stop(graceful=False)
                except Exception as exc:  # noqa: BLE001 - stop every one, report after
                    errors.append(f"{env.name}: {exc}")
        finally:
            self._disarm_sigterm()
        if errors:
            raise EnvError("could not stop every environment: " + "; ".join(errors))

    # -- SIGTERM ------------------------------------------------------------

    def _arm_sigterm(self) -> None:
        """Make SIGTERM raise KeyboardInterrupt while environments may run.

        Only from the main thread, and only where SIGTERM has its default
        action (a handler someone else installed is left alone).
        """
        if self._sigterm is not None or threading.current_thread() is not threading.main_thread():
            return
        try:
            if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
                return
            self._sigterm = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
        except (ValueError, OSError):  # not the main interpreter
            pass

    def _disarm_sigterm(self) -> None:
        if self._sigterm is None or threading.current_thread() is not threading.main_thread():
            return
        try:
            if signal.getsignal(signal.SIGTERM) is _sigterm_to_interrupt:
                signal.signal(signal.SIGTERM, self._sigterm)
        except (ValueError, OSError):
            pass
        self._sigterm = None


def _sigterm_to_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt("terminated (SIGTERM)")


def _say_interrupted_again() -> None:
    sys.stderr.write("\npytest-virtoverhead: interrupted again: removing the environments without waiting "
                     "for their workers (once more to leave them to the next session's reaper)\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------
# results


@dataclass
class ClaimResult:
    test: str
    claim: Claim
    ratio: float
    ci: tuple[float, float]
    verdict: str
    p_value: float | None = None
    reason: str = ""
    accel: str | None = None
    estimate: stats.Estimate | None = None
    #: For an inconclusive claim: the rounds (in all) and extra seconds an
    #: interval of today's spread would need to decide it (nan: unknown).
    rounds_needed: float | None = None
    seconds_needed: float | None = None
    #: The waiver (:class:`.waivers.Waiver`) that matches this claim, if any.
    waiver: Any = None
    #: The message of a matching waiver past its date (it fails the test), else "".
    waiver_expired: str = ""
    #: Where the claim was written (``marker``, ``virt_claims (ini) entry 2``,
    #: ``--virt-claim 1``), and a group entry's -k expression.
    source: str = ""
    group: str | None = None
    #: Under --virt-correction=holm: the verdict of the claim's own
    #: interval, Holm's adjusted p-value of the claim's conclusion (the
    #: smaller of its two), and the family's size (None: no correction).
    verdict_uncorrected: str | None = None
    p_adjusted: float | None = None
    family_size: int | None = None

    @property
    def waived(self) -> bool:
        """A waiver in force: a failed (or strictly inconclusive) verdict does not fail the test."""
        return self.waiver is not None and not self.waiver_expired

    def to_json(self) -> dict[str, Any]:
        out = {
            "test": self.test,
            "claim": self.claim.text,
            "env": self.claim.env,
            "baseline": self.claim.baseline,
            "ratio": _num(self.ratio),
            "ci": [_num(self.ci[0]), _num(self.ci[1])],
            "verdict": self.verdict,
            "bounds": [self.claim.lower, self.claim.upper],
            # "ratio", "ci" and "bounds" are in this unit: "ratio", or "s"
            # (seconds) for a fixed-cost or absolute claim, whose estimate
            # is of "quantity" (vm - 1.2 * baremetal; container).
            "kind": self.claim.kind,
            "unit": self.claim.unit,
            "quantity": self.claim.quantity,
            "p_value": _num(self.p_value),
            **({"reason": self.reason} if self.reason else {}),
            **({"accel": self.accel} if self.accel else {}),
            **({"source": self.source} if self.source else {}),
            **({"group": self.group} if self.group is not None else {}),
            **({"verdict_uncorrected": self.verdict_uncorrected, "p_adjusted": _num(self.p_adjusted)}
               if self.verdict_uncorrected is not None else {}),
        }
        est = self.estimate
        if est is not None:
            out.update(confidence=est.confidence, method=est.method, processes=est.n_clusters, rounds=est.n,
                       resolution=_num(est.half_width if est.scale == stats.LINEAR else _resolution(est)))
        if self.verdict == INCONCLUSIVE:
            out.update(rounds_needed=_num(self.rounds_needed), seconds_needed=_num(self.seconds_needed))
        if self.waiver is not None:
            out["waiver"] = self.waiver.to_json(bool(self.waiver_expired))
            if self.waived:
                out["waived"] = self.waiver.text  # "waived until 2027-01-31: reason"
            else:
                out["waiver_expired"] = self.waiver_expired
        return out

    def message(self) -> str:
        level = f"{self.estimate.confidence:.0%}" if self.estimate else "95%"
        text = (f"claim '{self.claim.text}' {self.verdict}: {self.estimate_text(level)} "
                f"(needs {self.claim.describe_bounds()})")
        if self.accel:
            text += f" [{self.claim.env}: {self.accel}]"
        if self.verdict_uncorrected is not None and self.verdict != INCONCLUSIVE:
            text += f"; {self.holm_text()}"
        if self.verdict == INCONCLUSIVE:
            text += "; " + self.what_would_decide()
        if self.waived:
            text += f"; {self.waiver.text}"
        return text

    def holm_text(self) -> str:
        """``Holm over 14 claims: adjusted p=0.003`` (and, when the
        correction kept a verdict open, what the claim's own interval said)."""
        p = "-" if self.p_adjusted is None or math.isnan(self.p_adjusted) else f"{self.p_adjusted:.3g}"
        text = f"Holm over {self.family_size} claims: adjusted p={p}"
        if self.verdict == INCONCLUSIVE and self.verdict_uncorrected in (PASS, FAIL):
            level = f"{self.estimate.confidence:.0%}" if self.estimate else "95%"
            text += f", so not {self.verdict_uncorrected} as its own {level} interval alone says"
        return text

    def what_would_decide(self) -> str:
        """One line for an inconclusive claim: the effect the data resolve
        and the rounds (and time) an interval of today's spread would need."""
        est = self.estimate
        if est is None or not (est.se > 0):
            return "too few rounds to tell what would decide it"
        if self.verdict_uncorrected is not None:
            return self.holm_text() + "; " + self._rounds_text(est)
        return self._rounds_text(est)

    def _rounds_text(self, est: stats.Estimate) -> str:
        if est.scale == stats.LINEAR:
            text = f"the data resolve +-{self.claim.format_value(est.half_width)}"
        else:
            text = f"the data resolve +-{_resolution(est):.1%}"
        need = self.rounds_needed
        if need is None or math.isnan(need):
            return text
        if math.isinf(need) or need > 1e6:
            what = "ratio" if self.claim.unit == RATIO else "estimate"
            return text + f"; the {what} sits on the claim's bound: no number of rounds decides it"
        text += f"; about {math.ceil(need)} rounds in all would decide it"
        if self.seconds_needed is not None and math.isfinite(self.seconds_needed) and self.seconds_needed > 0:
            text += f" (~{self.seconds_needed:.0f} s more; --virt-rounds or --virt-time-budget)"
        return text

    def estimate_text(self, level: str | None = None) -> str:
        """``ratio 1.234, 95% CI [1.1, 1.3]`` or, for a time claim,
        ``vm - 1.2 * baremetal 2.1 ms, 95% CI [1.5 ms, 2.7 ms]``;
        without ``level``: ``ratio 1.234 [1.100, 1.300]``."""
        c = self.claim
        name = "ratio" if c.unit == RATIO else c.quantity
        ci = f"[{c.format_value(self.ci[0])}, {c.format_value(self.ci[1])}]"
        return f"{name} {c.format_value(self.ratio)}" + (f", {level} CI {ci}" if level else f" {ci}")


def _resolution(est: stats.Estimate) -> float:
    """Relative half-width of the interval: the smallest effect it resolves."""
    if not math.isfinite(est.half_width):
        return math.nan
    return math.expm1(est.half_width)


def _num(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


@dataclass
class RoundRecord:
    """One measured round: each environment's value (the median of its
    calls, or of its pytest-benchmark samples) in worker process ``slot``,
    with what the noise sentinel saw."""

    index: int
    slot: int
    order: list[str]
    values: dict[str, float] = field(default_factory=dict)
    #: {env: the worker process slot env's block ran in, on both sides}:
    #: the round's ``slot`` folded onto the pair's processes (a VM with 4
    #: processes serves round slot 7 in its process 3, the baseline too).
    slots: dict[str, int] = field(default_factory=dict)
    #: {(env, ref): (env's value, ref's value, slot)} from a block of its
    #: own for a claim between two environments that are not the baseline
    #: (``c2 ~= container``): their calls alternate as a baseline's do.
    pair_values: dict[tuple[str, str], tuple[float, float, int]] = field(default_factory=dict)
    #: {env: the baseline's value in env's own block of this round}: the
    #: baseline calls that sat next to env's calls (what env is paired with).
    paired_baseline: dict[str, float] = field(default_factory=dict)
    raw: dict[str, list[float]] = field(default_factory=dict)
    n_samples: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    worker_noise: dict[str, dict[str, float]] = field(default_factory=dict)
    steal: float = 0.0
    steal_ticks: int = 0
    load1: float | None = None
    seconds: float = 0.0
    disturbed: list[str] = field(default_factory=list)
    #: False when the round was disturbed and a retry replaced it.
    used: bool = True

    def to_json(self, env: str) -> dict[str, Any]:
        w = self.worker_noise.get(env, {})
        return {"round": self.index, "process": self.slots.get(env, self.slot), "value": self.values.get(env),
                **({"baseline_value": self.paired_baseline[env]} if env in self.paired_baseline else {}),
                **({"paired_with": {ref: {"value": v, "ref_value": r, "process": k}
                                    for (e, ref), (v, r, k) in self.pair_values.items() if e == env}}
                   if any(e == env for e, _ in self.pair_values) else {}),
                "n": self.n_samples.get(env), "pid": self.pids.get(env),
                "disturbed": bool(self.disturbed), "used": self.used,
                "noise": {"steal": round(self.steal, 4), "steal_ticks": self.steal_ticks, "load1": self.load1,
                          "nivcsw": w.get("nivcsw"), "cpu": w.get("cpu"), "wall": w.get("wall")}}


@dataclass
class ItemResult:
    """Everything measured for one compared test."""

    nodeid: str
    envs: list[str]
    baseline: str
    round_log: list[RoundRecord] = field(default_factory=list)
    source: dict[str, str] = field(default_factory=dict)  # "call" or "benchmark"
    unavailable: dict[str, str] = field(default_factory=dict)
    failure: tuple[str, str] | None = None  # (env, text): the test failed there
    skipped: tuple[str, str] | None = None
    #: (env, reason): the test failed as expected (pytest.mark.xfail) there.
    xfailed: tuple[str, str] | None = None
    #: The xfail reason of a test that passed although marked xfail.
    xpassed: str | None = None
    rounds: int = 0
    #: Why measuring stopped: "rounds" (the fixed count), "conclusive",
    #: "time budget" or "max rounds" (adaptive sampling).
    stopped_by: str = ""
    ratios: dict[str, tuple[float, tuple[float, float]]] = field(default_factory=dict)
    estimates: dict[str, stats.Estimate] = field(default_factory=dict)
    claims: list[ClaimResult] = field(default_factory=list)
    #: {env: {"amount", "unit", "seconds"?}} from record_work(), last call.
    work: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: {env: [the workload's own rate per round]} when it timed itself.
    own_rates: dict[str, list[float]] = field(default_factory=dict)
    #: {env: calls per round in env's block (the baseline makes as many there)}.
    calls: dict[str, int] = field(default_factory=dict)
    #: {(env, ref): calls per round} of the blocks of claims between two
    #: environments that are not the baseline.
    pair_calls: dict[tuple[str, str], int] = field(default_factory=dict)
    processes: dict[str, dict[int, int]] = field(default_factory=dict)
    #: {env: its number of worker processes for this test}.
    process_counts: dict[str, int] = field(default_factory=dict)
    hash_seeds: dict[str, dict[int, int]] = field(default_factory=dict)
    retries: int = 0

    @classmethod
    def from_samples(cls, nodeid: str, envs: list[str], baseline: str, samples: dict[str, list[float]],
                     processes: int = 1, **fields: Any) -> "ItemResult":
        """A result from per-round values (round i in process i % processes
        + 1): for offline use and hand-made examples."""
        res = cls(nodeid=nodeid, envs=envs, baseline=baseline, **fields)
        n = max((len(v) for v in samples.values()), default=0)
        for i in range(n):
            rec = RoundRecord(index=i, slot=i % processes + 1, order=list(samples))
            rec.values = {env: float(v[i]) for env, v in samples.items() if i < len(v)}
            res.round_log.append(rec)
        res.rounds = n
        return res

    @property
    def used_rounds(self) -> list[RoundRecord]:
        return [r for r in self.round_log if r.used]

    @property
    def samples(self) -> dict[str, list[float]]:
        """{env: [its value in each used round]}: the statistical units."""
        out: dict[str, list[float]] = {}
        for rec in self.used_rounds:
            for env, value in rec.values.items():
                out.setdefault(env, []).append(value)
        return out

    @property
    def order(self) -> list[list[str]]:
        return [rec.order for rec in self.used_rounds]

    @property
    def disturbed_rounds(self) -> int:
        return sum(1 for rec in self.round_log if rec.disturbed)

    def paired(self, env: str, base: str) -> tuple[list[float], list[float], list[int]]:
        """Values of ``env`` and ``base`` in the used rounds that have both,
        and each round's process slot (the cluster)."""
        a, b, slots = [], [], []
        for rec in self.used_rounds:
            if (env, base) in rec.pair_values or (base, env) in rec.pair_values:
                # The two sides of a block of their own (a claim between two
                # environments that are not the baseline).
                if (env, base) in rec.pair_values:
                    va, vb, slot = rec.pair_values[env, base]
                else:
                    vb, va, slot = rec.pair_values[base, env]
                a.append(va)
                b.append(vb)
                slots.append(slot)
            elif env in rec.values and base in rec.values:
                a.append(rec.values[env])
                # Against the run's baseline: the baseline calls of env's own block.
                b.append(rec.paired_baseline.get(env, rec.values[base]) if base == self.baseline else rec.values[base])
                slots.append(rec.slots.get(env, rec.slot))
        return a, b, slots

    def rate(self, env: str) -> tuple[float, str] | None:
        """(rate, label): the workload's own figure where it timed itself
        (e.g. sysbench's events/s), else work over the call's wall time,
        labelled so ("events/s wall")."""
        work = self.work.get(env)
        if not work:
            return None
        own = self.own_rates.get(env)
        if own:
            return stats.median(own), f"{work['unit']}/s"
        samples = self.samples.get(env)
        if not samples or self.source.get(env) != "call":
            return None
        med = stats.median(samples)
        return (work["amount"] / med, f"{work['unit']}/s wall") if med > 0 else None

    def failed_claims(self, strict: bool) -> list[ClaimResult]:
        bad = {FAIL, INCONCLUSIVE} if strict else {FAIL}
        return [c for c in self.claims if c.verdict in bad]

    def seconds_per_round(self) -> float:
        used = self.used_rounds
        return sum(r.seconds for r in used) / len(used) if used else math.nan


def stable_seed(*parts: Any) -> int:
    return zlib.crc32(":".join(str(p) for p in parts).encode())


#: Auto calls per round: enough calls of the baseline to fill this many
#: seconds (the median of 3-5 calls drops a call hit by a burst of noise),
#: at most AUTO_CALLS_MAX, and no more than the slowest
#: environment can serve in AUTO_CALLS_SLOWEST_SECONDS, counting each
#: request's whole cost there (a TCG guest spends ~0.1-0.5 s on pytest's
#: own per-test work); see docs/verdicts.md.
AUTO_CALLS_SECONDS = 0.15
AUTO_CALLS_MAX = 10
AUTO_CALLS_SLOWEST_SECONDS = 0.5


def auto_calls(warm: dict[str, list[float]], baseline: str,
               requests: dict[str, list[float]] | None = None) -> int:
    """Calls per round, the same in every environment (a median of 5 calls
    and a single call estimate different things when call times are
    skewed), from the warm-up: the baseline's fastest call time (the first
    call in a process carries imports and cold caches) and each
    environment's fastest request (call plus dispatch and pytest's work)."""
    fastest = {n: min(t for t in ts if t > 0) for n, ts in warm.items() if any(t > 0 for t in ts)}
    if baseline not in fastest or not all(math.isfinite(t) for t in fastest.values()):
        return 1
    costs = {n: min(ts) for n, ts in (requests or {}).items() if ts}
    slowest = max([*fastest.values(), *costs.values()])
    k = math.ceil(AUTO_CALLS_SECONDS / fastest[baseline])
    k = min(k, math.floor(AUTO_CALLS_SLOWEST_SECONDS / slowest + 1e-9))
    return max(1, min(AUTO_CALLS_MAX, k))


def max_retries(rounds: int) -> int:
    """Disturbed rounds retried per test at most: a quarter of the rounds, at least 2."""
    return max(2, rounds // 4)


class Comparator:
    """Runs a compared test in every environment, in interleaved rounds
    rotated over each environment's worker processes."""

    def __init__(self, settings: Settings, pool: EnvironmentPool, nodeids: tuple[str, ...],
                 pytest_args: tuple[str, ...] = (), progress: Callable[[str], None] | None = None):
        self.settings = settings
        self.pool = pool
        self.nodeids = nodeids
        self.pytest_args = pytest_args
        self.progress = progress or (lambda msg: None)
        #: The level adaptive sampling decides claims at (None:
        #: --virt-confidence); under --virt-correction=holm the plugin sets
        #: it from the planned family (:func:`bonferroni_confidence`).
        self.adaptive_confidence: float | None = None

    # -- processes ----------------------------------------------------------

    def hash_seed(self, slot: int, env: str) -> int:
        parts: tuple[Any, ...] = (self.settings.seed, "hash", slot)
        if self.settings.hash_seed == "random":
            parts += (env,)
        return stable_seed(*parts) % 4294967296

    def _prepare(self, result: ItemResult, live: dict[str, Environment], rounds: int) -> None:
        """Start the worker processes each environment lacks (they serve
        every later test too); an environment that cannot is unavailable
        for this test.

        Slot by slot across the environments (process 1 of each, then
        process 2 of each...), not environment by environment: processes
        started back to back share the machine's state of the moment (free
        memory, caches, a burst of noise while they import), and a pair
        should share it rather than one environment taking all of one
        moment's."""
        counts = {name: self.settings.processes_for(name, rounds) for name in live}
        for slot in range(1, max(counts.values(), default=0) + 1):
            for name in [n for n in list(live) if slot <= counts[n]]:
                env = live[name]
                try:
                    if slot not in env.processes:
                        self.progress(f"{result.nodeid} [{name}] starting worker process {slot}")
                        env.spawn(slot, {"PYTHONHASHSEED": str(self.hash_seed(slot, name))})
                    env.open_items(self.nodeids, self.pytest_args, proc=slot)
                except (EnvError, RemoteError) as exc:
                    result.unavailable[name] = f"environment {name!r} could not start its worker processes: {exc}"
                    del live[name]
        for name in live:
            count = counts[name]
            result.processes[name] = {k: v for k, v in live[name].processes.items() if k <= count}
            result.process_counts[name] = count
            result.hash_seeds[name] = {slot: self.hash_seed(slot, name) for slot in range(1, count + 1)}

    @staticmethod
    def block_slot(result: ItemResult, slot: int, env: str, base: str | None) -> int:
        """The worker process env's block uses in a round of slot ``slot``,
        on both sides: the slot folded onto the processes both have, so
        process K of env always meets process K of the baseline (the same
        hash seed, and one cluster per pair)."""
        counts = result.process_counts
        have = min(counts.get(env, slot), counts.get(base, slot) if base else slot)
        return (slot - 1) % max(1, have) + 1

    # -- the test -----------------------------------------------------------

    def run(self, nodeid: str, envs: list[str], claims: list[Claim], rounds: int) -> ItemResult:
        """Warm-up in every process, ``rounds`` measured rounds, then (with
        a time budget) more rounds while a claim is inconclusive."""
        s = self.settings
        result = ItemResult(nodeid=nodeid, envs=list(envs), baseline=s.baseline)
        failures = self.pool.start_all(envs)
        live: dict[str, Environment] = {}
        for name in envs:
            reason = failures.get(name) or self.pool.failure(name)
            env = None
            if reason is None:
                env, reason = self.pool.try_get(name)
            if env is None:
                result.unavailable[name] = reason or f"environment {name!r} is unavailable"
            else:
                live[name] = env
        self._prepare(result, live, rounds)
        if s.baseline in result.unavailable:
            result.skipped = (s.baseline, f"baseline {s.baseline!r} unavailable: {result.unavailable[s.baseline]}")
            return result
        rng = random.Random(stable_seed(s.seed, nodeid))
        names = list(live)
        slots = list(range(1, max(result.process_counts.values(), default=1) + 1))
        warm: dict[str, list[float]] = {}
        requests: dict[str, list[float]] = {}
        for w in range(s.warmup):
            for slot in slots:
                label = f"warm-up {w + 1}/{s.warmup}, process {slot}"
                here = [n for n in names if slot <= result.process_counts.get(n, 1)]
                if here and not self._round(result, live, here, rng, label, slot=slot, calls=1, warm=warm,
                                            requests=requests):
                    return result
        def block_calls(env: str, ref: str) -> int:
            """Calls per round of a block of env against ref, from the warm-up."""
            pair = {n: warm[n] for n in (ref, env) if n in warm}
            cost = {n: requests[n] for n in (ref, env) if n in requests}
            return s.calls or auto_calls(pair, ref, cost)

        for name in names:
            if name != s.baseline:
                result.calls[name] = block_calls(name, s.baseline)
        for claim in claims:
            env, ref = claim.env, claim.baseline
            if s.baseline in (env, ref) or env not in live or ref not in live or env == ref:
                continue
            if (env, ref) not in result.pair_calls and (ref, env) not in result.pair_calls:
                result.pair_calls[env, ref] = block_calls(env, ref)
        schedule = _Schedule(slots, rng)
        retries_left = max_retries(rounds)
        done = 0
        while done < rounds:
            slot = schedule.next()
            rec = self._round(result, live, names, rng, f"round {done + 1}/{rounds}", slot=slot, calls=result.calls)
            if rec is None:
                return result
            if rec.disturbed and retries_left > 0:
                retries_left -= 1
                result.retries += 1
                rec.used = False
                schedule.again(slot)
                continue
            done += 1
        result.rounds = len(result.used_rounds)
        result.stopped_by = "rounds"
        if s.time_budget and claims:
            self._adaptive(result, live, names, rng, claims, schedule)
        self.evaluate(result, claims)
        return result

    def _adaptive(self, result: ItemResult, live: dict[str, Environment], names: list[str],
                  rng: random.Random, claims: list[Claim], schedule: "_Schedule") -> None:
        """More rounds, a full rotation of the processes at a time, while a
        claim is inconclusive and the estimate of the rounds it needs fits
        the time budget."""
        s = self.settings
        t0 = time.monotonic()
        while True:
            # Under --virt-correction=holm, a claim is open until its own
            # interval decides it at the Bonferroni level of the planned
            # family, which Holm's correction then surely decides too.
            self.evaluate(result, claims, confidence=self.adaptive_confidence)
            open_claims = [c for c in result.claims if c.verdict == INCONCLUSIVE]
            if not open_claims:
                result.stopped_by = "conclusive"
                return
            remaining = s.time_budget - (time.monotonic() - t0)
            if remaining <= 0:
                result.stopped_by = "time budget"
                return
            if result.rounds >= s.max_rounds:
                result.stopped_by = "max rounds"
                return
            needs = [c.seconds_needed for c in open_claims
                     if c.seconds_needed is not None and math.isfinite(c.seconds_needed)]
            # The estimate is judged only from one round per process (and
            # six in all) on: before that the interval is too crude to tell.
            judged = result.rounds >= max(6, len(schedule.slots))
            hopeless = all(c.rounds_needed is not None and math.isinf(c.rounds_needed) for c in open_claims)
            if judged and (hopeless or (needs and min(needs) > 4 * remaining)):
                result.stopped_by = "time budget (the estimate of the rounds needed exceeds it)"
                return
            # Only the environments of open claims need more rounds.
            needed = [n for n in names if any(n in c.claim.envs for c in open_claims)]
            for _ in range(min(len(schedule.slots), s.max_rounds - result.rounds)):
                slot = schedule.next()
                label = f"round {result.rounds + 1} (adaptive, {len(open_claims)} claim(s) open)"
                if self._round(result, live, needed, rng, label, slot=slot, calls=result.calls) is None:
                    return
                result.rounds = len(result.used_rounds)

    def _round(self, result: ItemResult, live: dict[str, Environment], names: list[str],
               rng: random.Random, label: str, *, slot: int, calls: "int | dict[str, int]",
               warm: dict[str, list[float]] | None = None,
               requests: dict[str, list[float]] | None = None) -> Any:
        """One round in worker process ``slot`` of every environment.

        Each environment other than the baseline gets a block, in random
        order: ``calls[env]`` passes, each calling the test once in env and
        once in the baseline, in a new random order, so the two sides of
        every ratio sit next to each other in time and a burst of noise hits
        both (a slow VM's call never falls between a container's and the
        baseline's). An environment's value is the median of its calls (or
        of its pytest-benchmark samples); ``paired_baseline[env]`` is the
        median of the baseline's calls in env's block. A warm-up round calls
        each environment once. Returns the RoundRecord (True for a warm-up
        round), or None when the test cannot go on (failure, skip, xfail)."""
        cpus = self.pool.ctx.cpus
        rec = RoundRecord(index=len(result.round_log), slot=slot, order=[])
        rec.load1 = noise.load1()
        ticks0 = noise.cpu_ticks(cpus)
        t0 = time.monotonic()
        calls_of: dict[str, list[float]] = {}
        block_base: dict[str, list[float]] = {}
        pair_calls: dict[tuple[Any, str], list[float]] = {}
        base = result.baseline
        others = [n for n in names if n != base]
        rng.shuffle(others)
        if warm is not None or not others:
            blocks = [(None, slot, [names[:]])]
        else:
            # One block per environment: its calls alternate with the
            # baseline's, in a new random order each pass, so each side of a
            # ratio sits next to the other (a slow VM's call never falls
            # between a container's and the baseline's).
            blocks = []
            for other in others:
                k = calls.get(other, 1) if isinstance(calls, dict) else calls
                proc = self.block_slot(result, slot, other, base if base in names else None)
                rec.slots[other] = proc
                blocks.append((other, proc, [[base, other] for _ in range(k)] if base in names else [[other]] * k))
            if base in names:
                rec.slots[base] = slot
            for (env, ref), k in result.pair_calls.items():
                if env in names and ref in names:
                    proc = self.block_slot(result, slot, env, ref)
                    blocks.append(((env, ref), proc, [[ref, env] for _ in range(k)]))
        # Garbage collection first, in every process of the round, so its
        # calls then follow each other closely (a burst of noise between
        # two environments' calls is what pairing must not miss).
        for name, proc in sorted({(n, p) for _, p, passes in blocks for order in passes for n in order}):
            try:
                live[name].collect_garbage(proc=proc)
            except RemoteError:
                pass  # a worker without the request: its calls still run
            except EnvError as exc:
                result.failure = (name, f"environment {name!r} failed while running the test: {exc}")
                return None
        for other, proc, passes in blocks:
            for order in passes:
                order = order[:]
                rng.shuffle(order)
                rec.order.extend(n for n in order if n not in rec.order)
                for name in order:
                    self.progress(f"{result.nodeid} [{name}] {label}")
                    sent = time.monotonic()
                    try:
                        out = live[name].run_item(result.nodeid, self.nodeids, self.pytest_args, proc=proc, gc=False)
                    except (EnvError, RemoteError) as exc:
                        result.failure = (name, f"environment {name!r} failed while running the test: {exc}")
                        return None
                    outcome = out["outcome"]
                    if outcome == "failed":
                        result.failure = (name, f"the test failed in environment {name!r}:\n{out['longrepr']}")
                        return None
                    if outcome == "skipped":
                        result.skipped = (name, f"skipped in environment {name!r}: {out['longrepr']}")
                        return None
                    if outcome == "xfailed":
                        result.xfailed = (name, out["longrepr"])
                        return None
                    if outcome == "xpassed":
                        result.xpassed = out["longrepr"]
                    value = out.get("value")
                    if value is None:
                        result.failure = (name, f"environment {name!r} returned no timing for the test")
                        return None
                    if warm is not None:
                        # Calls per round follow the call's wall time; a
                        # pytest-benchmark test repeats its function itself.
                        seconds = math.inf if out.get("source") == "benchmark" else out.get("call_seconds") or value
                        warm.setdefault(name, []).append(float(seconds))
                        if requests is not None:
                            requests.setdefault(name, []).append(time.monotonic() - sent)
                        continue
                    if isinstance(other, tuple):
                        # a block between two environments that are not the baseline
                        pair_calls.setdefault((other, name), []).append(float(value))
                    else:
                        calls_of.setdefault(name, []).append(float(value))
                    if name == base and isinstance(other, str):
                        block_base.setdefault(other, []).append(float(value))
                    result.source[name] = out.get("source", "call")
                    if out.get("source") == "benchmark":
                        rec.raw.setdefault(name, []).extend(float(x) for x in out.get("raw") or [])
                    else:
                        rec.raw.setdefault(name, []).append(float(value))
                    rec.n_samples[name] = rec.n_samples.get(name, 0) + int(out.get("n_samples") or 0)
                    rec.pids[name] = out.get("pid")
                    _add_noise(rec.worker_noise.setdefault(name, {}), out.get("noise") or {})
                    work = out.get("work")
                    if work:
                        result.work[name] = work
                        if work.get("seconds"):
                            result.own_rates.setdefault(name, []).append(work["amount"] / work["seconds"])
        if warm is not None:
            return True
        rec.values = {name: stats.median(values) for name, values in calls_of.items()}
        rec.paired_baseline = {name: stats.median(values) for name, values in block_base.items()}
        for other, proc, passes in blocks:
            if isinstance(other, tuple) and (other, other[0]) in pair_calls and (other, other[1]) in pair_calls:
                rec.pair_values[other] = (stats.median(pair_calls[other, other[0]]),
                                          stats.median(pair_calls[other, other[1]]), proc)
        rec.seconds = time.monotonic() - t0
        rec.steal, rec.steal_ticks = noise.steal_fraction(ticks0, noise.cpu_ticks(cpus))
        readings = []
        for n, w in rec.worker_noise.items():
            history = [h for h in (noise.off_cpu(r.worker_noise.get(n, {})) for r in result.round_log)
                       if h is not None]
            readings.append({**w, "env": n, "offcpu_rise": noise.off_cpu_rise(noise.off_cpu(w), history)})
        rec.disturbed = noise.disturbed(rec.steal, rec.steal_ticks, readings)
        result.round_log.append(rec)
        return rec

    # -- verdicts -----------------------------------------------------------

    def estimate(self, result: ItemResult, env: str, base: str, confidence: float | None = None) -> stats.Estimate:
        confidence = self.settings.confidence if confidence is None else confidence
        a, b, slots = result.paired(env, base)
        if not a:
            return stats.cluster_estimate([], confidence=confidence)
        d = stats.paired_log_ratios(a, b)
        return stats.cluster_estimate(d, slots, confidence=confidence)

    def claim_estimate(self, result: ItemResult, claim: Claim, confidence: float | None = None) -> stats.Estimate:
        """The estimate a fixed-cost or absolute claim is judged on, in
        seconds (``scale="linear"``): per round ``env - factor * base`` of
        the paired round values (clustered by process, as a ratio's), or
        env's own round values in its process slots."""
        if claim.kind == FIXED:
            a, b, slots = result.paired(claim.env, claim.baseline)  # type: ignore[arg-type]
            d = [x - claim.factor * y for x, y in zip(a, b)]
        elif claim.kind == ABSOLUTE:
            recs = [r for r in result.used_rounds if claim.env in r.values]
            d = [r.values[claim.env] for r in recs]
            slots = [r.slots.get(claim.env, r.slot) for r in recs]
        else:
            raise ValueError(f"claim_estimate: a {claim.kind} claim is a ratio's (Comparator.estimate)")
        confidence = self.settings.confidence if confidence is None else confidence
        return stats.cluster_estimate(d, slots, confidence=confidence, scale=stats.LINEAR)

    def evaluate(self, result: ItemResult, claims: list[Claim], with_p: bool = True,
                 confidence: float | None = None) -> None:
        """Ratios against the baseline and verdicts on every claim (at
        ``confidence``, by default --virt-confidence)."""
        s = self.settings
        result.claims = []
        pairs: dict[tuple[str, str], stats.Estimate] = {}

        def estimate(env: str, base: str) -> stats.Estimate:
            if (env, base) not in pairs:
                pairs[env, base] = self.estimate(result, env, base, confidence)
            return pairs[env, base]

        samples = result.samples
        if s.baseline in samples:
            for name in samples:
                if name != s.baseline:
                    est = estimate(name, s.baseline)
                    result.estimates[name] = est
                    result.ratios[name] = (est.ratio, est.ci)
        metadata = self.pool.metadata()
        per_round = result.seconds_per_round()
        for claim in claims:
            missing = [n for n in claim.envs if n not in samples]
            if missing:
                reasons = "; ".join(f"{n}: {result.unavailable.get(n) or _not_measured(n, s)}" for n in missing)
                result.claims.append(ClaimResult(result.nodeid, claim, math.nan, (math.nan, math.nan),
                                                 SKIPPED, reason=reasons))
                continue
            est = (self.claim_estimate(result, claim, confidence) if claim.kind != RATIO
                   else estimate(claim.env, claim.baseline))
            ratio, ci = est.ratio, est.ci
            verdict = claim.verdict(ratio, ci)
            accel = metadata.get(claim.env, {}).get("accel")
            # The p-value is always that of "the ratio is 1" (none without a baseline).
            p_value = None
            if with_p and claim.baseline is not None:
                p_value = (est if claim.kind == RATIO else estimate(claim.env, claim.baseline)).p_value
            cr = ClaimResult(result.nodeid, claim, ratio, ci, verdict, p_value=p_value, accel=accel, estimate=est)
            if verdict == INCONCLUSIVE:
                bound = _deciding_bound(claim, ratio, ci)
                if bound is not None:
                    cr.rounds_needed = stats.rounds_needed(est, bound)
                    if cr.rounds_needed is not None and math.isfinite(cr.rounds_needed):
                        cr.seconds_needed = max(0.0, cr.rounds_needed - est.n) * per_round
            result.claims.append(cr)


def _add_noise(total: dict[str, float], one: dict[str, float]) -> None:
    for key, value in one.items():
        if isinstance(value, (int, float)):
            total[key] = total.get(key, 0) + value


def _not_measured(name: str, settings: Settings) -> str:
    if settings.spec(name) is None:
        return "not in this run"
    return "not measured for this test"


def _deciding_bound(claim: Claim, ratio: float, ci: tuple[float, float]) -> float | None:
    """The claim's bound that keeps the verdict open: of the bounds inside
    the interval, the one nearest the estimate (the interval must shrink
    past it, whichever way the verdict then goes)."""
    lo, hi = ci
    linear = claim.unit != RATIO  # seconds: distances on the linear scale, not the log
    inside = [b for b in (claim.lower, claim.upper) if b is not None and (linear or b > 0) and lo <= b <= hi]
    if not inside or not (math.isfinite(ratio) if linear else ratio > 0):
        return None
    if linear:
        return min(inside, key=lambda b: abs(b - ratio))
    return min(inside, key=lambda b: abs(math.log(b) - math.log(ratio)))


#: The verdicts a family-wise correction acts on (a skipped claim has no estimate).
JUDGED = (PASS, FAIL, INCONCLUSIVE)


def bonferroni_confidence(confidence: float, family_size: int) -> float:
    """The level at which one claim's own interval, deciding it, decides it
    under Holm's correction over ``family_size`` claims too: 1 - (1 - c) / m."""
    return 1 - (1 - confidence) / max(1, family_size)


def claim_p_values(cr: "ClaimResult") -> tuple[float, float]:
    """(p_pass, p_fail) of a judged claim from its estimate
    (:func:`.stats.claim_p_values`; a ratio's bounds on the log scale)."""
    est, c = cr.estimate, cr.claim
    if est is None:
        return 1.0, 1.0
    if est.scale == stats.LINEAR:
        lower, upper = c.lower, c.upper
    else:
        lower = None if c.lower is None else (math.log(c.lower) if c.lower > 0 else -math.inf)
        upper = None if c.upper is None else (math.log(c.upper) if c.upper > 0 else -math.inf)
    return stats.claim_p_values(est.theta, est.se, est.df, lower, upper)


def correct_verdicts(results: Iterable["ItemResult"], confidence: float, correction: str) -> dict[str, Any]:
    """Apply ``--virt-correction`` to the run's claims and return the
    method (the JSON's ``verdict_method``): ``confidence``, ``correction``
    and ``family_size``, the judged (pass, fail, inconclusive) claims.

    ``none`` changes nothing. ``holm``: each judged claim has two
    hypotheses, exactly one of them true ("violated", whose rejection means
    pass; "holds", whose rejection means fail), with one-sided p-values
    from its estimate; Holm's step-down runs over all 2m of them at
    family-wise level 1 - confidence. A claim passes or fails only when
    one of its hypotheses is rejected; otherwise it is inconclusive, and
    its rounds needed are those of the Bonferroni level, at which its own
    interval would decide it whatever the others. Applied once: claims
    already corrected keep their verdict."""
    results = list(results)
    family = [cr for res in results for cr in res.claims if cr.verdict in JUDGED]
    method: dict[str, Any] = {"confidence": confidence, "correction": correction, "family_size": len(family)}
    if correction != "holm" or not family or any(cr.verdict_uncorrected is not None for cr in family):
        return method
    m = len(family)
    p = [x for cr in family for x in claim_p_values(cr)]
    rejected = stats.holm(p, 1 - confidence)
    adjusted = stats.holm_adjusted(p)
    level = bonferroni_confidence(confidence, m)
    per_round = {id(cr): res.seconds_per_round() for res in results for cr in res.claims}
    for j, cr in enumerate(family):
        passes, fails = rejected[2 * j], rejected[2 * j + 1]
        cr.verdict_uncorrected = cr.verdict
        cr.p_adjusted = min(adjusted[2 * j], adjusted[2 * j + 1])
        cr.family_size = m
        cr.verdict = PASS if passes and not fails else FAIL if fails and not passes else INCONCLUSIVE
        cr.rounds_needed = cr.seconds_needed = None
        est = cr.estimate
        if cr.verdict == INCONCLUSIVE and est is not None:
            bound = _nearest_bound(cr.claim, cr.ratio)
            if bound is not None:
                cr.rounds_needed = stats.rounds_needed(dataclasses.replace(est, confidence=level), bound)
                if math.isfinite(cr.rounds_needed):
                    cr.seconds_needed = max(0.0, cr.rounds_needed - est.n) * per_round[id(cr)]
    return method


def _nearest_bound(claim: Claim, ratio: float) -> float | None:
    """The claim's bound nearest the estimate (on the log scale for a
    ratio): the one an interval must clear to decide it either way."""
    linear = claim.unit != RATIO
    bounds = [b for b in (claim.lower, claim.upper) if b is not None and (linear or b > 0)]
    if not bounds or not (math.isfinite(ratio) if linear else ratio > 0):
        return None
    if linear:
        return min(bounds, key=lambda b: abs(b - ratio))
    return min(bounds, key=lambda b: abs(math.log(b) - math.log(ratio)))


class _Schedule:
    """Which worker process serves the next round: every process once per
    cycle, in a random order each cycle, so drift over time spreads over
    the processes; a retried round goes back to the same process."""

    def __init__(self, slots: list[int], rng: random.Random):
        self.slots = slots
        self.rng = rng
        self._queue: list[int] = []

    def next(self) -> int:
        if not self._queue:
            self._queue = self.slots[:]
            self.rng.shuffle(self._queue)
        return self._queue.pop(0)

    def again(self, slot: int) -> None:
        self._queue.insert(0, slot)


def add_skipped_claims(result: ItemResult, skipped: Iterable[tuple[Claim, str]]) -> None:
    """Claims about a known environment this run does not have: verdict
    ``skipped`` with the reason (``vm: not in this run``), once each."""
    have = {c.claim.text for c in result.claims}
    for claim, reason in skipped:
        if claim.text not in have:
            result.claims.append(ClaimResult(result.nodeid, claim, math.nan, (math.nan, math.nan), SKIPPED,
                                             reason=reason))
            have.add(claim.text)


@dataclass
class Outcome:
    """How a compared test ends: ``passed``, ``failed`` or ``skipped``, the
    text pytest shows, and extra report sections."""

    outcome: str
    text: str | None = None
    sections: list[tuple[str, str]] = field(default_factory=list)
    #: pytest's xfail marker reason when the test xfailed or xpassed:
    #: the report carries it as ``wasxfail`` (shown XFAIL / XPASS).
    wasxfail: str | None = None


def outcome_of(result: ItemResult, *, strict: bool, gate: bool, required_missing: list[str]) -> Outcome:
    """Decide a compared test's outcome from what was measured."""
    out = Outcome("passed")
    if required_missing:
        out.outcome = "failed"
        out.text = "required environment(s) could not start (--virt-require):\n" + "\n".join(required_missing)
    elif result.failure:
        out.outcome, out.text = "failed", result.failure[1]
    elif result.xfailed:
        out.outcome, out.wasxfail = "skipped", result.xfailed[1]
        out.text = f"xfailed in environment {result.xfailed[0]!r}: {result.xfailed[1]}"
    elif result.skipped:
        out.outcome, out.text = "skipped", result.skipped[1].splitlines()[0]
    else:
        if result.xpassed is not None:
            out.wasxfail = result.xpassed
        # A waiver in force keeps its claim from failing the test; one past
        # its date fails the test, whatever the verdict.
        bad = [c.message() for c in result.failed_claims(strict) if not c.waived]
        bad += [c.waiver_expired for c in result.claims if c.waiver_expired]
        if bad and not gate:
            out.sections.append(("virtoverhead findings (not gating)", "\n".join(bad)))
        elif bad:
            out.outcome, out.text = "failed", "\n".join(bad)
        elif result.unavailable and all(n in result.unavailable for n in result.envs if n != result.baseline):
            name, reason = next(iter(result.unavailable.items()))
            out.outcome = "skipped"
            out.text = f"no environment to compare with: {name}: {reason.splitlines()[0]}"
    notes = [f"{n}: unavailable: {r.splitlines()[0]}" for n, r in result.unavailable.items()]
    if notes:
        out.sections.append(("virtoverhead", "\n".join(notes)))
    return out


__all__ = ["EnvironmentPool", "Comparator", "ItemResult", "ClaimResult", "PASS", "FAIL", "INCONCLUSIVE", "SKIPPED"]
