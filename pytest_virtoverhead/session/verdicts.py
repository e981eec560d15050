"""What a run's verdicts mean: the p-values and the Bonferroni level the
family-wise correction (--virt-correction, :func:`.judging.correct`) works
with, and the outcome pytest reports for a test; it reads verdicts, never
writes them.

Nothing here imports pytest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ..judge import stats
from ..judge.verdict import FAIL, INCONCLUSIVE, PASS
from ..results import ClaimResult, ItemResult

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
