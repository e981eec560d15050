"""Claims about overhead: a small grammar, parsed without ``eval``.

Forms (``ENV`` is an environment name, the ratio is ENV time / BASE time)::

    ENV <= FACTOR * BASE        ENV >= FACTOR * BASE     (also <, >)
    ENV <= BASE * FACTOR
    ENV <= BASE                 (FACTOR 1)
    ENV <= BASE + P%            ENV >= BASE - P%
    ENV ~= BASE +- P%           (also ±): the ratio lies within 1 ± P/100

Time claims (``TIME`` is a number with a unit: ``us`` (or ``µs``), ``ms``,
``s``)::

    ENV <= FACTOR * BASE + TIME   fixed cost: per round, ENV - FACTOR * BASE <= TIME
    ENV >= BASE - TIME            (also <, >; FACTOR defaults to 1)
    ENV ~= BASE +- TIME           ENV - BASE lies within ± TIME
    ENV <= TIME                   absolute: ENV's own round values
    ENV ~= TIME +- P%  or  +- TIME

A claim's ``kind`` says what its bounds apply to: ``ratio`` (ENV / BASE,
a ratio), ``fixed`` (ENV - FACTOR * BASE, in seconds) or ``absolute``
(ENV's own time, in seconds); ``unit`` is ``ratio`` or ``s``. Its verdict
on a confidence interval of that quantity is three-valued: ``pass`` when
the whole interval satisfies the bounds, ``fail`` when the whole interval
violates them, ``inconclusive`` otherwise.

Imports neither pytest, docker nor libvirt.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterable

from . import textfmt
from .verdict import FAIL, INCONCLUSIVE, PASS, Verdict


class ClaimError(ValueError):
    """A malformed claim; ``str()`` shows the claim with a caret under the column."""

    def __init__(self, claim: str, column: int, reason: str):
        self.claim = claim
        self.column = column  # 1-based
        self.reason = reason
        super().__init__(self.render())

    def render(self) -> str:
        pointer = " " * (self.column - 1) + "^"
        return (f"invalid claim at column {self.column}: {self.reason}\n"
                f"    {self.claim}\n    {pointer}")


_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<micro>[\u00b5\u03bc][A-Za-z]*)
  | (?P<op><=|>=|~=|\+-|±|<|>|\*|\+|-|%)
""", re.VERBOSE)


@dataclass(frozen=True)
class _Tok:
    kind: str  # number, name, op, end
    text: str
    col: int  # 1-based


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            ch = text[pos]
            hint = " (use '<=' for at most)" if ch == "=" else ""
            raise ClaimError(text, pos + 1, f"unexpected character {ch!r}{hint}")
        kind = m.lastgroup
        if kind != "ws":
            toks.append(_Tok(kind, m.group(), pos + 1))
        pos = m.end()
    toks.append(_Tok("end", "", len(text) + 1))
    return toks


#: Time units of a claim: how many make a second. ``µs`` is the micro
#: sign (U+00B5), ``μs`` the Greek mu (U+03BC): both read as ``us``.
UNITS = {"us": 1e6, "\u00b5s": 1e6, "\u03bcs": 1e6, "ms": 1e3, "s": 1.0}
_UNITS_TEXT = "us (or \u00b5s), ms or s"
#: Words that are clearly meant as a unit but are not one of ours.
_UNIT_LIKE = {"ns", "nsec", "usec", "msec", "sec", "secs", "second", "seconds", "min", "mins", "minute",
              "minutes", "h", "hr", "hrs", "hour", "hours", "d", "day", "days", "m", "millis", "micros"}

#: What a claim's bounds apply to (``Claim.kind``).
RATIO, FIXED, ABSOLUTE = "ratio", "fixed", "absolute"


def format_time(value: float | None) -> str:
    """Seconds with a unit of the claim grammar (``3.2 ms``, ``-150 us``):
    no ``ns``, which the grammar does not have."""
    return textfmt.seconds(value, textfmt.SECONDS_UNITS[:3])


@dataclass(frozen=True)
class Claim:
    """A parsed claim: bounds on one quantity, by ``kind``:

    - ``ratio``: the ratio ``env / baseline``;
    - ``fixed``: ``env - factor * baseline`` per round, in seconds (a
      factor plus a fixed cost per call);
    - ``absolute``: ``env``'s own round values, in seconds (``baseline``
      is None).
    """

    text: str
    env: str
    baseline: str | None
    op: str  # one of <=, <, >=, >, ~=
    lower: float | None  # the quantity must be >= lower (None: unbounded)
    upper: float | None  # the quantity must be <= upper
    kind: str = RATIO
    #: ``fixed``: the factor of the baseline in ``env - factor * baseline``.
    factor: float = 1.0
    env_col: int = field(default=1, compare=False)
    baseline_col: int = field(default=1, compare=False)

    def __str__(self) -> str:
        return self.text

    @property
    def envs(self) -> tuple[str, ...]:
        return (self.env,) if self.baseline is None else (self.env, self.baseline)

    @property
    def unit(self) -> str:
        """``ratio`` (a ratio claim) or ``s`` (its estimate and bounds are seconds)."""
        return RATIO if self.kind == RATIO else "s"

    @property
    def quantity(self) -> str:
        """What the bounds apply to: ``ratio``, ``vm - 1.2 * baremetal``, ``container``."""
        if self.kind == ABSOLUTE:
            return self.env
        if self.kind == FIXED:
            factor = "" if self.factor == 1 else f"{self.factor:g} * "
            return f"{self.env} - {factor}{self.baseline}"
        return "ratio"

    def format_value(self, value: float | None) -> str:
        """A value of the quantity: ``1.234`` (a ratio) or ``3.2 ms``."""
        if self.unit == RATIO:
            return textfmt.fixed(value)
        return format_time(value)

    def holds(self, ratio: float) -> bool:
        """Does a single ratio satisfy the claim?"""
        if self.op == "<":
            return ratio < self.upper  # type: ignore[operator]
        if self.op == ">":
            return ratio > self.lower  # type: ignore[operator]
        lo_ok = self.lower is None or ratio >= self.lower
        hi_ok = self.upper is None or ratio <= self.upper
        return lo_ok and hi_ok

    def verdict(self, ratio: float, ci: tuple[float, float]) -> Verdict:
        """``pass`` / ``fail`` / ``inconclusive`` for a ratio and its interval."""
        lo, hi = ci
        if any(math.isnan(x) for x in (ratio, lo, hi)):
            return INCONCLUSIVE
        if lo > hi:
            lo, hi = hi, lo
        if self.holds(lo) and self.holds(hi):
            # The satisfying set is an interval, so the whole CI lies in it.
            return PASS
        above = self.upper is not None and (lo > self.upper or (self.op == "<" and lo >= self.upper))
        below = self.lower is not None and (hi < self.lower or (self.op == ">" and hi <= self.lower))
        if above or below:
            return FAIL
        return INCONCLUSIVE

    def describe_bounds(self) -> str:
        q = self.quantity
        fmt = (lambda x: f"{x:g}") if self.unit == RATIO else format_time
        if self.lower is not None and self.upper is not None:
            return f"{fmt(self.lower)} <= {q} <= {fmt(self.upper)}"
        if self.upper is not None:
            return f"{q} {'<' if self.op == '<' else '<='} {fmt(self.upper)}"
        return f"{q} {'>' if self.op == '>' else '>='} {fmt(self.lower)}"


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def error(self, reason: str, tok: _Tok | None = None) -> ClaimError:
        return ClaimError(self.text, (tok or self.tok).col, reason)

    def take(self, kind: str, text: str | None = None, what: str = "") -> _Tok:
        tok = self.tok
        if tok.kind != kind or (text is not None and tok.text != text):
            found = "the end of the claim" if tok.kind == "end" else repr(tok.text)
            raise self.error(f"expected {what or text or kind}, found {found}")
        self.i += 1
        return tok

    def number(self, what: str) -> float:
        tok = self.take("number", what=what)
        value = float(tok.text)
        if not math.isfinite(value):
            raise self.error(f"{what} must be finite", tok)
        return value

    def percent(self, below: bool) -> float:
        tok = self.tok
        value = self.number("a percentage such as 5%")
        self.take("op", "%", what="'%' after the percentage")
        if below and value >= 100:
            raise self.error("a percentage below the baseline must be under 100%", tok)
        return value / 100.0

    def is_op(self, *texts: str, at: int = 0) -> bool:
        tok = self.toks[min(self.i + at, len(self.toks) - 1)]
        return tok.kind == "op" and tok.text in texts

    def found(self) -> str:
        return "the end of the claim" if self.tok.kind == "end" else repr(self.tok.text)

    def unit_like(self, at: int = 0) -> bool:
        """Is the token ``at`` ahead meant as a time unit (ours or not)?"""
        tok = self.toks[min(self.i + at, len(self.toks) - 1)]
        return tok.kind == "micro" or (tok.kind == "name" and (tok.text.lower() in UNITS
                                                                or tok.text.lower() in _UNIT_LIKE))

    def unit(self, value: float) -> float | None:
        """``value`` in seconds when a unit follows (consumed), else None."""
        if not self.unit_like():
            return None
        tok = self.tok
        if tok.text not in UNITS:
            raise self.error(f"unknown unit {tok.text!r}; use {_UNITS_TEXT}")
        self.i += 1
        return value / UNITS[tok.text]

    def time(self, what: str, expected: str) -> float:
        """NUMBER UNIT, in seconds; ``expected`` names what may follow the number."""
        value = self.number(what)
        seconds = self.unit(value)
        if seconds is None:
            raise self.error(f"expected {expected}, found {self.found()}")
        return seconds

    def tolerance(self, centre: float, time_centre: float) -> tuple[float, float, bool]:
        """After '+-': ``P%`` (around ``centre``) or ``TIME`` (around
        ``time_centre``). Returns (lower, upper, the tolerance was a time)."""
        tok = self.tok
        value = self.number("a tolerance such as 3% or 2 ms")
        if not value > 0:
            raise self.error("a tolerance of 0 can never be met (an interval always has some width); "
                             "give the width you accept, e.g. '+- 1%'", tok)
        if self.is_op("%"):
            self.i += 1
            if value >= 100:
                raise self.error("a percentage below the baseline must be under 100%", tok)
            return centre * (1 - value / 100), centre * (1 + value / 100), False
        seconds = self.unit(value)
        if seconds is None:
            raise self.error(f"expected '%' or a time unit ({_UNITS_TEXT}) after the tolerance, found {self.found()}")
        return time_centre - seconds, time_centre + seconds, True

    def parse(self) -> Claim:
        if self.tok.kind == "end":
            raise self.error("empty claim; expected e.g. 'container <= 1.05 * baremetal'")
        env_tok = self.take("name", what="an environment name")
        env = env_tok.text
        op_tok = self.tok
        if op_tok.kind != "op" or op_tok.text not in ("<=", ">=", "<", ">", "~="):
            raise self.error(f"expected a comparison (<=, >=, <, >, ~=), found {self.found()}")
        op = op_tok.text
        self.i += 1
        factor = 1.0
        factor_tok: _Tok | None = None
        if self.tok.kind == "number":
            factor_tok = self.tok
            factor = self.number("a factor")
            if not self.is_op("*"):
                seconds = self.unit(factor)
                if seconds is not None:
                    return self.absolute(env_tok, op, seconds, factor_tok)
                if self.tok.kind == "name":
                    raise self.error(f"expected '*' after the factor, found {self.found()}")
                raise self.error(f"expected a time unit ({_UNITS_TEXT}) after {factor_tok.text} for a time "
                                 f"bound, or '*' and an environment for a factor, found {self.found()}")
            self.take("op", "*", what="'*' after the factor")
        base_tok = self.take("name", what="a baseline environment name")
        base = base_tok.text
        if factor_tok is None and self.is_op("*"):
            self.i += 1
            factor_tok = self.tok
            factor = self.number("a factor")
        if factor_tok is not None and factor <= 0:
            raise self.error("the factor must be positive", factor_tok)
        lower: float | None = None
        upper: float | None = None
        kind = RATIO
        if op == "~=":
            if self.is_op("+", "-") and self.toks[self.i + 1].kind == "number" and self.unit_like(at=2):
                raise self.error("a fixed cost does not go with '~=': bound it from both sides with two claims "
                                 f"(e.g. '{env} >= {base} + 2 ms' and '{env} <= {base} + 4 ms'), or use "
                                 f"'{env} ~= {base} +- 2 ms'")
            if not self.is_op("+-", "±"):
                raise self.error(f"'~=' needs a tolerance: expected '+- P%' or '+- TIME', found {self.found()}")
            self.i += 1
            lower, upper, in_time = self.tolerance(factor, 0.0)
            if in_time:
                kind = FIXED  # env - factor * base within +- TIME
        else:
            mult = factor
            bound: float | None = None
            if self.is_op("+", "-"):
                sign_tok = self.take("op")
                if self.tok.kind == "number" and self.is_op("%", at=1):
                    if factor_tok is not None:
                        raise self.error("use either a factor or a percentage, not both (a factor with a "
                                         f"fixed cost: '{env} {op} 1.05 * {base} + 3 ms')", sign_tok)
                    pct = self.percent(below=sign_tok.text == "-")
                    mult = 1 + pct if sign_tok.text == "+" else 1 - pct
                    if self.is_op("+", "-"):
                        raise self.error("a percentage and a fixed cost do not combine; write a factor "
                                         f"instead: '{env} {op} {mult:g} * {base} + 3 ms'")
                else:
                    seconds = self.time("a percentage (5%) or a fixed cost (3 ms)",
                                        f"'%' or a time unit ({_UNITS_TEXT})")
                    kind, bound = FIXED, seconds if sign_tok.text == "+" else -seconds
            elif self.is_op("+-", "±"):
                raise self.error("'+-' tolerances go with '~=' (e.g. 'container ~= baremetal +- 3%')")
            if bound is None:
                bound = mult
            if op in ("<=", "<"):
                upper = bound
            else:
                lower = bound
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.tok.text!r} after the end of the claim")
        if env == base:
            raise ClaimError(self.text, base_tok.col, f"the claim compares {env!r} with itself")
        return Claim(self.text, env, base, op, lower, upper, kind=kind, factor=factor,
                     env_col=env_tok.col, baseline_col=base_tok.col)

    def absolute(self, env_tok: _Tok, op: str, seconds: float, bound_tok: _Tok) -> Claim:
        """``ENV OP TIME`` (``~=`` with '+- P%' or '+- TIME'): bounds on env's own time."""
        if not seconds > 0:
            raise self.error("a time bound must be positive", bound_tok)
        lower: float | None = None
        upper: float | None = None
        if op == "~=":
            if not self.is_op("+-", "±"):
                raise self.error(f"'~=' needs a tolerance: expected '+- P%' or '+- TIME', found {self.found()}")
            self.i += 1
            tol_tok = self.tok
            lower, upper, _ = self.tolerance(seconds, seconds)
            if lower <= 0:
                raise self.error(f"a tolerance as large as the time itself leaves no lower bound; write "
                                 f"'{env_tok.text} <= {format_time(upper)}' instead", tol_tok)
        elif self.is_op("+-", "±"):
            raise self.error(f"'+-' tolerances go with '~=' (e.g. '{env_tok.text} ~= 20 ms +- 10%')")
        elif op in ("<=", "<"):
            upper = seconds
        else:
            lower = seconds
        if self.is_op("*"):
            raise self.error("a time does not multiply an environment; for a factor plus a fixed cost write "
                             f"'{env_tok.text} {op} 1.2 * baremetal + 3 ms'")
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.tok.text!r} after the end of the claim")
        return Claim(self.text, env_tok.text, None, op, lower, upper, kind=ABSOLUTE, env_col=env_tok.col)


#: ``ENV.METRIC`` at the start of a claim: a footprint claim (footprint/claims.py).
_FOOTPRINT_REF_RE = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*\s*\.\s*[A-Za-z_]")


def is_footprint_claim(text: str) -> bool:
    """Does ``text`` start with ``ENV.METRIC`` (a footprint claim)?"""
    return isinstance(text, str) and bool(_FOOTPRINT_REF_RE.match(text))


def reject_here(text: str) -> None:
    """Raise ClaimError for a footprint claim given where a test's time
    claims go (a marker, ``virt_claims``, ``--virt-claim``): a footprint is
    the environment's over the session, not a test's."""
    if is_footprint_claim(text):
        raise ClaimError(text, text.index(".") + 1,
                     "a footprint claim (ENV.METRIC) is about the environments of the session, not a test's "
                     "time: list it in the ini key virt_footprint_claims or pass --virt-footprint-claim")


def parse_claim(text: str) -> Claim:
    """Parse one claim; raise :class:`ClaimError` naming the column."""
    if not isinstance(text, str):
        raise ClaimError(repr(text), 1, f"a claim must be a string, not {type(text).__name__}")
    stripped = text.strip()
    if "." in stripped:  # ENV.METRIC: a footprint claim, which has a list of its own
        reject_here(stripped)
    return _Parser(stripped).parse()


#: Why a claim about a known environment that this run does not have is skipped.
NOT_IN_RUN = "not in this run"


def check_envs(claim: Claim, known: Iterable[str], elsewhere: Iterable[str] = ()) -> list[str]:
    """The claim's environments that are not in this run but are known
    (``elsewhere``: the kinds, and names declared for other runs): the claim
    is then skipped, not wrong. Raise ClaimError (with the column) for a
    name that is neither an environment of the run nor known elsewhere."""
    known = list(known)
    elsewhere = set(elsewhere)
    absent: list[str] = []
    for name, col in ((claim.env, claim.env_col), (claim.baseline, claim.baseline_col)):
        if name is None or name in known:  # an absolute claim has no baseline
            continue
        if name in elsewhere:
            absent.append(name)
            continue
        also = f"; kinds and other declared environments: {', '.join(sorted(elsewhere))}" if elsewhere else ""
        raise ClaimError(claim.text, col,
                         f"unknown environment {name!r}; environments of this run: {', '.join(known)}{also}")
    return absent


def absent_reason(names: Iterable[str]) -> str:
    """``vm: not in this run`` (the reason of a skipped claim)."""
    return "; ".join(f"{name}: {NOT_IN_RUN}" for name in names)
