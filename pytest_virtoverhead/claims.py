"""Claims about overhead: a small grammar, parsed without ``eval``.

Forms (``ENV`` is an environment name, the ratio is ENV time / BASE time)::

    ENV <= FACTOR * BASE        ENV >= FACTOR * BASE     (also <, >)
    ENV <= BASE * FACTOR
    ENV <= BASE                 (FACTOR 1)
    ENV <= BASE + P%            ENV >= BASE - P%
    ENV ~= BASE +- P%           (also ±): the ratio lies within 1 ± P/100

A claim gives bounds on the ratio of medians. Its verdict on a confidence
interval is three-valued: ``pass`` when the whole interval satisfies the
bounds, ``fail`` when the whole interval violates them, ``inconclusive``
otherwise.

Imports neither pytest, docker nor libvirt.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterable

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


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


@dataclass(frozen=True)
class Claim:
    """A parsed claim: bounds on the ratio ``env / baseline``."""

    text: str
    env: str
    baseline: str
    op: str  # one of <=, <, >=, >, ~=
    lower: float | None  # ratio must be >= lower (None: unbounded)
    upper: float | None  # ratio must be <= upper
    env_col: int = field(default=1, compare=False)
    baseline_col: int = field(default=1, compare=False)

    def __str__(self) -> str:
        return self.text

    @property
    def envs(self) -> tuple[str, str]:
        return (self.env, self.baseline)

    def holds(self, ratio: float) -> bool:
        """Does a single ratio satisfy the claim?"""
        if self.op == "<":
            return ratio < self.upper  # type: ignore[operator]
        if self.op == ">":
            return ratio > self.lower  # type: ignore[operator]
        lo_ok = self.lower is None or ratio >= self.lower
        hi_ok = self.upper is None or ratio <= self.upper
        return lo_ok and hi_ok

    def verdict(self, ratio: float, ci: tuple[float, float]) -> str:
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
        if self.lower is not None and self.upper is not None:
            return f"{self.lower:g} <= ratio <= {self.upper:g}"
        if self.upper is not None:
            return f"ratio {'<' if self.op == '<' else '<='} {self.upper:g}"
        return f"ratio {'>' if self.op == '>' else '>='} {self.lower:g}"


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

    def parse(self) -> Claim:
        if self.tok.kind == "end":
            raise self.error("empty claim; expected e.g. 'container <= 1.05 * baremetal'")
        env_tok = self.take("name", what="an environment name")
        env = env_tok.text
        op_tok = self.tok
        if op_tok.kind != "op" or op_tok.text not in ("<=", ">=", "<", ">", "~="):
            found = "the end of the claim" if op_tok.kind == "end" else repr(op_tok.text)
            raise self.error(f"expected a comparison (<=, >=, <, >, ~=), found {found}")
        op = op_tok.text
        self.i += 1
        factor = 1.0
        factor_tok: _Tok | None = None
        if self.tok.kind == "number":
            factor_tok = self.tok
            factor = self.number("a factor")
            self.take("op", "*", what="'*' after the factor")
        base_tok = self.take("name", what="a baseline environment name")
        base = base_tok.text
        if factor_tok is None and self.tok.kind == "op" and self.tok.text == "*":
            self.i += 1
            factor_tok = self.tok
            factor = self.number("a factor")
        if factor_tok is not None and factor <= 0:
            raise self.error("the factor must be positive", factor_tok)
        lower: float | None = None
        upper: float | None = None
        if op == "~=":
            sign = self.tok
            if sign.kind != "op" or sign.text not in ("+-", "±"):
                found = "the end of the claim" if sign.kind == "end" else repr(sign.text)
                raise self.error(f"'~=' needs a tolerance: expected '+- P%', found {found}")
            self.i += 1
            tol = self.percent(below=True)
            lower, upper = factor * (1 - tol), factor * (1 + tol)
        else:
            mult = factor
            if self.tok.kind == "op" and self.tok.text in ("+", "-"):
                if factor_tok is not None:
                    raise self.error("use either a factor or a percentage, not both")
                sign = self.take("op").text
                pct = self.percent(below=sign == "-")
                mult = 1 + pct if sign == "+" else 1 - pct
            elif self.tok.kind == "op" and self.tok.text in ("+-", "±"):
                raise self.error("'+-' tolerances go with '~=' (e.g. 'container ~= baremetal +- 3%')")
            if op in ("<=", "<"):
                upper = mult
            else:
                lower = mult
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.tok.text!r} after the end of the claim")
        if env == base:
            raise ClaimError(self.text, base_tok.col, f"the claim compares {env!r} with itself")
        return Claim(self.text, env, base, op, lower, upper, env_col=env_tok.col, baseline_col=base_tok.col)


def parse_claim(text: str) -> Claim:
    """Parse one claim; raise :class:`ClaimError` naming the column."""
    if not isinstance(text, str):
        raise ClaimError(repr(text), 1, f"a claim must be a string, not {type(text).__name__}")
    stripped = text.strip()
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
        if name in known:
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
