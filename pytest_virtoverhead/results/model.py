"""The result model of a compared test: its rounds (RoundRecord) as the
round runner measured them, its claims' verdicts (ClaimResult) as
:mod:`..judging` built them and the test as a whole (ItemResult), each with the JSON object it becomes in the run
document (:mod:`.document`).

Nothing here imports pytest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..judge import stats, why
from ..judge.claims import RATIO, Claim
from ..judge.textfmt import level_text
from ..judge.verdict import FAIL, INCONCLUSIVE, PASS, SKIPPED, Verdict
from .document import json_safe
from .phases import PhaseClock


@dataclass(frozen=True)
class ClaimResult:
    """One claim's verdict, as :mod:`..judging` built it: immutable (a
    correction or a waiver makes a new one, ``dataclasses.replace``)."""

    test: str
    claim: Claim
    ratio: float
    ci: tuple[float, float]
    verdict: Verdict
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
    verdict_uncorrected: Verdict | None = None
    p_adjusted: float | None = None
    family_size: int | None = None

    @classmethod
    def skipped(cls, test: str, claim: Claim, reason: str) -> "ClaimResult":
        """A claim that could not be judged (``reason``: an environment absent or not measured)."""
        return cls(test, claim, math.nan, (math.nan, math.nan), SKIPPED, reason=reason)

    @property
    def level(self) -> str:
        """The interval's confidence, ``95%``."""
        return level_text(self.estimate.confidence) if self.estimate else "95%"

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
            "ratio": json_safe(self.ratio),
            "ci": [json_safe(self.ci[0]), json_safe(self.ci[1])],
            "verdict": str(self.verdict),  # the word, as a file read back holds it
            "bounds": [self.claim.lower, self.claim.upper],
            # "ratio", "ci" and "bounds" are in this unit: "ratio", or "s"
            # (seconds) for a fixed-cost or absolute claim, whose estimate
            # is of "quantity" (vm - 1.2 * baremetal; container).
            "kind": self.claim.kind,
            "unit": self.claim.unit,
            "quantity": self.claim.quantity,
            "p_value": json_safe(self.p_value),
            **({"reason": self.reason} if self.reason else {}),
            **({"accel": self.accel} if self.accel else {}),
            **({"source": self.source} if self.source else {}),
            **({"group": self.group} if self.group is not None else {}),
            **({"verdict_uncorrected": str(self.verdict_uncorrected), "p_adjusted": json_safe(self.p_adjusted)}
               if self.verdict_uncorrected is not None else {}),
        }
        est = self.estimate
        if est is not None:
            out.update(confidence=est.confidence, method=est.method, processes=est.n_clusters, rounds=est.n,
                       resolution=json_safe(est.half_width if est.scale == stats.LINEAR else _resolution(est)))
        if self.verdict == INCONCLUSIVE:
            out.update(rounds_needed=json_safe(self.rounds_needed), seconds_needed=json_safe(self.seconds_needed))
        if self.waiver is not None:
            out["waiver"] = self.waiver.to_json(bool(self.waiver_expired))
            if self.waived:
                out["waived"] = self.waiver.text  # "waived until 2027-01-31: reason"
            else:
                out["waiver_expired"] = self.waiver_expired
        return out

    def message(self) -> str:
        text = (f"claim '{self.claim.text}' {self.verdict}: {self.estimate_text(self.level)} "
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
            text += f", so not {self.verdict_uncorrected} as its own {self.level} interval alone says"
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
    #: {env: [resource counters per call, one dict per request]} and
    #: {env: [the baseline's, in env's block]} (:mod:`.rusage`).
    resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    paired_resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    steal: float = 0.0
    steal_ticks: int = 0
    load1: float | None = None
    seconds: float = 0.0
    disturbed: list[str] = field(default_factory=list)
    #: False when the round was disturbed and a retry replaced it.
    used: bool = True

    def add_reply(self, name: str, block: Any, base: str, out: dict[str, Any]) -> None:
        """Keep what a measured request's reply says of the process: its pid
        and its resource counters (``out["resources"]``), as ``name``'s and,
        for the baseline, as its counters in ``block``'s block."""
        self.pids[name] = out.get("pid")
        counters = out.get("resources")
        if not counters or isinstance(block, tuple):
            return
        self.resources.setdefault(name, []).append(counters)
        if name == base and isinstance(block, str):
            self.paired_resources.setdefault(block, []).append(counters)

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
    #: (env, pytest's reports and warnings of a run there, serialized): the
    #: run that failed, skipped or xfailed, else a passing one
    #: (:func:`.testreports.dump`).
    reports: tuple[str, dict[str, Any]] | None = None
    rounds: int = 0
    #: Why measuring stopped: "rounds" (the fixed count), "conclusive",
    #: "time budget" or "max rounds" (adaptive sampling).
    stopped_by: str = ""
    ratios: dict[str, tuple[float, tuple[float, float]]] = field(default_factory=dict)
    estimates: dict[str, stats.Estimate] = field(default_factory=dict)
    #: True once the round runner got to its statistics (the ratios): the
    #: claims are then judged from the rounds, not only set aside.
    evaluated: bool = False
    #: The verdicts (:func:`..judging.judge`, :func:`..judging.correct`),
    #: replaced whole, never changed in place.
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
    #: Where the test's wall time went (:mod:`..phases`).
    phases: PhaseClock = field(default_factory=PhaseClock)

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

    def median_unpaired(self, env: str) -> float | None:
        """The plain median of env's own round values."""
        samples = self.samples.get(env)
        return stats.median(samples) if samples else None

    def table_median(self, env: str) -> float | None:
        """The median a table shows, in agreement with the ratio: the
        baseline's median of its round values times env's paired ratio
        (so it over the baseline's median is the ratio, inside its own
        interval); the baseline's, or one without a ratio, its plain median."""
        own = self.median_unpaired(env)
        base = self.median_unpaired(self.baseline)
        if own is None or env == self.baseline or env not in self.ratios or base is None:
            return own
        ratio = self.ratios[env][0]
        return base * ratio if math.isfinite(ratio) and ratio > 0 else own

    def table_rate(self, env: str) -> tuple[float, str] | None:
        """The rate a table shows, from the same paired rounds as the
        ratio: the baseline's rate (:meth:`rate`) over env's ratio, so it
        never points against the ratio; env's own where there is no ratio."""
        own = self.rate(env)
        if own is None or env == self.baseline or env not in self.ratios:
            return own
        base, ratio = self.rate(self.baseline), self.ratios[env][0]
        if base is None or base[1] != own[1] or not (math.isfinite(ratio) and ratio > 0):
            return own
        return base[0] / ratio, base[1]

    def _resource_rounds(self, env: str) -> list[dict[str, float | None]]:
        return [why.mean_counters(r.resources[env]) for r in self.used_rounds if r.resources.get(env)]

    def resources(self, env: str) -> dict[str, float | None] | None:
        """Env's resource counters per call: the median over the used
        rounds of each round's mean per call (None: none measured)."""
        rounds = self._resource_rounds(env)
        return why.median_counters(rounds) if rounds else None

    def resources_vs_baseline(self, env: str) -> dict[str, Any] | None:
        """Env's counters against the baseline's calls in env's own blocks:
        ``baseline`` (their medians), ``difference`` (median over rounds of
        env - baseline, per call) and ``ratio`` (env's median over the
        baseline's)."""
        if env == self.baseline:
            return None
        pairs = [(why.mean_counters(r.resources[env]), why.mean_counters(r.paired_resources[env]))
                 for r in self.used_rounds if r.resources.get(env) and r.paired_resources.get(env)]
        if not pairs:
            return None
        mine = why.median_counters(a for a, _ in pairs)
        base = why.median_counters(b for _, b in pairs)
        return {"baseline": base, "difference": why.paired_differences([a for a, _ in pairs], [b for _, b in pairs]),
                "ratio": why.relative(mine, base), "rounds": len(pairs)}

    def why(self, env: str) -> str | None:
        """The "why" line of env's ratio (:func:`.why.why_line`), or None."""
        rel = self.resources_vs_baseline(env)
        mine, base = self.table_median(env), self.median_unpaired(self.baseline)
        if rel is None or mine is None or base is None or "benchmark" in (self.source.get(env),
                                                                          self.source.get(self.baseline)):
            return None  # a benchmark's samples time one function call, its counters the whole run
        pairs = [why.mean_counters(r.resources[env]) for r in self.used_rounds
                 if r.resources.get(env) and r.paired_resources.get(env)]
        lo, hi = self.ratios[env][1] if env in self.ratios else (math.nan, math.nan)
        return why.why_line(mine - base, rel["difference"], why.median_counters(pairs), rel["baseline"],
                            env, self.baseline, resolved=lo > 1 or hi < 1)

    def failed_claims(self, strict: bool) -> list[ClaimResult]:
        bad = {FAIL, INCONCLUSIVE} if strict else {FAIL}
        return [c for c in self.claims if c.verdict in bad]

    def seconds_per_round(self) -> float:
        used = self.used_rounds
        return sum(r.seconds for r in used) / len(used) if used else math.nan
