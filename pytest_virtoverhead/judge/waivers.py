"""Waivers that expire: a known, accepted failure of one claim, with a
reason and an end date.

Two sources (docs/claims.md, "Waivers"):

- the marker: ``@pytest.mark.virt(claims=[...], waive={CLAIM: (UNTIL, REASON)})``
  with ``UNTIL`` a ``"YYYY-MM-DD"`` string or a ``datetime.date``;
- the ini key ``virt_waivers``, one per line:
  ``[SCOPE: ]CLAIM until YYYY-MM-DD: REASON``, where ``SCOPE`` is a test
  id (``test_x.py::test_y``), a file or class prefix of one
  (``test_x.py``), or a glob (``*::test_io_*``); without it the waiver is
  for every test that has the claim.

A waiver matches a claim by meaning (``vm<=2*baremetal`` is
``vm <= 2 * baremetal``). A waiver in force (today <= UNTIL) keeps a failed
(or, under --virt-strict, inconclusive) claim from failing its test; the
reports say ``waived until UNTIL: REASON``. A waiver past its date fails
the test whatever the verdict, naming the waiver. A waiver that matches no
claim is a usage error: there are no silent, permanent ignore lists.

Judging (:func:`.judging.judge`) attaches to each claim's verdict the
first waiver that matches it. Today is ``datetime.date.today()``; the
environment variable ``VIRTOVERHEAD_TODAY=YYYY-MM-DD`` replaces it (for
the plugin's own tests, and to rehearse an expiry).

Imports neither pytest, docker nor libvirt.
"""

from __future__ import annotations

import datetime
import fnmatch
import os
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .claims import Claim, ClaimError, parse_claim

#: Overrides today's date (YYYY-MM-DD), for tests.
TODAY_ENV = "VIRTOVERHEAD_TODAY"

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_UNTIL_RE = re.compile(r"\s+until\s+")


class WaiverError(ValueError):
    """A malformed waiver; ``str()`` names where and, for an ini line,
    shows it with a caret under the column."""


def today() -> datetime.date:
    """``datetime.date.today()``, or the date in $VIRTOVERHEAD_TODAY."""
    text = os.environ.get(TODAY_ENV, "").strip()
    if not text:
        return datetime.date.today()
    try:
        return parse_date(text)
    except ValueError as exc:
        raise WaiverError(f"${TODAY_ENV}: {exc}") from None


def parse_date(text: Any) -> datetime.date:
    """``YYYY-MM-DD`` (or a ``datetime.date``) -> date; ValueError says why."""
    if isinstance(text, datetime.datetime):
        return text.date()
    if isinstance(text, datetime.date):
        return text
    if not isinstance(text, str) or not _DATE_RE.fullmatch(text.strip()):
        raise ValueError(f"invalid date {text!r}: expected YYYY-MM-DD, e.g. 2027-01-31")
    try:
        return datetime.date.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"invalid date {text!r}: {exc}") from None


@dataclass(frozen=True)
class Waiver:
    claim: Claim
    until: datetime.date
    reason: str
    #: Where it was written: ``marker of t.py::test_a``, ``virt_waivers (ini) entry 2``.
    source: str
    #: ini waivers: the tests it is for (None: every test with the claim).
    scope: str | None = None

    def applies_to(self, nodeid: str) -> bool:
        if self.scope is None:
            return True
        s = self.scope
        if any(ch in s for ch in "*?["):
            return fnmatch.fnmatchcase(nodeid, s)
        return nodeid == s or nodeid.startswith((s + "::", s + "["))

    def matches(self, claim: Claim) -> bool:
        return claim_key(claim) == claim_key(self.claim)

    def expired(self, on: datetime.date) -> bool:
        return on > self.until

    @property
    def text(self) -> str:
        """``waived until 2027-01-31: reason``"""
        return f"waived until {self.until.isoformat()}: {self.reason}"

    def expired_message(self, on: datetime.date) -> str:
        return (f"waiver of claim '{self.claim.text}' expired on {self.until.isoformat()} (today is "
                f"{on.isoformat()}): \"{self.reason}\" ({self.source}); fix the overhead, or renew the "
                "waiver with a new date and reason")

    def to_json(self, expired: bool) -> dict[str, Any]:
        return {"until": self.until.isoformat(), "reason": self.reason, "source": self.source,
                "expired": expired, **({"scope": self.scope} if self.scope else {})}


def claim_key(claim: Claim) -> tuple:
    """A claim's meaning, whatever its spelling."""
    return (claim.kind, claim.env, claim.baseline, claim.op, claim.lower, claim.upper,
            claim.factor if claim.kind != "ratio" else None)


def _claim(text: Any, where: str) -> Claim:
    try:
        return parse_claim(text)
    except ClaimError as exc:
        raise WaiverError(f"{where}: {exc}") from None


def marker_waivers(nodeid: str, waive: Any) -> list[Waiver]:
    """``waive={CLAIM: (UNTIL, REASON)}`` of one test's marker."""
    where = f"{nodeid}: @pytest.mark.virt(waive=...)"
    if not isinstance(waive, Mapping):
        raise WaiverError(f"{where}: expected a dict {{CLAIM: (UNTIL, REASON)}}, e.g. "
                          "waive={'container <= 1.05 * baremetal': ('2027-01-31', 'seccomp cost, issue 42')}; "
                          f"got {type(waive).__name__}")
    out = []
    for text, value in waive.items():
        claim = _claim(text, where)
        if not (isinstance(value, (tuple, list)) and len(value) == 2):
            raise WaiverError(f"{where}: the waiver of '{claim.text}' must be a pair (UNTIL, REASON), "
                              f"e.g. ('2027-01-31', 'reason'); got {value!r}")
        until, reason = value
        try:
            date = parse_date(until)
        except ValueError as exc:
            raise WaiverError(f"{where}: the waiver of '{claim.text}': {exc}") from None
        if not isinstance(reason, str) or not reason.strip():
            raise WaiverError(f"{where}: the waiver of '{claim.text}' needs a reason (a non-empty string)")
        out.append(Waiver(claim, date, reason.strip(), f"marker of {nodeid}"))
    return out


def _line_error(entry: str, n: int, column: int, reason: str) -> WaiverError:
    pointer = " " * (column - 1) + "^"
    return WaiverError(f"virt_waivers (ini), entry {n}, column {column}: {reason}\n    {entry}\n    {pointer}")


def parse_ini_waiver(entry: str, n: int) -> Waiver:
    """``[SCOPE: ]CLAIM until YYYY-MM-DD: REASON`` (entry ``n``, from 1)."""
    entry = entry.strip()
    m = _UNTIL_RE.search(entry)  # the first " until ": a reason may say "until" too
    if m is None:
        raise _line_error(entry, n, len(entry) + 1,
                          "expected 'CLAIM until YYYY-MM-DD: REASON' (optionally 'TEST-ID: ' first)")
    head, tail = entry[:m.start()], entry[m.end():]
    date_col = m.end() + 1
    date_text, colon, reason = tail.partition(":")
    date_text = date_text.rstrip()
    try:
        until = parse_date(date_text)
    except ValueError as exc:
        raise _line_error(entry, n, date_col, str(exc)) from None
    if not colon or not reason.strip():
        col = date_col + len(date_text)
        raise _line_error(entry, n, col, "expected ': REASON' after the date (a waiver needs a reason)")
    scope, _, claim_text = head.rpartition(":")  # a claim has no ':'; a test id's '::' comes before
    scope = scope.strip() or None
    claim_col = len(head) - len(claim_text) + 1
    lead = len(claim_text) - len(claim_text.lstrip())
    try:
        claim = parse_claim(claim_text)
    except ClaimError as exc:
        raise _line_error(entry, n, claim_col + lead + exc.column - 1, f"invalid claim: {exc.reason}") from None
    return Waiver(claim, until, reason.strip(), f"virt_waivers (ini) entry {n}", scope)


def ini_waivers(entries: Iterable[str]) -> list[Waiver]:
    return [parse_ini_waiver(e, i) for i, e in enumerate(entries, 1) if e.strip()]


def waiver_usage(waiver: Waiver, claims: Iterable[Claim]) -> str:
    """The usage error of a waiver that matches none of ``claims``."""
    have = ", ".join(f"'{c.text}'" for c in claims) or "none"
    return (f"{waiver.source}: the waiver of '{waiver.claim.text}' (until {waiver.until.isoformat()}) matches "
            f"no claim{' of ' + waiver.scope if waiver.scope else ''}; claims: {have}. Remove the waiver "
            "or correct its claim: a waiver must name a claim that is checked")


__all__ = ["Waiver", "WaiverError", "TODAY_ENV", "today", "parse_date", "marker_waivers", "ini_waivers",
           "parse_ini_waiver", "waiver_usage", "claim_key"]
