"""Comparing two saved runs (``--virt-json`` files): did overheads change?

For every test and environment measured in both runs (the baseline aside),
the overhead of run A is ``ratio A = median(env) / median(baseline)`` and
likewise for B. How it changed is the ratio of ratios ``ratio B / ratio A``,
with a percentile-bootstrap interval that resamples the four groups of
samples independently (as :func:`.stats.bootstrap_ratio_ci` does for two).

"B's overhead is not worse than A's" is then an ordinary claim on that
number, ``B <= A + T%`` for a tolerance T, judged by the same three-valued
logic as every other claim (:meth:`.claims.Claim.verdict`): ``pass`` when
the whole interval lies at or under 1 + T, ``fail`` when it lies wholly
above, ``inconclusive`` otherwise.

A regression is a ratio of ratios whose verdict is ``fail``, or a claim that
passed in A and fails in B. Pure functions: no pytest, no I/O except
:func:`load_run`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from . import stats
from .claims import FAIL, INCONCLUSIVE, PASS, Claim, parse_claim
from .session import stable_seed

DEFAULT_TOLERANCE = 0.05


class RunFileError(ValueError):
    """A file that is not a readable ``--virt-json`` run."""


def load_run(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as exc:
        raise RunFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise RunFileError(f"{path}: not JSON: {exc}") from None
    check_run(data, path)
    return data


def check_run(data: Any, name: str = "run") -> None:
    if not isinstance(data, dict) or "results" not in data:
        hint = ""
        if isinstance(data, dict) and "benchmarks" in data and "machine_info" in data:
            hint = " (this is a pytest-benchmark file; compare it with 'pytest-benchmark compare')"
        raise RunFileError(f"{name}: not a pytest-virtoverhead --virt-json file: no 'results'{hint}")
    if data.get("version") != 1:
        raise RunFileError(f"{name}: unsupported --virt-json version {data.get('version')!r} (this tool reads 1)")


def parse_tolerance(text: str) -> float:
    """``"5%"`` or ``"5"`` -> 0.05 (a percentage, 0 or more)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*%?\s*", str(text))
    if not m:
        raise ValueError(f"tolerance must be a percentage such as 5% or 2.5, got {text!r}")
    return float(m.group(1)) / 100.0


def not_worse_claim(tolerance: float) -> Claim:
    """The claim ``B <= A + T%`` (T = 100 * tolerance) in the claims grammar."""
    return parse_claim(f"B <= A + {tolerance * 100:g}%")


def bootstrap_ratio_of_ratios_ci(a_env: Sequence[float], a_base: Sequence[float],
                                 b_env: Sequence[float], b_base: Sequence[float], *,
                                 confidence: float = 0.95, n_resamples: int = stats.DEFAULT_RESAMPLES,
                                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``(med b_env / med b_base) / (med a_env / med a_base)``."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    rng = np.random.default_rng(seed)
    meds = []
    for samples, what in ((a_env, "A's environment"), (a_base, "A's baseline"),
                          (b_env, "B's environment"), (b_base, "B's baseline")):
        arr = np.asarray(samples, dtype=float)
        if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
            raise ValueError(f"{what} needs finite samples")
        meds.append(np.median(arr[rng.integers(0, arr.size, size=(n_resamples, arr.size))], axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        rr = (meds[2] / meds[3]) / (meds[0] / meds[1])
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(rr, [alpha, 1 - alpha])
    return float(lo), float(hi)


@dataclass
class OverheadChange:
    test: str
    env: str
    baseline: str
    ratio_a: float
    ratio_b: float
    ratio_of_ratios: float
    ci: tuple[float, float]
    verdict: str  # of "B <= A + T%": pass / fail / inconclusive
    n_a: int = 0
    n_b: int = 0
    accel_a: str | None = None
    accel_b: str | None = None
    note: str = ""

    @property
    def change(self) -> float:
        """Relative change of the overhead ratio: +0.10 is 10% worse."""
        return self.ratio_of_ratios - 1

    @property
    def regression(self) -> bool:
        return self.verdict == FAIL

    @property
    def better(self) -> bool:
        return math.isfinite(self.ci[1]) and self.ci[1] < 1


@dataclass
class ClaimChange:
    test: str
    claim: str
    verdict_a: str | None  # None: the claim is not in A
    verdict_b: str | None
    ratio_a: float | None = None
    ratio_b: float | None = None

    @property
    def regression(self) -> bool:
        return self.verdict_a == PASS and self.verdict_b == FAIL


@dataclass
class RunComparison:
    tolerance: float
    claim: str
    rows: list[OverheadChange] = field(default_factory=list)
    claims: list[ClaimChange] = field(default_factory=list)  # only those whose verdict changed
    only_in_a: list[str] = field(default_factory=list)  # "test [env]"
    only_in_b: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[str]:
        out = [f"{r.test} [{r.env}]: overhead ratio {r.ratio_a:.3f} -> {r.ratio_b:.3f} "
               f"({r.change * 100:+.1f}%, B/A 95% CI [{r.ci[0]:.3f}, {r.ci[1]:.3f}] above {1 + self.tolerance:g})"
               for r in self.rows if r.regression]
        out += [f"{c.test}: claim '{c.claim}' passed in A and fails in B" for c in self.claims if c.regression]
        return out

    def to_json(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            return v
        return clean({
            "tolerance": self.tolerance, "claim": self.claim,
            "rows": [{**asdict(r), "change": r.change, "regression": r.regression} for r in self.rows],
            "claims": [{**asdict(c), "regression": c.regression} for c in self.claims],
            "only_in_a": self.only_in_a, "only_in_b": self.only_in_b, "notes": self.notes,
            "regressions": self.regressions,
        })


def _baseline_of(data: dict[str, Any], test: str) -> str:
    for c in data.get("claims", []):
        if c.get("test") == test and c.get("baseline"):
            return c["baseline"]
    return data.get("baseline") or "baremetal"


def _samples(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for r in data.get("results", []):
        if r.get("samples") or r.get("median") is not None:
            out[(r["test"], r["env"])] = r
    return out


def _accel(data: dict[str, Any], env: str) -> str | None:
    return (data.get("environments", {}).get(env) or {}).get("accel")


def _ratio(entry: dict[str, Any], base: dict[str, Any]) -> float:
    if entry.get("samples") and base.get("samples"):
        return stats.ratio_of_medians(entry["samples"], base["samples"])
    if entry.get("ratio") is not None:
        return float(entry["ratio"])
    if entry.get("median") is not None and base.get("median"):
        return float(entry["median"]) / float(base["median"])
    return math.nan


def compare_runs(a: dict[str, Any], b: dict[str, Any], *, tolerance: float = DEFAULT_TOLERANCE,
                 seed: int = 0, n_resamples: int = stats.DEFAULT_RESAMPLES,
                 confidence: float = 0.95) -> RunComparison:
    """Compare run B with run A (both ``--virt-json`` documents)."""
    check_run(a, "A")
    check_run(b, "B")
    claim = not_worse_claim(tolerance)
    out = RunComparison(tolerance=tolerance, claim=claim.text)
    sa, sb = _samples(a), _samples(b)
    keys = list(dict.fromkeys(list(sa) + list(sb)))
    for key in keys:
        test, env = key
        base_a, base_b = _baseline_of(a, test), _baseline_of(b, test)
        if env in (base_a, base_b):
            continue
        if key not in sb:
            out.only_in_a.append(f"{test} [{env}]")
            continue
        if key not in sa:
            out.only_in_b.append(f"{test} [{env}]")
            continue
        note = ""
        if base_a != base_b:
            note = f"baseline changed: {base_a} -> {base_b}"
        ea, eb = sa[key], sb[key]
        ba, bb = sa.get((test, base_a)), sb.get((test, base_b))
        if ba is None or bb is None:
            out.notes.append(f"{test} [{env}]: no baseline samples in {'A' if ba is None else 'B'}")
            continue
        ratio_a, ratio_b = _ratio(ea, ba), _ratio(eb, bb)
        rr = ratio_b / ratio_a if ratio_a and math.isfinite(ratio_a) else math.nan
        ci = (math.nan, math.nan)
        groups = [ea.get("samples") or [], ba.get("samples") or [], eb.get("samples") or [], bb.get("samples") or []]
        if all(len(g) >= 2 for g in groups):
            ci = bootstrap_ratio_of_ratios_ci(*groups, confidence=confidence, n_resamples=n_resamples,
                                              seed=stable_seed(seed, test, env))
        else:
            note = "; ".join(x for x in (note, "too few samples for an interval") if x)
        accel_a, accel_b = _accel(a, env), _accel(b, env)
        if accel_a != accel_b and (accel_a or accel_b):
            note = "; ".join(x for x in (note, f"acceleration changed: {accel_a} -> {accel_b}") if x)
        verdict = claim.verdict(rr, ci) if math.isfinite(rr) else INCONCLUSIVE
        out.rows.append(OverheadChange(test, env, base_b, ratio_a, ratio_b, rr, ci, verdict,
                                       n_a=len(groups[0]), n_b=len(groups[2]),
                                       accel_a=accel_a, accel_b=accel_b, note=note))
    ca = {(c["test"], c["claim"]): c for c in a.get("claims", [])}
    cb = {(c["test"], c["claim"]): c for c in b.get("claims", [])}
    for key in dict.fromkeys(list(ca) + list(cb)):
        va = ca[key]["verdict"] if key in ca else None
        vb = cb[key]["verdict"] if key in cb else None
        if va != vb:
            out.claims.append(ClaimChange(key[0], key[1], va, vb,
                                          ca[key].get("ratio") if key in ca else None,
                                          cb[key].get("ratio") if key in cb else None))
    return out


__all__ = ["RunFileError", "load_run", "check_run", "parse_tolerance", "not_worse_claim",
           "bootstrap_ratio_of_ratios_ci", "compare_runs", "RunComparison", "OverheadChange", "ClaimChange",
           "PASS", "FAIL", "INCONCLUSIVE"]
