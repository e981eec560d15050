"""The round runner: runs a compared test in every environment, in
interleaved rounds rotated over each environment's worker processes, and
judges its claims from the rounds.

Nothing here imports pytest.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..envs.errors import EnvError, RemoteError
from ..envs.handle import Environment
from ..guest import noise
from ..judge import stats
from ..judge.claims import Claim
from ..judge.verdict import INCONCLUSIVE
from ..results import ItemResult, RoundRecord
from . import judging, processes
from .config import Settings
from .events import Calling, Listener, Step, ignore
from .planning import Schedule, auto_calls, max_retries, request_calls, stable_seed
from .pool import EnvironmentPool


class Comparator:
    """Runs a compared test in every environment, in interleaved rounds
    rotated over each environment's worker processes."""

    def __init__(self, settings: Settings, pool: EnvironmentPool, nodeids: tuple[str, ...],
                 pytest_args: tuple[str, ...] = (), progress: Listener | None = None):
        self.settings = settings
        self.pool = pool
        self.nodeids = nodeids
        self.pytest_args = pytest_args
        self.progress = progress or ignore
        #: Where worker processes may start (:meth:`_prepare`): a callable
        #: the session sets from its CPU locks; None: where the environment runs.
        self.start_cpus: Callable[[], tuple[int, ...] | None] = lambda: None
        #: Environments whose calls may share a request (set after each warm-up).
        self._grouped: set[str] = set()
        #: The level adaptive sampling decides claims at (None:
        #: --virt-confidence); under --virt-correction=holm the plugin sets
        #: it from the planned family (:func:`bonferroni_confidence`).
        self.adaptive_confidence: float | None = None

    # -- processes ----------------------------------------------------------

    def _prepare(self, result: ItemResult, live: dict[str, Environment], rounds: int) -> None:
        """The worker processes each environment lacks, started
        (:func:`.processes.prepare`); an environment that cannot start them
        is unavailable for this test."""
        processes.prepare(result, live, rounds, self.settings, (tuple(self.nodeids), tuple(self.pytest_args)),
                          self.start_cpus, self.progress)

    # -- the test -----------------------------------------------------------

    def run(self, nodeid: str, envs: list[str], claims: list[Claim], rounds: int) -> ItemResult:
        """Warm-up in every process, ``rounds`` measured rounds, then (with
        a time budget) more rounds while a claim is inconclusive."""
        s = self.settings
        result = ItemResult(nodeid=nodeid, envs=list(envs), baseline=s.baseline)
        try:
            return self._run(result, envs, claims, rounds)
        finally:
            result.phases.stop()

    def _run(self, result: ItemResult, envs: list[str], claims: list[Claim], rounds: int) -> ItemResult:
        s = self.settings
        with result.phases.phase("env_start"):
            failures = self.pool.start_all(envs, self.progress)
        stats.preload()
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
        names = list(live)
        # One footprint window per environment over the test's calls, the
        # warm-up's and the rounds' (a reading costs as much as a request;
        # one per block cost a test ~50 readings). It also holds the rounds'
        # garbage collections: the calls' harness, as their pytest protocol is.
        for name in names:
            live[name].begin_calls()
        try:
            return self._rounds(result, live, names, claims, rounds)
        finally:
            for name in names:
                live[name].end_calls()

    def _rounds(self, result: ItemResult, live: dict[str, Environment], names: list[str], claims: list[Claim],
                rounds: int) -> ItemResult:
        """The warm-up and the rounds of a test whose environments are ready."""
        s = self.settings
        nodeid = result.nodeid
        def rng_for(*where: Any) -> random.Random:
            """The random orders of one round (``where``: its kind and
            number), from the seed and the test: a retried round repeats its
            order and the rounds after it keep theirs, so a seed repeats a
            test's round orders whatever noise made a round be retried."""
            return random.Random(stable_seed(s.seed, nodeid, *where))

        slots = list(range(1, max(result.process_counts.values(), default=1) + 1))
        warm: dict[str, list[float]] = {}
        requests: dict[str, list[float]] = {}
        t_warm = time.monotonic()
        if not self._warm_up(result, live, names, rng_for, slots, warm, requests):
            return result
        result.phases.add("warmup", time.monotonic() - t_warm, s.warmup * len(slots))
        def block_calls(env: str, ref: str) -> int:
            """Calls per round of a block of env against ref, from the warm-up."""
            pair = {n: warm[n] for n in (ref, env) if n in warm}
            cost = {n: requests[n] for n in (ref, env) if n in requests}
            return s.calls or auto_calls(pair, ref, cost)

        # Environments whose calls are plain call-phase timings, which may
        # share a request (:func:`.planning.request_calls`); a
        # pytest-benchmark test's one call already repeats its function.
        self._grouped = {n for n, ts in warm.items() if ts and all(math.isfinite(t) for t in ts)}
        for name in names:
            if name != s.baseline:
                result.calls[name] = block_calls(name, s.baseline)
        for claim in claims:
            other, ref = claim.env, claim.baseline
            if s.baseline in (other, ref) or other not in live or ref not in live or other == ref:
                continue
            if (other, ref) not in result.pair_calls and (ref, other) not in result.pair_calls:
                result.pair_calls[other, ref] = block_calls(other, ref)
        schedule = Schedule(slots, rng_for("schedule"))
        retries_left = max_retries(rounds)
        done = 0
        while done < rounds:
            slot = schedule.next()
            rec = self._round(result, live, names, rng_for("round", done + 1), Step(done + 1, rounds), slot=slot,
                              calls=result.calls)
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
            self._adaptive(result, live, names, rng_for, claims, schedule)
        with result.phases.phase("reporting"):
            self._passing_reports(result, live)
        with result.phases.phase("statistics"):
            self.evaluate(result, claims)
        return result

    def _warm_up(self, result: ItemResult, live: dict[str, Environment], names: list[str],
                 rng_for: Callable[..., random.Random], slots: list[int], warm: dict[str, list[float]],
                 requests: dict[str, list[float]]) -> bool:
        """The warm-up rounds: a call in every process of every environment."""
        for w in range(self.settings.warmup):
            for slot in slots:
                step = Step(w + 1, self.settings.warmup, warmup=True, process=slot)
                here = [n for n in names if slot <= result.process_counts.get(n, 1)]
                if here and not self._round(result, live, here, rng_for("warm-up", w + 1, slot), step, slot=slot,
                                            calls=1, warm=warm, requests=requests):
                    return False
        return True

    def _passing_reports(self, result: ItemResult, live: dict[str, Environment]) -> None:
        """A passing run's pytest reports (output, warnings, properties) for
        the host: one unmeasured run in the baseline's last process, after
        the rounds (serialized in the warm-up, they disturbed the rounds:
        A/A coverage 67/80, 75/80 without). Best effort."""
        used = result.used_rounds
        if result.reports is not None or not used:
            return
        rec = used[-1]
        name = result.baseline if result.baseline in rec.values else next(iter(rec.values), None)
        if name is None or name not in live:
            return
        try:
            out = live[name].run_item(result.nodeid, self.nodeids, self.pytest_args,
                                      proc=rec.slots.get(name, rec.slot), reports=True, untimed=True)
        except (EnvError, RemoteError):
            return
        if out.get("reports") and out.get("outcome") in ("passed", "xpassed"):
            result.reports = (name, out["reports"])

    def _adaptive(self, result: ItemResult, live: dict[str, Environment], names: list[str],
                  rng_for: Callable[..., random.Random], claims: list[Claim], schedule: Schedule) -> None:
        """More rounds, a full rotation of the processes at a time, while a
        claim is inconclusive and the estimate of the rounds it needs fits
        the time budget."""
        s = self.settings
        t0 = time.monotonic()
        while True:
            # Under --virt-correction=holm, a claim is open until its own
            # interval decides it at the Bonferroni level of the planned
            # family, which Holm's correction then surely decides too.
            ctx = self.evaluate(result, claims, confidence=self.adaptive_confidence)
            open_claims = [c for c in judging.judge(result, judging.Claims(claims), ctx) if c.verdict == INCONCLUSIVE]
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
                step = Step(result.rounds + 1, None, open_claims=len(open_claims))
                if self._round(result, live, needed, rng_for("round", result.rounds + 1), step, slot=slot,
                               calls=result.calls) is None:
                    return
                result.rounds = len(result.used_rounds)

    def _round(self, result: ItemResult, live: dict[str, Environment], names: list[str],
               rng: random.Random, step: Step, *, slot: int, calls: "int | dict[str, int]",
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
        acc = _RoundAcc(rec, step, rng, warm, requests)
        calls_of, block_base, pair_calls = acc.calls_of, acc.block_base, acc.pair_calls
        base = result.baseline
        others = [n for n in names if n != base]
        rng.shuffle(others)
        def passes(k: int, sides: list[str]) -> list[tuple[list[str], int]]:
            grouped = all(n in self._grouped for n in sides)
            return [(sides, m) for m in request_calls(k, grouped)]

        if warm is not None or not others:
            blocks: list[tuple[Any, int, list[tuple[list[str], int]]]] = [(None, slot, [(names[:], 1)])]
        else:
            # One block per environment: its calls alternate with the
            # baseline's, in a new random order each pass, so each side of a
            # ratio sits next to the other (a slow VM's call never falls
            # between a container's and the baseline's).
            blocks = []
            for env in others:
                k = calls.get(env, 1) if isinstance(calls, dict) else calls
                proc = processes.block_slot(result, slot, env, base if base in names else None)
                rec.slots[env] = proc
                blocks.append((env, proc, passes(k, [base, env] if base in names else [env])))
            if base in names:
                rec.slots[base] = slot
            for (env, ref), k in result.pair_calls.items():
                if env in names and ref in names:
                    proc = processes.block_slot(result, slot, env, ref)
                    blocks.append(((env, ref), proc, passes(k, [ref, env])))
        # Garbage collection first, in every process of a measured round, so
        # its calls then follow each other closely (a burst of noise between
        # two environments' calls is what pairing must not miss). A warm-up
        # call's timing is not a sample: it needs none.
        t_gc = time.monotonic()
        for name, proc in sorted({(n, p) for _, p, block in blocks for order, _m in block for n in order}
                                 if warm is None else ()):
            try:
                live[name].collect_garbage(proc=proc)
            except RemoteError:
                pass  # a worker without the request: its calls still run
            except EnvError as exc:
                result.failure = (name, f"environment {name!r} failed while running the test: {exc}")
                return None
        if warm is None:
            result.phases.add("gc", time.monotonic() - t_gc)
        for other, proc, block in blocks:
            if not self._block(result, live, acc, other, proc, block):
                return None
        if warm is not None:
            return True
        rec.values = {name: stats.median(values) for name, values in calls_of.items()}
        rec.paired_baseline = {name: stats.median(values) for name, values in block_base.items()}
        for other, proc, _passes in blocks:
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

    def _block(self, result: ItemResult, live: dict[str, Environment], acc: "_RoundAcc", other: Any, proc: int,
               passes: list[tuple[list[str], int]]) -> bool:
        """The passes of one block of a round (:meth:`_round`): each an
        order of environments and the calls each request runs there; its
        values into ``acc``; False when the test cannot go on."""
        base = result.baseline
        rec, step, rng, warm, requests = acc.rec, acc.step, acc.rng, acc.warm, acc.requests
        calls_of, block_base, pair_calls = acc.calls_of, acc.block_base, acc.pair_calls
        for order, m in passes:
            order = order[:]
            rng.shuffle(order)
            rec.order.extend(n for n in order if n not in rec.order)
            for name in order:
                self.progress(Calling(result.nodeid, name, step))
                sent = time.monotonic()
                try:
                    out = live[name].run_item(result.nodeid, self.nodeids, self.pytest_args, proc=proc, gc=False,
                                              calls=m, untimed=warm is not None)
                except (EnvError, RemoteError) as exc:
                    result.failure = (name, f"environment {name!r} failed while running the test: {exc}")
                    return False
                outcome = out["outcome"]
                if out.get("reports") and (result.reports is None or outcome not in ("passed", "xpassed")):
                    result.reports = (name, out["reports"])
                if outcome == "failed":
                    result.failure = (name, f"the test failed in environment {name!r}:\n{out['longrepr']}")
                    return False
                if outcome == "skipped":
                    result.skipped = (name, f"skipped in environment {name!r}: {out['longrepr']}")
                    return False
                if outcome == "xfailed":
                    result.xfailed = (name, out["longrepr"])
                    return False
                if outcome == "xpassed":
                    result.xpassed = out["longrepr"]
                if warm is None:
                    spent = time.monotonic() - sent
                    timed = min(spent, float(out.get("call_seconds") or 0.0))
                    result.phases.add("measured", timed)
                    result.phases.add("requests", spent - timed)
                value = out.get("value")
                if value is None:
                    result.failure = (name, f"environment {name!r} returned no timing for the test")
                    return False
                if warm is not None:
                    # Calls per round follow the call's wall time; a
                    # pytest-benchmark test repeats its function itself.
                    seconds = math.inf if out.get("source") == "benchmark" else out.get("call_seconds") or value
                    warm.setdefault(name, []).append(float(seconds))
                    if requests is not None:
                        requests.setdefault(name, []).append(time.monotonic() - sent)
                    continue
                # each call of a request its own value (a benchmark's: the median of its samples)
                benchmark = out.get("source") == "benchmark"
                values = [float(value)] if benchmark or m == 1 else [float(x) for x in out.get("raw") or [value]]
                if isinstance(other, tuple):
                    # a block between two environments that are not the baseline
                    pair_calls.setdefault((other, name), []).extend(values)
                else:
                    calls_of.setdefault(name, []).extend(values)
                if name == base and isinstance(other, str):
                    block_base.setdefault(other, []).extend(values)
                result.source[name] = out.get("source", "call")
                if benchmark:
                    rec.raw.setdefault(name, []).extend(float(x) for x in out.get("raw") or [])
                else:
                    rec.raw.setdefault(name, []).extend(values)
                rec.n_samples[name] = rec.n_samples.get(name, 0) + int(out.get("n_samples") or 0)
                rec.add_reply(name, other, base, out)  # pid, resource counters
                _add_noise(rec.worker_noise.setdefault(name, {}), out.get("noise") or {})
                work = out.get("work")
                if work:
                    result.work[name] = work
                    if work.get("seconds"):
                        result.own_rates.setdefault(name, []).append(work["amount"] / work["seconds"])
        return True

    def evaluate(self, result: ItemResult, claims: list[Claim], confidence: float | None = None) -> judging.Context:
        """The ratios (at ``confidence``, default --virt-confidence); judging's context: it sets no verdict."""
        ctx = judging.context(self.settings, self.pool.metadata(), confidence)
        for name, est in judging.ratio_estimates(result, ctx.confidence).items():
            result.estimates[name], result.ratios[name] = est, (est.ratio, est.ci)
        result.evaluated = True
        return ctx


@dataclass
class _RoundAcc:
    """What one round's blocks fill in: its record, the calls' values per
    environment, the baseline's per block, a pair block's; in a warm-up
    round the call times (``warm``) and request times instead."""

    rec: RoundRecord
    step: Step
    rng: random.Random
    warm: dict[str, list[float]] | None
    requests: dict[str, list[float]] | None
    calls_of: dict[str, list[float]] = field(default_factory=dict)
    block_base: dict[str, list[float]] = field(default_factory=dict)
    pair_calls: dict[tuple[Any, str], list[float]] = field(default_factory=dict)


def _add_noise(total: dict[str, float], one: dict[str, float]) -> None:
    for key, value in one.items():
        if isinstance(value, (int, float)):
            total[key] = total.get(key, 0) + value
