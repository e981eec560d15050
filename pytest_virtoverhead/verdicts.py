"""What a run's verdicts become: the family-wise correction over all
claims (--virt-correction) and the outcome pytest reports for a test.

Nothing here imports pytest.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Sequence

from . import stats
from .planning import deciding_bound
from .results import ClaimResult, ItemResult
from .verdict import FAIL, INCONCLUSIVE, PASS

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


def correct_verdicts(results: Iterable["ItemResult"], confidence: float, correction: str,
                     peers: Sequence[float] = ()) -> dict[str, Any]:
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
    already corrected keep their verdict.

    ``peers``: the p-values (two per claim, as :func:`claim_p_values`) of
    the family's other claims, judged elsewhere (other pytest-xdist
    workers): they count in the family, their own verdicts are not set."""
    results = list(results)
    family = [cr for res in results for cr in res.claims if cr.verdict in JUDGED]
    if correction != "holm":
        peers = ()
    method: dict[str, Any] = {"confidence": confidence, "correction": correction,
                              "family_size": len(family) + len(peers) // 2}
    if correction != "holm" or not family or any(cr.verdict_uncorrected is not None for cr in family):
        return method
    m = len(family) + len(peers) // 2
    p = [x for cr in family for x in claim_p_values(cr)] + list(peers)
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
            # Holm may keep open a claim its own interval decides: the
            # nearest bound, inside that interval or not.
            bound = deciding_bound(cr.claim, cr.ratio)
            if bound is not None:
                cr.rounds_needed = stats.rounds_needed(dataclasses.replace(est, confidence=level), bound)
                if math.isfinite(cr.rounds_needed):
                    cr.seconds_needed = max(0.0, cr.rounds_needed - est.n) * per_round[id(cr)]
    return method


@dataclass
class Outcome:
    """How a compared test ends: ``passed``, ``failed`` or ``skipped``, the
    text pytest shows, and extra report sections."""

    outcome: Literal["passed", "failed", "skipped"]
    text: str | None = None
    sections: list[tuple[str, str]] = field(default_factory=list)
    #: pytest's xfail marker reason when the test xfailed or xpassed:
    #: the report carries it as ``wasxfail`` (shown XFAIL / XPASS).
    wasxfail: str | None = None
    #: The environment where the test itself failed, skipped or xfailed:
    #: its own reports of that run say so (:func:`.testreports.host_reports`).
    env: str | None = None


def outcome_of(result: ItemResult, *, strict: bool, gate: bool, required_missing: list[str]) -> Outcome:
    """Decide a compared test's outcome from what was measured."""
    out = Outcome("passed")
    if required_missing:
        out.outcome = "failed"
        out.text = "required environment(s) could not start (--virt-require):\n" + "\n".join(required_missing)
    elif result.failure:
        out.outcome, out.text, out.env = "failed", result.failure[1], result.failure[0]
    elif result.xfailed:
        out.outcome, out.wasxfail, out.env = "skipped", result.xfailed[1], result.xfailed[0]
        out.text = f"xfailed in environment {result.xfailed[0]!r}: {result.xfailed[1]}"
    elif result.skipped:
        out.outcome, out.text, out.env = "skipped", result.skipped[1].splitlines()[0], result.skipped[0]
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
