"""Which collected tests are compared and with which claims: the marker's
plan, --virt-select and the claim groups (``EXPR: CLAIM``) through
pytest's own -k machinery, the check that every waiver is used, and the
environment fixtures a project's own fixtures shadow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import pytest

from ..judge import waivers
from .config import ItemPlan, Settings, plan_for_marker
from .stash import ENV_FIXTURES, ITEM_KEY, MARKER

if TYPE_CHECKING:
    from .virtsession import VirtSession


def plan(item: pytest.Item, settings: Settings, groups: Sequence[Any] = ()) -> ItemPlan | None:
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None
    try:
        return plan_for_marker(item.nodeid, marker.args, marker.kwargs, settings, groups)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def groups_of(item: pytest.Item, groups: list[tuple[Any, Any]]) -> list[Any]:
    """The group entries (``EXPR: CLAIM``) whose -k expression matches the
    item, with pytest's own matcher (as --virt-select)."""
    if not groups:
        return []
    from _pytest.mark import KeywordMatcher

    matcher = KeywordMatcher.from_item(item)
    return [rc for rc, expr in groups if expr.evaluate(matcher)]


def compile_select(text: str | None) -> Any:
    """``--virt-select`` / ini ``virt_select`` compiled with pytest's own
    ``-k`` machinery, or None; a malformed expression is a usage error
    naming the option.

    ``_pytest.mark.expression.Expression`` and ``_pytest.mark.KeywordMatcher``
    are what pytest's ``-k`` itself uses (``_pytest.mark.deselect_by_keyword``:
    ``Expression.compile(expr).evaluate(KeywordMatcher.from_item(item))``);
    they are not exported by ``pytest``, so they are imported from there,
    as pytest-xdist and others do for what pytest keeps private.
    """
    if not text:
        return None
    try:
        return _compile_expr(text)
    except _ExprError as exc:
        where = f" at column {exc.column}" if exc.column else ""
        raise pytest.UsageError(
            f"--virt-select (or ini virt_select): invalid -k expression {text!r}{where}: {exc.message}") from None


class _ExprError(Exception):
    def __init__(self, column: int | None, message: str):
        super().__init__(message)
        self.column, self.message = column, message


def _compile_expr(text: str) -> Any:
    """A ``-k`` expression compiled by pytest; _ExprError(column, message)."""
    from _pytest.mark.expression import Expression

    try:
        return Expression.compile(text)
    except Exception as exc:  # noqa: BLE001 - SyntaxError (pytest >= 8.3) or ParseError (older)
        column = getattr(exc, "offset", None) or getattr(exc, "column", None)
        message = getattr(exc, "msg", None) or getattr(exc, "message", None) or str(exc)
        raise _ExprError(column, message) from None


def compile_groups(settings: Settings) -> list[tuple[Any, Any]]:
    """[(RunClaim, compiled EXPR)] of the group entries (``EXPR: CLAIM``);
    a malformed EXPR is a usage error naming the entry and the column."""
    out = []
    for rc in settings.run_claims:
        if rc.expr is None:
            continue
        try:
            out.append((rc, _compile_expr(rc.expr)))
        except _ExprError as exc:
            raise pytest.UsageError(rc.error(exc.column or 1, f"invalid -k expression: {exc.message}")) from None
    return out


def selected(item: pytest.Item, select: Any) -> bool:
    """Does ``--virt-select`` pick this (unmarked) item? pytest's own
    ``-k`` matcher: names of the item and its parents, markers, extra
    keywords, substrings case-insensitively."""
    if select is None:
        return False
    from _pytest.mark import KeywordMatcher

    return bool(select.evaluate(KeywordMatcher.from_item(item)))


def check_waivers(state: VirtSession, items: list[pytest.Item]) -> None:
    """Every ini waiver must match a claim of a test it is for: one that
    matches none is a usage error (no silent, permanent ignore lists).
    A scoped waiver is let be when its tests are not in this run: -k / -m
    deselected them (their markers are not read), or their file was not
    collected (``pytest tests/test_other.py``); a scope that names no test
    of a collected file is an error. An unscoped waiver must match a claim
    of some compared test. $VIRTOVERHEAD_TODAY, when set, must be a date."""
    plans = [(item.nodeid, item.stash[ITEM_KEY]) for item in items if ITEM_KEY in item.stash]
    if not state.settings.waivers and not any(plan.waivers for _, plan in plans):
        return
    try:
        waivers.today()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    collected = [item.nodeid for item in items] + state.deselected
    for w in state.settings.waivers:
        if any(w in plan.waivers for _, plan in plans):
            continue
        if w.scope is not None and not any(w.applies_to(item.nodeid) for item in items):
            if any(w.applies_to(n) for n in state.deselected):
                continue  # for tests -k / -m deselected: their markers are not read
            where = w.scope.split("::")[0]
            if any(ch in w.scope for ch in "*?[") or not any(n.split("::")[0] == where for n in collected):
                continue  # for tests of files this run did not collect
            raise pytest.UsageError(f"{w.source}: the waiver of '{w.claim.text}' is for {w.scope!r}, which "
                                    "names no collected test")
        if w.scope is None and not plans:
            continue  # nothing compared in this selection
        mine = [c for n, plan in plans if w.applies_to(n) for c in plan.claims + [c for c, _ in plan.skipped_claims]]
        raise pytest.UsageError(waivers.waiver_usage(w, list(dict.fromkeys(mine))))


def shadowed_fixtures(items: list[pytest.Item]) -> list[str]:
    """One message per environment fixture (``container``, ``vm``...) that a
    fixture of the project shadows for some collected test: pytest gives
    those tests the project's fixture, silently (a ``container`` fixture is
    common in suites that use testcontainers). Read from each item's
    fixture closure (``item._fixtureinfo``, the resolved definitions pytest
    itself uses; there is no public accessor), so nothing is guessed."""
    found: dict[str, tuple[str, int]] = {}
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        defs = getattr(info, "name2fixturedefs", None) or {}
        for name in ENV_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            chain = defs.get(name) or ()
            func = getattr(chain[-1], "func", None) if chain else None
            if func is None or getattr(func, "__module__", "") == "pytest_virtoverhead.plugin":
                continue
            code = getattr(func, "__code__", None)
            where = f"{code.co_filename}:{code.co_firstlineno}" if code else getattr(func, "__module__", "?")
            seen = found.get(name)
            found[name] = (where, (seen[1] if seen else 0) + 1)
    return [f"the fixture '{name}' defined at {where} shadows pytest-virtoverhead's '{name}' fixture in "
            f"{count} test(s): they get that fixture, not an environment; "
            + (f"virt_envs['{name}'] is the environment" if name != "virt_envs" else "rename one of them")
            for name, (where, count) in sorted(found.items())]


def duplicate_waivers(items: list[pytest.Item]) -> list[str]:
    """One message per set of waivers that name the same claim of a test
    (only the first applies, which a reader of the others would not
    guess): the claim, the sources, the one that wins."""
    out: dict[tuple[str, ...], str] = {}
    for item in items:
        plan_ = item.stash.get(ITEM_KEY, None)
        if plan_ is None or len(plan_.waivers) < 2:
            continue
        by_claim: dict[tuple, list[Any]] = {}
        for w in plan_.waivers:
            by_claim.setdefault(waivers.claim_key(w.claim), []).append(w)
        for same in by_claim.values():
            sources = tuple(w.source for w in same)
            if len(same) > 1 and sources not in out:
                first = same[0]
                out[sources] = (f"{len(same)} waivers of claim '{first.claim.text}' (first for {item.nodeid}): "
                                f"{', '.join(sources)}; only the first applies ({first.text}): remove the others")
    return list(out.values())

