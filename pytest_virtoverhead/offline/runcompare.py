"""Comparing two saved runs (``--virt-json`` files, version 2 or 3): did
overheads change?

The statistics are the run's own (docs/verdicts.md): the unit is the round,
an environment's value in a round is paired with the baseline's value in the
same round (``log(env / base)``), and the rounds of one worker-process slot
form a cluster (:func:`.stats.cluster_estimate`). Each run gives an estimate
of the log overhead ratio of a test and environment; how it changed from A
to B is their difference, ``log(ratio B) - log(ratio A)``, with a
Welch-Satterthwaite t interval (:func:`.stats.difference`). Its exponential
is the ratio of ratios ``ratio B / ratio A`` and its interval.

"B's overhead is not worse than A's" is an ordinary claim on that number,
``B <= A + T%`` for a tolerance T, judged by the same three-valued logic as
every other claim (:meth:`.claims.Claim.verdict`): ``pass`` when the whole
interval lies at or under 1 + T, ``fail`` (a regression) when it lies
wholly above, ``inconclusive`` otherwise.

The tolerance is also the effect-size floor for "better": a row is called
better only when its whole interval lies under ``1 / (1 + T)``. Intervals
carry the variation within each run (rounds and processes), not what moves
between two sessions of the same code (CPU frequency, cache and memory
placement, the host's own neighbours); measured here, that run-to-run part
is a few percent (docs/verdicts.md, "Comparing saved runs"), hence the floor,
as in Firecracker's A/B tests, which require both a significant difference
and a minimum effect size.

A regression is a row whose verdict is ``fail``, or a claim that passed in A
and fails in B. Pure functions: no pytest, no I/O except :func:`load_run`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ..judge import stats
from ..judge.claims import FAIL, INCONCLUSIVE, PASS, Claim, parse_claim
from ..judge.textfmt import change, finite, interval, json_safe

DEFAULT_TOLERANCE = 0.05
DEFAULT_CONFIDENCE = 0.95
#: The --virt-json versions this module reads.
VERSIONS = (2, 3)


class RunFileError(ValueError):
    """A file that is not a readable, complete ``--virt-json`` run."""


# --------------------------------------------------------------------------
# reading and checking


def load_run(path: str) -> dict[str, Any]:
    """Read and check a ``--virt-json`` file; RunFileError says what is wrong."""
    data = read_json(path)
    check_run(data, path)
    return data


def read_json(path: str, error: type[ValueError] = RunFileError) -> Any:
    """The JSON in the file ``path``; ``error`` (a message naming the file)
    when it cannot be read, is not UTF-8 or not JSON."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a --virt-json file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}): "
                    "not a --virt-json file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not JSON: {exc}") from None
    except RecursionError:
        raise error(f"{path}: not JSON that can be read: nested too deeply") from None


def check_run(data: Any, name: str = "run", *, allow_aborted: bool = False) -> None:
    """Raise RunFileError unless ``data`` is a complete version-2 or -3 run whose
    results hold numbers where numbers belong."""
    if not isinstance(data, dict) or "results" not in data:
        hint = ""
        if isinstance(data, dict) and "benchmarks" in data and "machine_info" in data:
            hint = " (this is a pytest-benchmark file; compare it with 'pytest-benchmark compare')"
        raise RunFileError(f"{name}: not a pytest-virtoverhead --virt-json file: no 'results'{hint}")
    version = data.get("version")
    if version == 1:
        raise RunFileError(
            f"{name}: a version-1 --virt-json file (written before per-round records existed): it has no "
            "rounds, which compare needs to pair each round with its baseline and to count worker processes; "
            "write both runs again with this version (--virt-json), or compare them with the version that "
            "wrote them")
    if version not in VERSIONS:
        raise RunFileError(f"{name}: unsupported --virt-json version {version!r} (this tool reads "
                           f"{', '.join(map(str, VERSIONS))})")
    if data.get("aborted") is True and not allow_aborted:
        status = data.get("exitstatus")
        why = {2: "interrupted or a collection error", 3: "internal error", 4: "usage error"}.get(status, "")
        raise RunFileError(f"{name}: this run did not finish (\"aborted\": true, exit status {status}"
                           f"{': ' + why if why else ''}): its results are partial and it is no baseline "
                           "for a gate; run the suite to its end and compare that")
    results = data["results"]
    if not isinstance(results, list):
        raise RunFileError(f"{name}: 'results' must be a list, got {type(results).__name__}")
    for i, entry in enumerate(results):
        _check_entry(entry, f"{name}: results[{i}]")
    claims = data.get("claims", [])
    if not isinstance(claims, list) or not all(isinstance(c, dict) for c in claims):
        raise RunFileError(f"{name}: 'claims' must be a list of objects")
    for i, c in enumerate(claims):
        if not isinstance(c.get("test"), str) or not isinstance(c.get("claim"), str):
            raise RunFileError(f"{name}: claims[{i}] needs 'test' and 'claim' strings")
    envs = data.get("environments", {})
    if not isinstance(envs, dict):
        raise RunFileError(f"{name}: 'environments' must be an object")


def _check_entry(entry: Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise RunFileError(f"{where}: expected an object, got {type(entry).__name__}")
    for key in ("test", "env"):
        if not isinstance(entry.get(key), str) or not entry.get(key):
            raise RunFileError(f"{where}: '{key}' must be a non-empty string")
    where = f"{where} ({entry['test']} [{entry['env']}])"
    samples = entry.get("samples")
    if samples is not None:
        if not isinstance(samples, list):
            raise RunFileError(f"{where}: 'samples' must be a list of numbers (seconds)")
        bad = next((x for x in samples if not finite(x)), None)
        if bad is not None or any(x < 0 for x in samples):
            raise RunFileError(f"{where}: 'samples' holds {bad!r}: expected non-negative numbers (seconds)")
    rounds = entry.get("rounds")
    if rounds is None:
        if samples:
            raise RunFileError(f"{where}: has samples but no 'rounds' (per-round records)")
        return
    if not isinstance(rounds, list):
        raise RunFileError(f"{where}: 'rounds' must be a list of per-round records")
    for j, r in enumerate(rounds):
        if not isinstance(r, dict):
            raise RunFileError(f"{where}: rounds[{j}] must be an object")
        for key in ("round", "process"):
            if isinstance(r.get(key), bool) or not isinstance(r.get(key), int):
                raise RunFileError(f"{where}: rounds[{j}].{key} must be a whole number, got {r.get(key)!r}")
        value = r.get("value")
        if value is not None and (not finite(value) or value < 0):
            raise RunFileError(f"{where}: rounds[{j}].value must be a non-negative number of seconds, "
                               f"got {value!r}")


# --------------------------------------------------------------------------
# the comparison


def parse_tolerance(text: str) -> float:
    """``"5%"`` or ``"5"`` -> 0.05 (a percentage, 0 or more, under 1000%)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*%?\s*", str(text))
    if not m or float(m.group(1)) >= 1000:
        raise ValueError(f"tolerance must be a percentage such as 5% or 2.5, got {text!r}")
    return float(m.group(1)) / 100.0


def parse_confidence(text: str) -> float:
    """``0.95``, ``95%`` or ``95`` -> 0.95 (between 0.5 and 1): the plugin's
    own --virt-confidence parser."""
    from ..judge.optionvalues import parse_confidence as parse_level

    if not str(text).strip():
        raise ValueError(f"confidence: expected a level such as 0.95 or 95%, got {text!r}")
    return parse_level(text, "confidence")


def not_worse_claim(tolerance: float) -> Claim:
    """The claim ``B <= A + T%`` (T = 100 * tolerance) in the claims grammar."""
    return parse_claim(f"B <= A + {tolerance * 100:g}%")


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
    n_a: int = 0  # rounds
    n_b: int = 0
    processes_a: int = 0
    processes_b: int = 0
    ci_a: tuple[float, float] = (math.nan, math.nan)
    ci_b: tuple[float, float] = (math.nan, math.nan)
    accel_a: str | None = None
    accel_b: str | None = None
    note: str = ""
    #: Effect-size floor for "better": the interval must lie under this.
    better_below: float = 1.0

    @property
    def change(self) -> float:
        """Relative change of the overhead ratio: +0.10 is 10% worse."""
        return self.ratio_of_ratios - 1

    @property
    def regression(self) -> bool:
        return self.verdict == FAIL

    @property
    def better(self) -> bool:
        return math.isfinite(self.ci[1]) and self.ci[1] < self.better_below

    @property
    def flagged(self) -> bool:
        """Told apart from "no change": worse or better."""
        return self.regression or self.better


@dataclass
class ClaimChange:
    test: str
    claim: str
    verdict_a: str | None  # None: the claim is not in A
    verdict_b: str | None
    ratio_a: float | None = None
    ratio_b: float | None = None
    unit: str = "ratio"  # "s": ratio_a and ratio_b are seconds (fixed-cost and absolute claims)

    @property
    def regression(self) -> bool:
        return self.verdict_a == PASS and self.verdict_b == FAIL


@dataclass
class RunComparison:
    tolerance: float
    claim: str
    confidence: float = DEFAULT_CONFIDENCE
    rows: list[OverheadChange] = field(default_factory=list)
    claims: list[ClaimChange] = field(default_factory=list)  # only those whose verdict changed
    only_in_a: list[str] = field(default_factory=list)  # "test [env]" with why, when known
    only_in_b: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[str]:
        pct = round(self.confidence * 100, 6)
        out = [f"{r.test} [{r.env}]: overhead ratio {r.ratio_a:.3f} -> {r.ratio_b:.3f} "
               f"({change(r.change)}, B/A {pct:g}% CI {interval(r.ci)} above {1 + self.tolerance:g})"
               for r in self.rows if r.regression]
        out += [f"{c.test}: claim '{c.claim}' passed in A and fails in B" for c in self.claims if c.regression]
        return out

    @property
    def in_common(self) -> bool:
        """Did both runs measure at least one test and environment?"""
        return bool(self.rows)

    def to_json(self) -> dict[str, Any]:
        return json_safe({
            "tolerance": self.tolerance, "claim": self.claim, "confidence": self.confidence,
            "rows": [{**asdict(r), "change": r.change, "regression": r.regression, "better": r.better}
                     for r in self.rows],
            "claims": [{**asdict(c), "regression": c.regression} for c in self.claims],
            "only_in_a": self.only_in_a, "only_in_b": self.only_in_b, "notes": self.notes,
            "regressions": self.regressions,
        })


def _baseline_of(data: dict[str, Any], test: str) -> str:
    for c in data.get("claims", []):
        if c.get("test") == test and c.get("baseline"):
            return c["baseline"]
    return data.get("baseline") or "baremetal"


def _entries(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["test"], r["env"]): r for r in data.get("results", [])}


def _rounds(entry: dict[str, Any]) -> dict[int, tuple[int, float]]:
    """{round index: (process slot, value)} of the rounds the run used."""
    out = {}
    for r in entry.get("rounds") or []:
        if r.get("used", True) and r.get("value") is not None:
            out[r["round"]] = (r["process"], float(r["value"]))
    return out


def _measured(entry: dict[str, Any] | None) -> bool:
    return bool(entry) and bool(_rounds(entry))


def run_estimate(env: dict[str, Any], base: dict[str, Any], confidence: float = DEFAULT_CONFIDENCE,
                 run_baseline: str | None = None) -> stats.Estimate:
    """The run's estimate of ``log(env / base)``: rounds paired by index,
    clustered by env's worker-process slot (as the session computes it)."""
    re_, rb = _rounds(env), _rounds(base)
    # A round of env carries the baseline calls of its own block (the ones
    # it sat next to) as "baseline_value"; older files pair with the
    # baseline's value of the round.
    own = {r["round"]: float(r["baseline_value"]) for r in env.get("rounds") or []
           if r.get("used", True) and finite(r.get("baseline_value"))} if base.get("env") == run_baseline else {}
    common = sorted(set(re_) & set(rb))
    # The cluster is env's own process slot: the slot its block ran in on
    # both sides (a VM's 4 processes, not the baseline's 12 or 20).
    return stats.ratio_estimate([re_[i][1] for i in common], [own.get(i, rb[i][1]) for i in common],
                                [re_[i][0] for i in common], confidence=confidence)


def _accel(data: dict[str, Any], env: str) -> str | None:
    meta = data.get("environments", {}).get(env)
    return meta.get("accel") if isinstance(meta, dict) else None


def _machine(data: dict[str, Any], entry: dict[str, Any]) -> str | None:
    """The machine that measured ``entry``: its own (a merged run) or the run's."""
    block = data.get("machine")
    return entry.get("machine") or (block.get("name") if isinstance(block, dict) else None)


def _why_missing(data: dict[str, Any], entries: dict[tuple[str, str], dict[str, Any]], test: str, env: str) -> str:
    """Why ``test [env]`` has no rounds in this run (for the missing list)."""
    entry = entries.get((test, env))
    if entry is None:
        if not any(t == test for t, _ in entries):
            return "test not run"
        if env not in data.get("environments", {}):
            return "environment not in this run"
        return "not measured"
    if entry.get("unavailable"):
        return "unavailable: " + str(entry["unavailable"]).splitlines()[0][:160]
    if entry.get("error"):
        return "failed"
    for t in data.get("tests", []) or []:
        if isinstance(t, dict) and t.get("test") == test:
            if t.get("outcome") in ("skipped", "failed", "xfailed"):
                return t["outcome"]
    return "no rounds"


def compare_runs(a: dict[str, Any], b: dict[str, Any], *, tolerance: float = DEFAULT_TOLERANCE,
                 confidence: float = DEFAULT_CONFIDENCE) -> RunComparison:
    """Compare run B with run A (both ``--virt-json`` documents, version 2 or 3)."""
    check_run(a, "A")
    check_run(b, "B")
    claim = not_worse_claim(tolerance)
    out = RunComparison(tolerance=tolerance, claim=claim.text, confidence=confidence)
    ea, eb = _entries(a), _entries(b)
    keys = list(dict.fromkeys(list(ea) + list(eb)))
    floor = 1 / (1 + tolerance)
    for key in keys:
        test, env = key
        base_a, base_b = _baseline_of(a, test), _baseline_of(b, test)
        if env in (base_a, base_b):
            continue
        in_a = _measured(ea.get(key)) and _measured(ea.get((test, base_a)))
        in_b = _measured(eb.get(key)) and _measured(eb.get((test, base_b)))
        if not (in_a and in_b):
            if in_a:
                out.only_in_a.append(f"{test} [{env}] (B: {_why_missing(b, eb, test, env)})")
            elif in_b:
                out.only_in_b.append(f"{test} [{env}] (A: {_why_missing(a, ea, test, env)})")
            continue
        notes = []
        if base_a != base_b:
            notes.append(f"baseline changed: {base_a} -> {base_b}")
        est_a = run_estimate(ea[key], ea[(test, base_a)], confidence, a.get("baseline"))
        est_b = run_estimate(eb[key], eb[(test, base_b)], confidence, b.get("baseline"))
        diff = stats.difference(est_a, est_b, confidence=confidence)
        rr, ci = diff.ratio, diff.ci
        if not (math.isfinite(ci[0]) and math.isfinite(ci[1])):
            ci = (math.nan, math.nan)
            notes.append("too few rounds for an interval")
        machine_a, machine_b = _machine(a, ea[key]), _machine(b, eb[key])
        if machine_a and machine_b and machine_a != machine_b:
            notes.append(f"machine changed: {machine_a} -> {machine_b}")
        accel_a, accel_b = _accel(a, env), _accel(b, env)
        if accel_a != accel_b and (accel_a or accel_b):
            notes.append(f"acceleration changed: {accel_a} -> {accel_b}")
        verdict = claim.verdict(rr, ci) if math.isfinite(rr) else INCONCLUSIVE
        out.rows.append(OverheadChange(test, env, base_b, est_a.ratio, est_b.ratio, rr, ci, verdict,
                                       n_a=est_a.n, n_b=est_b.n, processes_a=est_a.n_clusters,
                                       processes_b=est_b.n_clusters, ci_a=est_a.ci, ci_b=est_b.ci,
                                       accel_a=accel_a, accel_b=accel_b, note="; ".join(notes),
                                       better_below=floor))
    ca = {(c["test"], c["claim"]): c for c in a.get("claims", [])}
    cb = {(c["test"], c["claim"]): c for c in b.get("claims", [])}
    for key in dict.fromkeys(list(ca) + list(cb)):
        va = ca[key].get("verdict") if key in ca else None
        vb = cb[key].get("verdict") if key in cb else None
        if va != vb:
            out.claims.append(ClaimChange(key[0], key[1], va, vb,
                                          ca[key].get("ratio") if key in ca else None,
                                          cb[key].get("ratio") if key in cb else None,
                                          str((cb.get(key) or ca.get(key) or {}).get("unit") or "ratio")))
    return out


__all__ = ["RunFileError", "load_run", "check_run", "parse_tolerance", "parse_confidence", "not_worse_claim",
           "run_estimate", "compare_runs", "RunComparison", "OverheadChange", "ClaimChange",
           "PASS", "FAIL", "INCONCLUSIVE", "DEFAULT_TOLERANCE", "DEFAULT_CONFIDENCE"]
