"""History of saved runs: ``pytest-virtoverhead history RUN.json ...``.

Reads several ``--virt-json`` files (or directories of them), puts them in
order, and follows every claim through them. A claim is keyed by its test
id and its text (``tests/x.py::test_a`` + ``vm <= 2 * baremetal``): the same
claim in another run is the same line of the history. Each run gives a
point: the claim's estimate (a ratio, or seconds for a fixed-cost or
absolute claim), its interval and its verdict.

Order. Runs are ordered by the time they record (the first of
:data:`RUN_TIME_KEYS` a run holds: an ISO 8601 string or seconds since the
epoch) when every run records one; otherwise by the order given on the
command line (a directory's files by name).

Step changes. asv's regression view fits each benchmark's history with a
piecewise-constant curve (an L1 fit with a penalty per step, noise weighted
by each point's interval) and marks where the level jumps. Histories here
are short (a handful of CI runs) and every point comes with its own
confidence interval, so the rule is simpler and can be checked by hand.
Between a point and the previous run in which the claim has a point:

- a **step up** (slower: more overhead) is marked when the two intervals do
  not overlap, the new one wholly above, *and* the estimate rose by at least
  the tolerance (default 5%) of the previous estimate;
- a **step down** (faster) likewise, the new interval wholly below;
- a **verdict flip** is marked when the verdict went from ``pass`` to
  ``fail`` or back (a move to or from ``inconclusive`` is listed as a
  verdict change, not marked as a flip).

The tolerance is the effect-size floor of ``pytest-virtoverhead compare``:
an interval carries the variation within one run (rounds and worker
processes), not what moves between two sessions of the same code (a few
percent here), so two narrow intervals a percent apart are not a step.

Pure functions on plain data (no pytest, no numpy, no matplotlib): the HTML
page is :mod:`.historyhtml` (``render_history``), its plots
:mod:`.htmlfigures`, the Markdown summary of the last two runs
:mod:`.historymd`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from ..judge.textfmt import FAIL, PASS, change, estimate_format, finite, interval
from .runcompare import read_json

#: Keys a run may record its time under, the first found wins: an ISO 8601
#: string (UTC when it names no zone) or seconds since the epoch.
RUN_TIME_KEYS = ("written", "finished", "started", "time", "timestamp", "date")
#: The --virt-json versions read here (a history needs only the claims).
VERSIONS = (1, 2, 3)
DEFAULT_TOLERANCE = 0.05

UP, DOWN = "up", "down"


class HistoryError(ValueError):
    """Input a history cannot be made of; the message names the file."""


# --------------------------------------------------------------------------
# reading


@dataclass
class Run:
    """One saved run."""

    path: str
    data: dict[str, Any]
    #: Seconds since the epoch, when the run records its time.
    time: float | None = None
    #: Position in the history (1-based, set by :func:`build`).
    number: int = 0

    @property
    def name(self) -> str:
        return os.path.basename(self.path) or self.path

    @property
    def time_text(self) -> str:
        if self.time is None:
            return ""
        return datetime.fromtimestamp(self.time, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")

    @property
    def aborted(self) -> bool:
        return self.data.get("aborted") is True

    @property
    def environments(self) -> dict[str, Any]:
        envs = self.data.get("environments")
        return envs if isinstance(envs, dict) else {}

    def accel(self, env: str | None) -> str | None:
        meta = self.environments.get(env or "")
        return meta.get("accel") if isinstance(meta, dict) else None

    def verdict_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for c in self.data.get("claims") or []:
            counts[str(c.get("verdict"))] = counts.get(str(c.get("verdict")), 0) + 1
        return counts


def expand_paths(paths: Iterable[str]) -> list[str]:
    """The files of ``paths``: a directory stands for its ``*.json`` files
    (not recursive), in name order."""
    out: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, n) for n in os.listdir(path)
                           if n.endswith(".json") and os.path.isfile(os.path.join(path, n)))
            if not found:
                raise HistoryError(f"{path}: a directory with no .json files (saved --virt-json runs) in it")
            out += found
        elif not os.path.exists(path):
            raise HistoryError(f"{path}: no such file or directory")
        else:
            out.append(path)
    return out


def _time_of(value: Any) -> float | None:
    if finite(value) and value > 0:
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.timestamp()
    return None


def run_time(data: dict[str, Any]) -> float | None:
    """The time a run records (:data:`RUN_TIME_KEYS`), or None."""
    for key in RUN_TIME_KEYS:
        if key in data:
            when = _time_of(data[key])
            if when is not None:
                return when
    return None


def check_run(data: Any, name: str) -> None:
    """Raise HistoryError, naming ``name``, unless ``data`` is a
    ``--virt-json`` document whose claims a history can read."""
    if not isinstance(data, dict) or not isinstance(data.get("results"), list) or "claims" not in data:
        hint = ""
        if isinstance(data, dict) and "benchmarks" in data and "machine_info" in data:
            hint = " (this is a pytest-benchmark file)"
        raise HistoryError(f"{name}: not a pytest-virtoverhead --virt-json run: no 'results' and 'claims'{hint}")
    if data.get("version") not in VERSIONS:
        raise HistoryError(f"{name}: unsupported --virt-json version {data.get('version')!r} (this tool reads "
                           f"{', '.join(map(str, VERSIONS))})")
    claims = data["claims"]
    if not isinstance(claims, list):
        raise HistoryError(f"{name}: 'claims' must be a list of objects")
    for i, c in enumerate(claims):
        if not isinstance(c, dict) or not isinstance(c.get("test"), str) or not isinstance(c.get("claim"), str):
            raise HistoryError(f"{name}: claims[{i}] needs 'test' and 'claim' strings")
        if c.get("ratio") is not None and not finite(c.get("ratio")):
            raise HistoryError(f"{name}: claims[{i}] ({c['test']}: {c['claim']}): 'ratio' must be a number or null")
        ci = c.get("ci")
        if ci is not None and (not isinstance(ci, list) or len(ci) != 2
                               or any(v is not None and not finite(v) for v in ci)):
            raise HistoryError(f"{name}: claims[{i}] ({c['test']}: {c['claim']}): 'ci' must be [low, high] or null")


def load_run(path: str) -> Run:
    """Read one ``--virt-json`` file; HistoryError names the file and what
    is wrong with it."""
    data = read_json(path, HistoryError)
    check_run(data, path)
    return Run(path=path, data=data, time=run_time(data))


def load_runs(paths: Iterable[str]) -> list[Run]:
    """Every run of ``paths`` (files or directories), in the given order."""
    files = expand_paths(paths)
    if not files:
        raise HistoryError("no runs given")
    return [load_run(p) for p in files]


def order_runs(runs: list[Run]) -> tuple[list[Run], str]:
    """``(runs in order, how)``: by recorded time when every run records
    one (ties keep the given order), else as given."""
    if len(runs) > 1 and all(r.time is not None for r in runs):
        return sorted(runs, key=lambda r: r.time), "recorded time"
    return list(runs), "command line"


# --------------------------------------------------------------------------
# the history


@dataclass
class Point:
    """A claim in one run."""

    run: int  # index into History.runs
    verdict: str | None
    estimate: float | None
    ci: tuple[float | None, float | None]
    accel: str | None = None
    bounds: list[Any] = field(default_factory=list)
    #: Against the claim's previous point: UP, DOWN or None (see the module).
    step: str | None = None
    #: The verdict went pass -> fail or fail -> pass.
    flip: bool = False
    #: The verdict differs from the previous point's.
    verdict_changed: bool = False
    #: estimate / previous estimate - 1, when both are positive numbers.
    change: float | None = None

    @property
    def marked(self) -> bool:
        return self.step is not None or self.flip

    @property
    def has_interval(self) -> bool:
        return finite(self.ci[0]) and finite(self.ci[1])


@dataclass
class Series:
    """One claim over the runs: ``points[i]`` is its point in run ``i``,
    None where the run does not have the claim."""

    test: str
    claim: str
    env: str | None
    unit: str  # "ratio", or "s" for fixed-cost and absolute claims
    quantity: str
    points: list[Point | None]
    #: The environment a ratio is taken to (None for an absolute claim).
    baseline: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.test, self.claim)

    @property
    def present(self) -> list[Point]:
        return [p for p in self.points if p is not None]

    @property
    def marks(self) -> list[Point]:
        return [p for p in self.present if p.marked]

    def last_two(self) -> tuple[Point | None, Point | None]:
        """The claim's points in the history's last two runs."""
        if len(self.points) < 2:
            return None, (self.points[-1] if self.points else None)
        return self.points[-2], self.points[-1]

    def last_mark(self) -> str:
        """:func:`mark_text` of the last run against the one before."""
        prev, last = self.last_two()
        return mark_text(last, prev, seen_before=any(p is not None for p in self.points[:-2]))


@dataclass
class History:
    runs: list[Run]
    series: list[Series]
    order: str  # "recorded time" or "command line"
    tolerance: float = DEFAULT_TOLERANCE
    notes: list[str] = field(default_factory=list)

    @property
    def confidence(self) -> float:
        for run in reversed(self.runs):
            level = (run.data.get("statistics") or {}).get("confidence")
            if finite(level):
                return float(level)
        return 0.95

    def last_changes(self) -> tuple[list[Series], list[Series]]:
        """``(changed, unchanged)``: the claims of the last two runs that
        changed between them (a step, a verdict change, or present in only
        one of the two), and the others present in both."""
        changed: list[Series] = []
        unchanged: list[Series] = []
        if len(self.runs) < 2:
            return changed, unchanged
        for s in self.series:
            prev, last = s.last_two()
            if prev is None and last is None:
                continue
            if prev is None or last is None or last.marked or last.verdict_changed:
                changed.append(s)
            else:
                unchanged.append(s)
        return changed, unchanged


def _point(claim: dict[str, Any], index: int, run: Run) -> Point:
    ci = claim.get("ci") or [None, None]
    return Point(run=index, verdict=claim.get("verdict"), estimate=claim.get("ratio"), ci=(ci[0], ci[1]),
                 accel=run.accel(claim.get("env")), bounds=list(claim.get("bounds") or []))


def mark_steps(points: list[Point | None], tolerance: float = DEFAULT_TOLERANCE) -> None:
    """Set ``step``, ``flip``, ``verdict_changed`` and ``change`` of each
    point against the previous point present (the rule of the module's
    docstring)."""
    prev: Point | None = None
    for p in points:
        if p is None:
            continue
        p.step, p.flip, p.verdict_changed, p.change = None, False, False, None
        if prev is not None:
            p.verdict_changed = p.verdict != prev.verdict
            p.flip = {p.verdict, prev.verdict} == {PASS, FAIL}
            if finite(p.estimate) and finite(prev.estimate):
                if p.estimate > 0 and prev.estimate > 0:
                    p.change = p.estimate / prev.estimate - 1
                large = abs(p.estimate - prev.estimate) >= tolerance * abs(prev.estimate)
                if large and p.has_interval and prev.has_interval:
                    if p.ci[0] > prev.ci[1] and p.estimate > prev.estimate:
                        p.step = UP
                    elif p.ci[1] < prev.ci[0] and p.estimate < prev.estimate:
                        p.step = DOWN
        prev = p


def build(runs: list[Run], *, tolerance: float = DEFAULT_TOLERANCE, order: str | None = None) -> History:
    """The history of ``runs``: ordered (unless ``order`` says they already
    are), one :class:`Series` per claim, steps marked. HistoryError when
    there is nothing to follow: no claims at all, or two or more runs that
    share no claim."""
    if not runs:
        raise HistoryError("no runs given")
    if order is None:
        runs, order = order_runs(runs)
    notes = []
    timed = [r for r in runs if r.time is not None]
    if order == "command line" and timed and len(timed) < len(runs):
        missing = ", ".join(r.path for r in runs if r.time is None)
        notes.append(f"ordered as given: {missing} record(s) no time")
    elif order == "command line" and len(runs) > 1:
        notes.append("ordered as given (the runs record no time)")
    for i, r in enumerate(runs):
        r.number = i + 1
        if r.aborted:
            notes.append(f"run #{r.number} ({r.path}) did not finish: its results are partial")
    series: dict[tuple[str, str], Series] = {}
    for i, run in enumerate(runs):
        for c in run.data.get("claims") or []:
            key = (c["test"], c["claim"])
            s = series.get(key)
            if s is None:
                unit = c.get("unit", "ratio") or "ratio"
                s = series[key] = Series(test=c["test"], claim=c["claim"], env=c.get("env"), unit=unit,
                                         quantity=c.get("quantity") or ("ratio" if unit == "ratio" else
                                                                        c.get("env") or ""),
                                         points=[None] * len(runs), baseline=c.get("baseline"))
            if s.points[i] is None:  # a claim listed twice in one run: the first counts
                s.points[i] = _point(c, i, run)
    if not series:
        raise HistoryError(f"no claims in {'these runs' if len(runs) > 1 else runs[0].path}: "
                           "nothing to follow (a history follows the claims of @pytest.mark.virt, "
                           "--virt-claim or virt_claims)")
    if len(runs) > 1 and not any(len(s.present) > 1 for s in series.values()):
        per_run = "; ".join(f"{r.path}: {len(r.data.get('claims') or [])} claim(s)" for r in runs)
        raise HistoryError(f"the {len(runs)} runs have no claim in common (a claim is its test id and its "
                           f"text): {per_run}")
    for s in series.values():
        mark_steps(s.points, tolerance)
    return History(runs=runs, series=list(series.values()), order=order, tolerance=tolerance, notes=notes)


def history_of(paths: Iterable[str], *, tolerance: float = DEFAULT_TOLERANCE) -> History:
    """Read, order and build: what the ``history`` command does first."""
    return build(load_runs(paths), tolerance=tolerance)


# --------------------------------------------------------------------------
# text


def estimate_text(series: Series, point: Point | None) -> str:
    """``1.234 [1.200, 1.270]`` (a ratio) or ``3 ms [1.7 ms, 4.3 ms]``."""
    if point is None:
        return "-"
    fmt = estimate_format(series.unit)
    ci = interval(point.ci, fmt, empty="-")
    return fmt(point.estimate) if ci == "-" else f"{fmt(point.estimate)} {ci}"


def change_text(point: Point | None) -> str:
    return change(point.change) if point is not None else "-"


def mark_text(point: Point | None, previous: Point | None = None, *, seen_before: bool = False) -> str:
    """What happened at ``point`` against the run before it (``previous``,
    None when that run lacks the claim): ``step up (slower)``, ``step down
    (faster)``, ``verdict flip``, ``verdict changed``; ``new`` or ``back``
    (absent from the run before; ``seen_before``: in an earlier one), or
    ``gone``; "" for no change."""
    if point is None:
        return "gone" if previous is not None else ""
    parts = []
    if previous is None and not (point.step or point.flip):
        return "back" if seen_before else "new"
    if point.step == UP:
        parts.append("step up (slower)")
    elif point.step == DOWN:
        parts.append("step down (faster)")
    if point.flip:
        parts.append("verdict flip")
    elif point.verdict_changed:
        parts.append("verdict changed")
    return ", ".join(parts)
