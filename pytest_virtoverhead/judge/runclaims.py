"""Claims written for a run, as entries of an option: a marker's list,
ini ``virt_claims`` and ``--virt-claim`` (``CLAIM`` or ``EXPR: CLAIM``),
parsed and checked against the run's environments, each error naming its
source, entry and column; and the claims set aside because an environment
they name is not in this run.

Pure: imports no pytest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .claims import Claim, ClaimError, absent_reason, check_envs, parse_claim
from .optionvalues import parse_each


def parse_claims(texts: Iterable[str], source: str, env_names: list[str],
                 elsewhere: Iterable[str] = ()) -> list[Claim]:
    """Parse claims; a claim may name an environment known ``elsewhere``
    (a kind, a name declared for other runs) that is not in this run: it
    is kept, and :func:`split_absent` sets it aside as skipped."""
    return parse_each(texts, source, parse_claim, check_envs, env_names, elsewhere)


@dataclass(frozen=True)
class RunClaim:
    """A run-wide claim (ini ``virt_claims``, ``--virt-claim``) and where
    it was written. ``expr`` is the ``-k`` expression of a group entry
    (``EXPR: CLAIM``): the claim applies only to the compared tests it
    matches (the plugin compiles and evaluates it with pytest's matcher);
    None: every compared test."""

    claim: Claim
    #: ``virt_claims (ini) entry 2``, ``--virt-claim 1``.
    source: str
    expr: str | None = None
    #: The entry as written, and the 1-based column of ``expr`` in it.
    entry: str = ""
    expr_col: int = 1
    #: ``virt_claims (ini)`` or ``--virt-claim``, and the entry's number (from 1).
    origin: str = ""
    n: int = 0

    def error(self, column: int, reason: str) -> str:
        """A usage error at ``column`` of the expression (1-based)."""
        return entry_error(self.origin, self.n, self.entry, self.expr_col + column - 1, reason)


def entry_error(source: str, n: int, entry: str, column: int, reason: str) -> str:
    """``virt_claims (ini), entry 2, column 5: REASON`` with the entry and a caret."""
    pointer = " " * (column - 1) + "^"
    return f"{source}, entry {n}, column {column}: {reason}\n    {entry}\n    {pointer}"


def parse_run_claims(texts: Iterable[str], source: str, env_names: list[str],
                     elsewhere: Iterable[str] = ()) -> list[RunClaim]:
    """Run-wide claims, one per entry: ``CLAIM`` (every compared test) or
    ``EXPR: CLAIM`` (the compared tests matching the ``-k`` expression
    EXPR). A claim never contains ':' (the grammar has no such token), so
    the last ':' of an entry ends EXPR, whose test ids may hold '::'. A
    plain entry's error reads as before (``SOURCE: invalid claim at
    column ...``); a group entry's names the entry and its column."""
    out: list[RunClaim] = []
    elsewhere = set(elsewhere)
    label = "virt_claims (ini) entry" if source.startswith("virt_claims") else source
    for n, raw in enumerate(texts, 1):
        if not isinstance(raw, str) or ":" not in raw:
            (claim,) = parse_claims([raw], source, env_names, elsewhere)
            out.append(RunClaim(claim, f"{label} {n}", origin=source, n=n))
            continue
        entry = raw.strip()
        head, _, claim_text = entry.rpartition(":")
        expr = head.strip()
        if not expr:
            raise ValueError(entry_error(source, n, entry, 1, "expected a -k expression before ':' (a group "
                                         "of tests, e.g. 'io and not slow: vm <= 2 * baremetal')"))
        claim_col = len(head) + 2
        lead = len(claim_text) - len(claim_text.lstrip())
        try:
            claim = parse_claim(claim_text)
            check_envs(claim, env_names, elsewhere)
        except ClaimError as exc:
            raise ValueError(entry_error(source, n, entry, claim_col + lead + exc.column - 1,
                                         f"invalid claim: {exc.reason}")) from None
        out.append(RunClaim(claim, f"{label} {n}", expr, entry, len(head) - len(head.lstrip()) + 1, source, n))
    return out


def split_absent(claims: Iterable[Claim], env_names: Iterable[str]) -> tuple[list[Claim], list[tuple[Claim, str]]]:
    """(claims whose environments are all in this run, [(claim, reason)]
    for the others, the reason being e.g. ``vm: not in this run``)."""
    names = set(env_names)
    present: list[Claim] = []
    absent: list[tuple[Claim, str]] = []
    for claim in claims:
        missing = [n for n in dict.fromkeys(claim.envs) if n not in names]
        if missing:
            absent.append((claim, absent_reason(missing)))
        else:
            present.append(claim)
    return present, absent
