"""Judging a compared test: the ratio of each environment to the baseline
with its interval (paired rounds, worker processes as clusters), and a
verdict on every claim from it, with what would decide an inconclusive one.

Nothing here imports pytest.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from . import stats
from .claims import ABSOLUTE, FIXED, NOT_IN_RUN, RATIO, Claim
from .config import Settings
from .planning import deciding_bound
from .results import ClaimResult, ItemResult
from .verdict import INCONCLUSIVE


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
    env's own round values in its process slots."""
    if claim.kind == FIXED:
        a, b, slots = result.paired(claim.env, claim.baseline)  # type: ignore[arg-type]
        d = [x - claim.factor * y for x, y in zip(a, b)]
    elif claim.kind == ABSOLUTE:
        recs = [r for r in result.used_rounds if claim.env in r.values]
        d = [r.values[claim.env] for r in recs]
        slots = [r.slots.get(claim.env, r.slot) for r in recs]
    else:
        raise ValueError(f"claim_estimate: a {claim.kind} claim is a ratio's (estimate)")
    return stats.cluster_estimate(d, slots, confidence=confidence, scale=stats.LINEAR)


def evaluate(result: ItemResult, claims: list[Claim], s: Settings, metadata: dict[str, dict[str, Any]], *,
             with_p: bool = True, confidence: float | None = None) -> None:
    """Ratios against the baseline and verdicts on every claim (at
    ``confidence``, by default --virt-confidence); ``metadata`` names each
    environment's acceleration."""
    confidence = s.confidence if confidence is None else confidence
    result.claims = []
    pairs: dict[tuple[str, str], stats.Estimate] = {}

    def pair_estimate(env: str, base: str) -> stats.Estimate:
        if (env, base) not in pairs:
            pairs[env, base] = estimate(result, env, base, confidence)
        return pairs[env, base]

    samples = result.samples
    if s.baseline in samples:
        for name in samples:
            if name != s.baseline:
                est = pair_estimate(name, s.baseline)
                result.estimates[name] = est
                result.ratios[name] = (est.ratio, est.ci)
    per_round = result.seconds_per_round()
    for claim in claims:
        missing = [n for n in claim.envs if n not in samples]
        if missing:
            reasons = "; ".join(f"{n}: {result.unavailable.get(n) or _not_measured(n, s)}" for n in missing)
            result.claims.append(ClaimResult.skipped(result.nodeid, claim, reasons))
            continue
        est = (claim_estimate(result, claim, confidence) if claim.kind != RATIO
               else pair_estimate(claim.env, claim.baseline))
        ratio, ci = est.ratio, est.ci
        verdict = claim.verdict(ratio, ci)
        accel = metadata.get(claim.env, {}).get("accel")
        # The p-value is always that of "the ratio is 1" (none without a baseline).
        p_value = None
        if with_p and claim.baseline is not None:
            p_value = (est if claim.kind == RATIO else pair_estimate(claim.env, claim.baseline)).p_value
        cr = ClaimResult(result.nodeid, claim, ratio, ci, verdict, p_value=p_value, accel=accel, estimate=est)
        if verdict == INCONCLUSIVE:
            bound = deciding_bound(claim, ratio, ci)
            if bound is not None:
                cr.rounds_needed = stats.rounds_needed(est, bound)
                if cr.rounds_needed is not None and math.isfinite(cr.rounds_needed):
                    cr.seconds_needed = max(0.0, cr.rounds_needed - est.n) * per_round
        result.claims.append(cr)


def _not_measured(name: str, settings: Settings) -> str:
    return NOT_IN_RUN if settings.spec(name) is None else "not measured for this test"


def add_skipped_claims(result: ItemResult, skipped: Iterable[tuple[Claim, str]]) -> None:
    """Claims about a known environment this run does not have: verdict
    ``skipped`` with the reason (``vm: not in this run``), once each."""
    have = {c.claim.text for c in result.claims}
    for claim, reason in skipped:
        if claim.text not in have:
            result.claims.append(ClaimResult.skipped(result.nodeid, claim, reason))
            have.add(claim.text)
