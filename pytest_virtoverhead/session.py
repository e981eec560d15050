"""One host session: its environments, the rounds of each compared test,
and the verdicts on its claims.

Nothing here imports pytest: the plugin turns results into reports.
"""

from __future__ import annotations

import math
import random
import signal
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from . import stats
from .claims import FAIL, INCONCLUSIVE, PASS, Claim
from .config import Settings
from .envs import backend_class
from .envs.base import EnvError, EnvSpec, Environment, EnvUnavailable, RemoteError, RunContext

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

    def to_json(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "claim": self.claim.text,
            "env": self.claim.env,
            "baseline": self.claim.baseline,
            "ratio": _num(self.ratio),
            "ci": [_num(self.ci[0]), _num(self.ci[1])],
            "verdict": self.verdict,
            "bounds": [self.claim.lower, self.claim.upper],
            "p_value": self.p_value,
            **({"reason": self.reason} if self.reason else {}),
            **({"accel": self.accel} if self.accel else {}),
        }

    def message(self) -> str:
        text = (f"claim '{self.claim.text}' {self.verdict}: ratio {self.ratio:.3f}, "
                f"95% CI [{self.ci[0]:.3f}, {self.ci[1]:.3f}] (needs {self.claim.describe_bounds()})")
        if self.accel:
            text += f" [{self.claim.env}: {self.accel}]"
        return text


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


@dataclass
class ItemResult:
    """Everything measured for one compared test."""

    nodeid: str
    envs: list[str]
    baseline: str
    samples: dict[str, list[float]] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)  # "call" or "benchmark"
    unavailable: dict[str, str] = field(default_factory=dict)
    failure: tuple[str, str] | None = None  # (env, text): the test failed there
    skipped: tuple[str, str] | None = None
    rounds: int = 0
    #: Why measuring stopped: "rounds" (the fixed count), "conclusive",
    #: "time budget" or "max rounds" (adaptive sampling).
    stopped_by: str = ""
    order: list[list[str]] = field(default_factory=list)
    ratios: dict[str, tuple[float, tuple[float, float]]] = field(default_factory=dict)
    claims: list[ClaimResult] = field(default_factory=list)
    #: {env: {"amount", "unit"}} from record_work(), per call.
    work: dict[str, dict[str, Any]] = field(default_factory=dict)

    def rate(self, env: str) -> tuple[float, str] | None:
        """Work per second at the median time, e.g. (4506.0, "events/s")."""
        work = self.work.get(env)
        samples = self.samples.get(env)
        if not work or not samples or self.source.get(env) != "call":
            return None
        med = stats.median(samples)
        return (work["amount"] / med, f"{work['unit']}/s") if med > 0 else None

    def failed_claims(self, strict: bool) -> list[ClaimResult]:
        bad = {FAIL, INCONCLUSIVE} if strict else {FAIL}
        return [c for c in self.claims if c.verdict in bad]


def stable_seed(*parts: Any) -> int:
    return zlib.crc32(":".join(str(p) for p in parts).encode())


class Comparator:
    """Runs a compared test in every environment, in interleaved rounds."""

    def __init__(self, settings: Settings, pool: EnvironmentPool, nodeids: tuple[str, ...],
                 pytest_args: tuple[str, ...] = (), progress: Callable[[str], None] | None = None):
        self.settings = settings
        self.pool = pool
        self.nodeids = nodeids
        self.pytest_args = pytest_args
        self.progress = progress or (lambda msg: None)

    def run(self, nodeid: str, envs: list[str], claims: list[Claim], rounds: int) -> ItemResult:
        """Warm-up, ``rounds`` measured rounds, then (with a time budget)
        more rounds while a claim is inconclusive."""
        s = self.settings
        result = ItemResult(nodeid=nodeid, envs=list(envs), baseline=s.baseline)
        failures = self.pool.start_all(envs)
        live: dict[str, Environment] = {}
        for name in envs:
            if name in failures:
                result.unavailable[name] = failures[name]
            else:
                live[name] = self.pool.get(name)
        if s.baseline in result.unavailable:
            result.skipped = (s.baseline, f"baseline {s.baseline!r} unavailable: {result.unavailable[s.baseline]}")
            return result
        rng = random.Random(stable_seed(s.seed, nodeid))
        names = list(live)
        for r in range(s.warmup):
            if not self._round(result, live, names, rng, f"warm-up {r + 1}/{s.warmup}", warm=True):
                return result
        for r in range(rounds):
            if not self._round(result, live, names, rng, f"round {r + 1}/{rounds}"):
                return result
        result.stopped_by = "rounds"
        if s.time_budget and claims:
            t0 = time.monotonic()
            while True:
                self.evaluate(result, claims, with_p=False)
                open_claims = [c for c in result.claims if c.verdict == INCONCLUSIVE]
                if not open_claims:
                    result.stopped_by = "conclusive"
                    break
                if time.monotonic() - t0 >= s.time_budget:
                    result.stopped_by = "time budget"
                    break
                if result.rounds >= s.max_rounds:
                    result.stopped_by = "max rounds"
                    break
                # Only the environments of open claims need more samples.
                needed = [n for n in names if any(n in c.claim.envs for c in open_claims)]
                label = f"round {result.rounds + 1} (adaptive, {len(open_claims)} claim(s) open)"
                if not self._round(result, live, needed, rng, label):
                    return result
        self.evaluate(result, claims)
        return result

    def _round(self, result: ItemResult, live: dict[str, Environment], names: list[str],
               rng: random.Random, label: str, warm: bool = False) -> bool:
        """One round: the test once in each environment, in random order.
        Returns False when the test cannot go on (failure or skip)."""
        order = names[:]
        rng.shuffle(order)
        if not warm:
            result.order.append(order)
        for name in order:
            self.progress(f"{result.nodeid} [{name}] {label}")
            try:
                out = live[name].run_item(result.nodeid, self.nodeids, self.pytest_args)
            except (EnvError, RemoteError) as exc:
                result.failure = (name, f"environment {name!r} failed while running the test: {exc}")
                return False
            if out["outcome"] == "failed":
                result.failure = (name, f"the test failed in environment {name!r}:\n{out['longrepr']}")
                return False
            if out["outcome"] == "skipped":
                result.skipped = (name, f"skipped in environment {name!r}: {out['longrepr']}")
                return False
            if warm:
                continue
            if out.get("work"):
                result.work[name] = out["work"]
            bench = out.get("benchmark_samples")
            if bench:
                result.samples.setdefault(name, []).extend(bench)
                result.source[name] = "benchmark"
            else:
                result.samples.setdefault(name, []).append(float(out["duration"]))
                result.source[name] = "call"
        if not warm:
            result.rounds += 1
        return True

    def evaluate(self, result: ItemResult, claims: list[Claim], with_p: bool = True) -> None:
        """Ratios against the baseline and verdicts on every claim."""
        s = self.settings
        result.claims = []
        pairs: dict[tuple[str, str], tuple[float, tuple[float, float]]] = {}

        def ratio(env: str, base: str) -> tuple[float, tuple[float, float]]:
            # One bootstrap per pair: a claim against the run's baseline
            # reuses the table's ratio (same samples, same seed).
            if (env, base) not in pairs:
                pairs[env, base] = ratio_and_ci(result.samples[env], result.samples[base],
                                                stable_seed(s.seed, result.nodeid, env, base))
            return pairs[env, base]

        if s.baseline in result.samples:
            for name in result.samples:
                if name != s.baseline:
                    result.ratios[name] = ratio(name, s.baseline)
        metadata = self.pool.metadata()
        for claim in claims:
            missing = [n for n in claim.envs if n not in result.samples]
            if missing:
                reasons = "; ".join(f"{n}: {result.unavailable.get(n, 'not measured for this test')}" for n in missing)
                result.claims.append(ClaimResult(result.nodeid, claim, math.nan, (math.nan, math.nan),
                                                 SKIPPED, reason=reasons))
                continue
            r, ci = ratio(claim.env, claim.baseline)
            p = None
            if with_p:
                p = stats.permutation_test(result.samples[claim.env], result.samples[claim.baseline],
                                           seed=stable_seed(s.seed, result.nodeid, "perm"))
            accel = metadata.get(claim.env, {}).get("accel")
            result.claims.append(ClaimResult(result.nodeid, claim, r, ci, claim.verdict(r, ci),
                                             p_value=p, accel=accel))


@dataclass
class Outcome:
    """How a compared test ends: ``passed``, ``failed`` or ``skipped``, the
    text pytest shows, and extra report sections."""

    outcome: str
    text: str | None = None
    sections: list[tuple[str, str]] = field(default_factory=list)


def outcome_of(result: ItemResult, *, strict: bool, gate: bool, required_missing: list[str]) -> Outcome:
    """Decide a compared test's outcome from what was measured."""
    out = Outcome("passed")
    if required_missing:
        out.outcome = "failed"
        out.text = "required environment(s) could not start (--virt-require):\n" + "\n".join(required_missing)
    elif result.failure:
        out.outcome, out.text = "failed", result.failure[1]
    elif result.skipped:
        out.outcome, out.text = "skipped", result.skipped[1].splitlines()[0]
    else:
        bad = result.failed_claims(strict)
        if bad and not gate:
            out.sections.append(("virtoverhead findings (not gating)", "\n".join(c.message() for c in bad)))
        elif bad:
            out.outcome, out.text = "failed", "\n".join(c.message() for c in bad)
        elif result.unavailable and all(n in result.unavailable for n in result.envs if n != result.baseline):
            name, reason = next(iter(result.unavailable.items()))
            out.outcome = "skipped"
            out.text = f"no environment to compare with: {name}: {reason.splitlines()[0]}"
    notes = [f"{n}: unavailable: {r.splitlines()[0]}" for n, r in result.unavailable.items()]
    if notes:
        out.sections.append(("virtoverhead", "\n".join(notes)))
    return out


def ratio_and_ci(env: list[float], base: list[float], seed: int) -> tuple[float, tuple[float, float]]:
    ratio = stats.ratio_of_medians(env, base)
    if len(env) < 2 or len(base) < 2:
        return ratio, (math.nan, math.nan)
    return ratio, stats.bootstrap_ratio_ci(env, base, seed=seed)


__all__ = ["EnvironmentPool", "Comparator", "ItemResult", "ClaimResult", "PASS", "FAIL", "INCONCLUSIVE", "SKIPPED"]
