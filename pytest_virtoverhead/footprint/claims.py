"""Footprint claims (``vm.memory >= 4 * container.memory``,
``container.start <= 0.5 s``): their grammar, their check against the
run's environments, their three-valued verdicts on the figures and the
verdict's line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..judge import textfmt
from ..judge.claims import ClaimError, is_footprint_claim, reject_here  # noqa: F401 - re-exported by the package
from ..judge.optionvalues import parse_each
from ..judge.verdict import FAIL, INCONCLUSIVE, PASS, SKIPPED
from .text import format_value
from .tracker import median

#: Metrics a claim may name: {metric: (figure whose observations it judges, unit)}.
METRICS = {
    "start": ("start", "s"),
    "process_start": ("process_start", "s"),
    "memory": ("memory_peak", "B"),
    "memory_idle": ("memory_idle", "B"),
    "memory_peak": ("memory_peak", "B"),
    "memory_end": ("memory_end", "B"),
    "guest_memory": ("guest_memory", "B"),
    "cpu": ("cpu", "s"),
    "cpu_rate": ("cpu_rate", "ratio"),
    "storage": ("storage", "B"),
    # What the environment adds over the baseline (.added):
    "start_added": ("start_added", "s"),
    "memory_added": ("memory_peak_added", "B"),
    "memory_idle_added": ("memory_idle_added", "B"),
    "memory_end_added": ("memory_end_added", "B"),
    "cpu_added": ("cpu_added", "s"),
}
_UNIT_SCALE = {
    "B": ("B", 1), "KB": ("B", 1e3), "MB": ("B", 1e6), "GB": ("B", 1e9),
    "KiB": ("B", 1 << 10), "MiB": ("B", 1 << 20), "GiB": ("B", 1 << 30),
    "us": ("s", 1e-6), "\u00b5s": ("s", 1e-6), "ms": ("s", 1e-3), "s": ("s", 1.0),
}
_UNIT_WORDS = {"B": "a size (B, KB, MB, GB, KiB, MiB, GiB)", "s": "a time (us, ms, s)",
               "ratio": "a percentage (e.g. 5%)"}

_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_\u00b5][A-Za-z0-9_]*)
  | (?P<op><=|>=|~=|==|\+-|±|<|>|\*|\+|-|%|\.)
""", re.VERBOSE)



@dataclass(frozen=True)
class Ref:
    env: str
    metric: str
    env_col: int


@dataclass(frozen=True)
class FootprintClaim:
    """``left OP factor * right + offset`` (``right`` None: ``left OP offset``).
    ``offset`` is in the metric's unit (bytes, seconds, a fraction)."""

    text: str
    left: Ref
    op: str
    right: Ref | None
    factor: float
    offset: float
    unit: str

    @property
    def envs(self) -> tuple[str, ...]:
        return (self.left.env,) + ((self.right.env,) if self.right else ())

    def describe(self) -> str:
        rhs = ""
        if self.right is not None:
            rhs = (f"{self.factor:g} * " if self.factor != 1 else "") + f"{self.right.env}.{self.right.metric}"
            if self.offset:
                rhs += f" {'+' if self.offset > 0 else '-'} {format_value(abs(self.offset), self.unit)}"
        else:
            rhs = format_value(self.offset, self.unit)
        return f"{self.left.env}.{self.left.metric} {self.op} {rhs}"


def _error(text: str, col: int, reason: str) -> ClaimError:
    """The same error, caret and all, as a time claim's."""
    return ClaimError(text, col, reason)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN_RE.match(text, pos)
            if not m:
                raise _error(text, pos + 1, f"unexpected character {text[pos]!r}")
            if m.lastgroup != "ws":
                self.toks.append((m.lastgroup, m.group(), pos + 1))
            pos = m.end()
        self.toks.append(("end", "", len(text) + 1))
        self.i = 0

    @property
    def tok(self) -> tuple[str, str, int]:
        return self.toks[self.i]

    def found(self) -> str:
        kind, text, _ = self.tok
        return "the end of the claim" if kind == "end" else repr(text)

    def fail(self, reason: str, col: int | None = None):
        return _error(self.text, self.tok[2] if col is None else col, reason)

    def ref(self) -> Ref:
        kind, env, col = self.tok
        if kind != "name":
            raise self.fail(f"expected an environment name, found {self.found()}")
        self.i += 1
        if self.tok[1] != ".":
            raise self.fail(f"expected '.' and a metric after {env!r} (e.g. {env}.memory), found {self.found()}")
        self.i += 1
        kind, metric, mcol = self.tok
        if kind != "name":
            raise self.fail(f"expected a metric after '{env}.', found {self.found()}")
        if metric not in METRICS:
            raise self.fail(f"unknown metric {metric!r}; metrics: {', '.join(METRICS)}")
        self.i += 1
        return Ref(env, metric, col)

    def quantity(self, unit: str) -> float:
        kind, num, col = self.tok
        if kind != "number":
            raise self.fail(f"expected a number, found {self.found()}")
        self.i += 1
        value = float(num)
        kind, word, ucol = self.tok
        if unit == "ratio":
            if word != "%":
                raise self.fail(f"expected '%' after {num}: this metric is {_UNIT_WORDS[unit]}")
            self.i += 1
            return value / 100
        if kind != "name" or word not in _UNIT_SCALE:
            if kind == "name":
                raise self.fail(f"unknown unit {word!r}; this metric is {_UNIT_WORDS[unit]} (a factor takes "
                                f"'*': {num} * ENV.METRIC)")
            raise self.fail(f"expected a unit after {num}: this metric is {_UNIT_WORDS[unit]}")
        dim, scale = _UNIT_SCALE[word]
        if dim != unit:
            raise self.fail(f"{word!r} is {_UNIT_WORDS[dim].split(' (')[0]}, but this metric is {_UNIT_WORDS[unit]}")
        self.i += 1
        return value * scale

    def parse(self) -> FootprintClaim:
        left = self.ref()
        unit = METRICS[left.metric][1]
        kind, op, col = self.tok
        if op in ("~=", "=="):
            raise self.fail(f"{op!r} is not a footprint operator: use <=, >=, < or > (bound both sides with "
                            "two claims)")
        if op not in ("<=", ">=", "<", ">"):
            raise self.fail(f"expected <=, >=, < or > after {left.env}.{left.metric}, found {self.found()}")
        self.i += 1
        factor, right, offset = 1.0, None, 0.0
        kind, text, col = self.tok
        if kind == "number" and self.toks[self.i + 1][1] == "*":
            factor = float(text)
            if factor <= 0:
                raise self.fail("the factor must be positive")
            self.i += 2
            right = self.ref()
        elif kind == "number":
            offset = self.quantity(unit)
            if offset <= 0:
                raise self.fail("a bound must be positive", col)
        elif kind == "name":
            right = self.ref()
            if self.tok[1] == "*":
                self.i += 1
                k, num, c = self.tok
                if k != "number":
                    raise self.fail(f"expected a factor after '*', found {self.found()}")
                factor = float(num)
                if factor <= 0:
                    raise self.fail("the factor must be positive")
                self.i += 1
        else:
            raise self.fail(f"expected a bound (e.g. 0.5 s, 512 MiB) or ENV.METRIC, found {self.found()}")
        if right is not None:
            runit = METRICS[right.metric][1]
            if runit != unit:
                raise _error(self.text, right.env_col,
                             f"{right.env}.{right.metric} is {_UNIT_WORDS[runit].split(' (')[0]}, "
                             f"{left.env}.{left.metric} {_UNIT_WORDS[unit].split(' (')[0]}: they do not compare")
            if self.tok[1] in ("+", "-"):
                sign = 1 if self.tok[1] == "+" else -1
                self.i += 1
                k, num, c = self.tok
                if k == "number" and self.toks[self.i + 1][1] == "%" and unit != "ratio":
                    self.i += 2
                    factor *= 1 + sign * float(num) / 100
                    if factor <= 0:
                        raise self.fail("the percentage leaves no positive factor", c)
                else:
                    offset = sign * self.quantity(unit)
        if self.tok[0] != "end":
            raise self.fail(f"unexpected {self.tok[1]!r} after the end of the claim")
        return FootprintClaim(self.text, left, op, right, factor, offset, unit)


def parse_claim(text: str) -> FootprintClaim:
    """Parse one footprint claim; raise claims.ClaimError naming the column."""
    if not isinstance(text, str):
        raise _error(repr(text), 1, f"a claim must be a string, not {type(text).__name__}")
    return _Parser(text.strip()).parse()


def check_envs(claim: FootprintClaim, known: Iterable[str], elsewhere: Iterable[str] = ()) -> list[str]:
    """The claim's environments known elsewhere but not in this run (it is
    then skipped); ClaimError at the column of a name known nowhere."""
    known, elsewhere = list(known), set(elsewhere)
    absent = []
    for ref in (claim.left, claim.right):
        if ref is None or ref.env in known:
            continue
        if ref.env in elsewhere:
            absent.append(ref.env)
            continue
        also = f"; kinds and other declared environments: {', '.join(sorted(elsewhere))}" if elsewhere else ""
        raise _error(claim.text, ref.env_col,
                     f"unknown environment {ref.env!r}; environments of this run: {', '.join(known)}{also}")
    return absent


def parse_claims(texts: Iterable[str], source: str, known: Iterable[str],
                 elsewhere: Iterable[str] = ()) -> list[FootprintClaim]:
    """Parse and check claims; ValueError ``source: invalid claim at column ...``."""
    return parse_each(texts, source, parse_claim, check_envs, known, elsewhere)


def observations(footprints: Mapping[str, Mapping[str, Any]], ref: Ref) -> tuple[list[float], str]:
    """The observed values of ``ref`` (several where the figure was measured
    repeatedly: each start, each worker process's start), and why there are none."""
    fp = footprints.get(ref.env)
    if fp is None:
        return [], f"{ref.env}: not in this run"
    if fp.get("unavailable"):
        return [], f"{ref.env}: unavailable"
    fig = (fp.get("figures") or {}).get(METRICS[ref.metric][0])
    if not fig or fig.get("value") is None:
        return [], f"{ref.env}.{ref.metric}: not measured" + (" here (a VM's only)" if ref.metric == "guest_memory"
                                                               else "")
    samples = [float(x) for x in (fig.get("samples") or []) if textfmt.finite(x)]
    if not fig.get("repeated"):
        samples = []  # one figure (a peak, a total): judged on its value alone
    return (samples or [float(fig["value"])]), ""


def evaluate(claim: FootprintClaim, footprints: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The claim's verdict on the figures (a :meth:`Tracker.to_json` per env).

    A figure measured once gives ``pass`` or ``fail``. Where it was measured
    repeatedly (``start`` of an environment started more than once,
    ``process_start`` of its worker processes), the claim is judged over
    the range of the observations: ``pass`` when every pairing
    satisfies it, ``fail`` when none does, ``inconclusive`` otherwise.
    """
    out: dict[str, Any] = {"claim": claim.text, "kind": "footprint", "metric": claim.left.metric,
                           "unit": claim.unit, "left": f"{claim.left.env}.{claim.left.metric}",
                           "right": f"{claim.right.env}.{claim.right.metric}" if claim.right else None,
                           "factor": claim.factor, "offset": claim.offset, "op": claim.op}
    left, why = observations(footprints, claim.left)
    right: list[float] = [0.0]
    if not why and claim.right is not None:
        right, why = observations(footprints, claim.right)
    if why:
        out.update(verdict=SKIPPED, reason=why)
        return out
    rhs = [claim.factor * r + claim.offset for r in right]
    # d = left - rhs over every pairing: its range decides.
    lo, hi = min(left) - max(rhs), max(left) - min(rhs)
    holds = {"<=": lambda d: d <= 0, "<": lambda d: d < 0, ">=": lambda d: d >= 0, ">": lambda d: d > 0}[claim.op]
    a, b = holds(lo), holds(hi)
    verdict = PASS if a and b else FAIL if not a and not b else INCONCLUSIVE
    out.update(verdict=verdict, observed=[min(left), max(left)], n=len(left),
               bound=[min(rhs), max(rhs)])
    if claim.right is not None:
        out["right_observed"] = [min(right), max(right)]
        if min(right) > 0:
            out["ratio"] = median(left) / median(right)
            out["ratio_range"] = [min(left) / max(right), max(left) / min(right)]
    return out


def claim_line(res: Mapping[str, Any]) -> str:
    """``pass  vm.memory >= 4 * container.memory  vm.memory 1.1 GiB; bound 412 MiB; ratio 10.7``"""
    verdict = res["verdict"]
    tag = verdict.upper() if verdict == FAIL else verdict
    text = f"{tag:<13} {res['claim']}"
    if verdict == SKIPPED:
        return f"{text}  ({res.get('reason')})"
    unit = res["unit"]

    def span(pair: list[float]) -> str:
        lo, hi = pair
        if math.isclose(lo, hi):
            return format_value(lo, unit)
        return f"[{format_value(lo, unit)}, {format_value(hi, unit)}]"

    text += f"  {res['left']} {span(res['observed'])}"
    if res.get("right"):
        text += f", {res['right']} {span(res['right_observed'])}"
        if "ratio" in res:
            rr = res["ratio_range"]
            text += f", ratio {res['ratio']:.3g}" + ("" if math.isclose(rr[0], rr[1]) else
                                                      f" [{rr[0]:.3g}, {rr[1]:.3g}]")
    else:
        text += f" (needs {res['op']} {format_value(res['bound'][0], unit)})"
    return text
