"""Judging a compared test: the ratio of each environment to the baseline
with its interval (paired rounds, worker processes as clusters), and the
verdicts of its claims, in two pure steps that build new, immutable
verdicts (:class:`.ClaimResult` is frozen) and change nothing they read:

- :func:`judge`, per test: its measurements and its plan (claims, claims
  set aside, where each was written, waivers) into its verdicts, with what
  would decide an inconclusive one;
- :func:`correct`, per run: --virt-correction over the whole family (Holm
  needs every test's p-values) into new verdicts.

Nothing here imports pytest.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Protocol, Sequence

from ..judge import stats, waivers
from ..judge.claims import ABSOLUTE, FIXED, NOT_IN_RUN, RATIO, Claim
from ..judge.verdict import FAIL, INCONCLUSIVE, PASS
from ..results import ClaimResult, ItemResult
from .config import Settings
from .planning import deciding_bound
from .verdicts import JUDGED, bonferroni_confidence, claim_p_values


def estimate(result: ItemResult, env: str, base: str, confidence: float) -> stats.Estimate:
    """The ratio of env to base and its interval, from the paired rounds
    (worker processes as clusters)."""
    a, b, slots = result.paired(env, base)
    if not a:
        return stats.cluster_estimate([], confidence=confidence)
    d = stats.paired_log_ratios(a, b)
    return stats.cluster_estimate(d, slots, confidence=confidence)


def claim_estimate(result: ItemResult, claim: Claim, confidence: float) -> stats.Estimate:
    """The estimate a fixed-cost or absolute claim is judged on, in
    seconds (``scale="linear"``): per round ``env - factor * base`` of
    the paired round values (clustered by process, as a ratio's), or
    env's own round values in its process slots (log scale: above 0)."""
    if claim.kind == FIXED:
        a, b, slots = result.paired(claim.env, claim.baseline)  # type: ignore[arg-type]
        d = [x - claim.factor * y for x, y in zip(a, b)]
    elif claim.kind == ABSOLUTE:
        recs = [r for r in result.used_rounds if claim.env in r.values]
        d = [r.values[claim.env] for r in recs]
        slots = [r.slots.get(claim.env, r.slot) for r in recs]
    else:
        raise ValueError(f"claim_estimate: a {claim.kind} claim is a ratio's (estimate)")
    scale = stats.TIME if claim.kind == ABSOLUTE else stats.LINEAR
    return stats.cluster_estimate(d, slots, confidence=confidence, scale=scale)


def ratio_estimates(result: ItemResult, confidence: float) -> dict[str, stats.Estimate]:
    """{env: its ratio to the baseline}, every measured environment's."""
    samples = result.samples
    if result.baseline not in samples:
        return {}
    return {name: estimate(result, name, result.baseline, confidence) for name in samples if name != result.baseline}


class PlanLike(Protocol):
    """What judging reads of a test's plan (:class:`.config.ItemPlan`)."""

    @property
    def claims(self) -> Sequence[Claim]: ...
    @property
    def skipped_claims(self) -> Sequence[tuple[Claim, str]]: ...
    @property
    def waivers(self) -> Sequence[Any]: ...
    @property
    def sources(self) -> Mapping[Claim, tuple[str, str | None]]: ...


@dataclass(frozen=True)
class Claims:
    """A plan of claims alone (no claims set aside, no sources, no waivers)."""

    claims: Sequence[Claim]
    skipped_claims: Sequence[tuple[Claim, str]] = ()
    waivers: Sequence[Any] = ()
    sources: Mapping[Claim, tuple[str, str | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """What judging reads of the run: the level, the environments' metadata
    (their acceleration), the environments of the run, and today (waivers)."""

    confidence: float
    metadata: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: The run's environment names (a claim naming another was "not in this run").
    in_run: frozenset[str] = frozenset()
    #: Today for waivers (None: :func:`.waivers.today`).
    today: datetime.date | None = None


def context(s: Settings, metadata: Mapping[str, Mapping[str, Any]], confidence: float | None = None) -> Context:
    """The context of the run's settings, at ``confidence`` (by default --virt-confidence)."""
    return Context(s.confidence if confidence is None else confidence, metadata,
                   frozenset(sp.name for sp in s.specs))


def judge(result: ItemResult, plan: PlanLike, ctx: Context) -> tuple[ClaimResult, ...]:
    """The verdicts of one test: each of ``plan.claims`` judged from the
    measurements (when the round runner got to its statistics,
    ``result.evaluated``; one whose environment is missing skipped, with
    why), then the claims set aside (``skipped``, once each), each with
    where it was written and the first waiver that matches it."""
    out = list(_measured(result, plan.claims, ctx)) if result.evaluated else []
    have = {c.claim.text for c in out}
    for claim, reason in plan.skipped_claims:
        if claim.text not in have:
            out.append(ClaimResult.skipped(result.nodeid, claim, reason))
            have.add(claim.text)
    on = (ctx.today or waivers.today()) if plan.waivers else None
    return tuple(_settled(cr, plan, on) for cr in out)


def _settled(cr: ClaimResult, plan: PlanLike, on: datetime.date | None) -> ClaimResult:
    source, group = plan.sources.get(cr.claim, ("", None))
    waiver = next((w for w in plan.waivers if w.matches(cr.claim)), None)
    expired = waiver.expired_message(on) if waiver is not None and waiver.expired(on) else ""
    if (source, group, waiver, expired) == (cr.source, cr.group, cr.waiver, cr.waiver_expired):
        return cr
    return dataclasses.replace(cr, source=source, group=group, waiver=waiver, waiver_expired=expired)


def _measured(result: ItemResult, claims: Iterable[Claim], ctx: Context) -> Iterable[ClaimResult]:
    confidence = ctx.confidence
    pairs: dict[tuple[str, str], stats.Estimate] = {}

    def pair_estimate(env: str, base: str) -> stats.Estimate:
        if (env, base) not in pairs:
            pairs[env, base] = estimate(result, env, base, confidence)
        return pairs[env, base]

    samples = result.samples
    per_round = result.seconds_per_round()
    for claim in claims:
        missing = [n for n in claim.envs if n not in samples]
        if missing:
            reasons = "; ".join(f"{n}: {result.unavailable.get(n) or _not_measured(n, ctx)}" for n in missing)
            yield ClaimResult.skipped(result.nodeid, claim, reasons)
            continue
        est = (claim_estimate(result, claim, confidence) if claim.kind != RATIO
               else pair_estimate(claim.env, claim.baseline))  # type: ignore[arg-type]
        ratio, ci = est.ratio, est.ci
        verdict = claim.verdict(ratio, ci)
        accel = ctx.metadata.get(claim.env, {}).get("accel")
        # The p-value is always that of "the ratio is 1" (none without a baseline).
        p_value = None
        if claim.baseline is not None:
            p_value = (est if claim.kind == RATIO else pair_estimate(claim.env, claim.baseline)).p_value
        rounds_needed = seconds_needed = None
        if verdict == INCONCLUSIVE:
            bound = deciding_bound(claim, ratio, ci)
            if bound is not None:
                rounds_needed = stats.rounds_needed(est, bound)
                if rounds_needed is not None and math.isfinite(rounds_needed):
                    seconds_needed = max(0.0, rounds_needed - est.n) * per_round
        yield ClaimResult(result.nodeid, claim, ratio, ci, verdict, p_value=p_value, accel=accel, estimate=est,
                          rounds_needed=rounds_needed, seconds_needed=seconds_needed)


def _not_measured(name: str, ctx: Context) -> str:
    return NOT_IN_RUN if name not in ctx.in_run else "not measured for this test"


def correct(results: Sequence[ItemResult], confidence: float, correction: str,
            peers: Sequence[float] = ()) -> tuple[dict[str, Any], list[tuple[ClaimResult, ...]]]:
    """``--virt-correction`` over the run's claims: the method (the JSON's
    ``verdict_method``: ``confidence``, ``correction`` and ``family_size``,
    the judged (pass, fail, inconclusive) claims) and each result's
    verdicts, new ones where the correction changed them.

    ``none`` changes nothing. ``holm``: each judged claim has two
    hypotheses, exactly one of them true ("violated", whose rejection means
    pass; "holds", whose rejection means fail), with one-sided p-values
    from its estimate; Holm's step-down runs over all 2m of them at
    family-wise level 1 - confidence. A claim passes or fails only when
    one of its hypotheses is rejected; otherwise it is inconclusive, and
    its rounds needed are those of the Bonferroni level, at which its own
    interval would decide it whatever the others. Applied once: claims
    already corrected keep their verdict.

    ``peers``: the p-values (two per claim, as :func:`.verdicts.claim_p_values`)
    of the family's other claims, judged elsewhere (other pytest-xdist
    workers): they count in the family, their own verdicts are not set."""
    unchanged = [tuple(res.claims) for res in results]
    family = [cr for res in results for cr in res.claims if cr.verdict in JUDGED]
    if correction != "holm":
        peers = ()
    m = len(family) + len(peers) // 2
    method: dict[str, Any] = {"confidence": confidence, "correction": correction, "family_size": m}
    if correction != "holm" or not family or any(cr.verdict_uncorrected is not None for cr in family):
        return method, unchanged
    p = [x for cr in family for x in claim_p_values(cr)] + list(peers)
    rejected = stats.holm(p, 1 - confidence)
    adjusted = stats.holm_adjusted(p)
    level = bonferroni_confidence(confidence, m)
    new: dict[int, ClaimResult] = {}
    j = 0
    for res in results:
        per_round = res.seconds_per_round()
        for cr in res.claims:
            if cr.verdict in JUDGED:
                new[id(cr)] = _holm_one(cr, rejected[2 * j], rejected[2 * j + 1],
                                        min(adjusted[2 * j], adjusted[2 * j + 1]), m, level, per_round)
                j += 1
    return method, [tuple(new.get(id(cr), cr) for cr in claims) for claims in unchanged]


def _holm_one(cr: ClaimResult, passes: bool, fails: bool, p_adjusted: float, m: int, level: float,
              per_round: float) -> ClaimResult:
    verdict = PASS if passes and not fails else FAIL if fails and not passes else INCONCLUSIVE
    rounds_needed = seconds_needed = None
    est = cr.estimate
    if verdict == INCONCLUSIVE and est is not None:
        # Holm may keep open a claim its own interval decides: the
        # nearest bound, inside that interval or not.
        bound = deciding_bound(cr.claim, cr.ratio)
        if bound is not None:
            rounds_needed = stats.rounds_needed(dataclasses.replace(est, confidence=level), bound)
            if math.isfinite(rounds_needed):
                seconds_needed = max(0.0, rounds_needed - est.n) * per_round
    return dataclasses.replace(cr, verdict=verdict, verdict_uncorrected=cr.verdict, p_adjusted=p_adjusted,
                               family_size=m, rounds_needed=rounds_needed, seconds_needed=seconds_needed)
