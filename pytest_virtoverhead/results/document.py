"""The run document: what ``--virt-json`` holds, typed and versioned.

A :class:`RunDocument` is one run: its head (version, when written,
session, seed, baseline, the environments' metadata, the verdict method,
...) and one :class:`ItemRecord` per compared test. A test record holds
the test's own object (the JSON's ``tests``), one :class:`EnvEntry` per
environment (``results``) and one :class:`ClaimEntry` per claim
(``claims``). ``to_json`` gives the JSON object written; ``from_json``
reads one back after a version check (:data:`READ_VERSIONS`); ``load``
and ``dump`` do the same with a file.

Each record reads its values through typed properties and keeps the JSON
object it was made from, every key of it: a document read and written
again is the same JSON, keys a later writer added included.

Nothing here imports pytest or numpy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..fsutil import atomic_write
from ..judge.textfmt import json_safe
from ..judge.verdict import Verdict

#: The version this package writes. Version 2: ``samples`` are one value
#: per used round, with per-round and per-process records; version 3 adds
#: the ``machine`` block (and, in a merged document, ``machines`` and each
#: entry's ``machine``). Versions 1 (no rounds) and 2 are still read.
JSON_VERSION = 3
READ_VERSIONS = (1, 2, 3)


class DocumentError(ValueError):
    """A JSON object that is no run document this version reads; the
    message names the file (or object) and what is wrong."""


def check_version(data: dict[str, Any], name: str = "run") -> int:
    """The document's version; DocumentError, naming the version found and
    those read, when this package does not read it."""
    version = data.get("version")
    if isinstance(version, bool) or version not in READ_VERSIONS:
        raise DocumentError(f"{name}: unsupported --virt-json version {version!r} (this pytest-virtoverhead "
                            f"reads version {', '.join(map(str, READ_VERSIONS))} and writes {JSON_VERSION})")
    return version


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DocumentError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _string(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise DocumentError(f"{where}: '{key}' must be a non-empty string")
    return value


def _number(value: Any) -> float | None:
    """A JSON number as a float; None for null (how NaN and inf are written)."""
    return None if value is None or isinstance(value, bool) else float(value)


def _interval(value: Any) -> tuple[float | None, float | None] | None:
    if not isinstance(value, list) or len(value) != 2:
        return None
    return _number(value[0]), _number(value[1])


@dataclass
class ClaimEntry:
    """One claim's verdict: an object of the JSON's ``claims``
    (:meth:`.ClaimResult.to_json`)."""

    data: dict[str, Any]

    @classmethod
    def from_json(cls, data: Any, where: str = "claim") -> "ClaimEntry":
        data = _object(data, where)
        _string(data, "test", where)
        _string(data, "claim", where)
        if data.get("verdict") not in {v.value for v in Verdict}:
            raise DocumentError(f"{where}: 'verdict' must be one of {', '.join(v.value for v in Verdict)}, "
                                f"got {data.get('verdict')!r}")
        return cls(data)

    def to_json(self) -> dict[str, Any]:
        return self.data

    @property
    def test(self) -> str:
        return self.data["test"]

    @property
    def claim(self) -> str:
        return self.data["claim"]

    @property
    def env(self) -> str | None:
        return self.data.get("env")

    @property
    def verdict(self) -> Verdict:
        return Verdict(self.data["verdict"])

    @property
    def ratio(self) -> float | None:
        """The estimate (a ratio, or seconds when :attr:`unit` is ``s``); None: none."""
        return _number(self.data.get("ratio"))

    @property
    def ci(self) -> tuple[float | None, float | None] | None:
        return _interval(self.data.get("ci"))

    @property
    def unit(self) -> str:
        return self.data.get("unit", "ratio")

    @property
    def waived(self) -> str | None:
        """The text of the waiver in force (``waived until ...: reason``), else None."""
        return self.data.get("waived")


@dataclass
class EnvEntry:
    """One test in one environment: an object of the JSON's ``results``."""

    data: dict[str, Any]

    @classmethod
    def from_json(cls, data: Any, where: str = "result") -> "EnvEntry":
        data = _object(data, where)
        _string(data, "test", where)
        _string(data, "env", where)
        samples = data.get("samples", [])
        if not isinstance(samples, list) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in samples):
            raise DocumentError(f"{where}: 'samples' must be a list of numbers")
        return cls(data)

    def to_json(self) -> dict[str, Any]:
        return self.data

    @property
    def test(self) -> str:
        return self.data["test"]

    @property
    def env(self) -> str:
        return self.data["env"]

    @property
    def samples(self) -> list[float]:
        """One value per used round (version 1: per call)."""
        return [float(x) for x in self.data.get("samples") or []]

    @property
    def median(self) -> float | None:
        """What the table shows: from version 3, for an environment other
        than the baseline, the baseline's median times the ratio."""
        return _number(self.data.get("median"))

    @property
    def median_unpaired(self) -> float | None:
        """The plain median of the environment's round values (version 3;
        in versions 1 and 2 that is ``median``)."""
        return _number(self.data.get("median_unpaired", self.data.get("median")))

    @property
    def resources(self) -> dict[str, float | None] | None:
        """Resource counters per call, the median over rounds (version 3), or None."""
        res = self.data.get("resources")
        return {k: _number(v) for k, v in res.items()} if isinstance(res, dict) else None

    @property
    def ratio(self) -> float | None:
        """Against the run's baseline; None for the baseline itself or when not estimated."""
        return _number(self.data.get("ratio"))

    @property
    def ci(self) -> tuple[float | None, float | None] | None:
        return _interval(self.data.get("ci"))

    @property
    def source(self) -> str | None:
        """``call`` (the call phase's wall time) or ``benchmark`` (the fixture's samples)."""
        return self.data.get("source")

    @property
    def unavailable(self) -> str | None:
        return self.data.get("unavailable")

    @property
    def error(self) -> str | None:
        return self.data.get("error")


@dataclass
class ItemRecord:
    """One compared test: its object in the JSON's ``tests`` (None in a
    version-1 file, which has no ``tests``) with its environments' entries
    and its claims' verdicts."""

    nodeid: str
    data: dict[str, Any] | None
    envs: list[EnvEntry] = field(default_factory=list)
    claims: list[ClaimEntry] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        """``measured``, ``failed``, ``xfailed`` or ``skipped``."""
        return (self.data or {}).get("outcome", "measured")

    @property
    def rounds(self) -> int:
        """Rounds used (0 when unknown)."""
        return int((self.data or {}).get("rounds") or 0)

    def env(self, name: str) -> EnvEntry | None:
        return next((e for e in self.envs if e.env == name), None)


@dataclass
class RunDocument:
    """A whole run: ``head`` (every top-level key but the three lists, in
    the order written) and its tests."""

    head: dict[str, Any]
    tests: list[ItemRecord] = field(default_factory=list)

    # -- the head, typed ----------------------------------------------------

    @property
    def version(self) -> int:
        return self.head["version"]

    @property
    def seed(self) -> int | None:
        return self.head.get("seed")

    @property
    def baseline(self) -> str | None:
        return self.head.get("baseline")

    @property
    def session(self) -> str | None:
        return self.head.get("session")

    @property
    def written(self) -> str | None:
        """When the run ended (ISO 8601, UTC); absent in a run that measured nothing."""
        return self.head.get("written")

    @property
    def machine(self) -> dict[str, Any] | None:
        """The host that measured the run (version 3; absent in a merged
        document of several machines: see ``machines``)."""
        return self.head.get("machine")

    @property
    def environments(self) -> dict[str, dict[str, Any]]:
        return self.head.get("environments") or {}

    @property
    def verdict_method(self) -> dict[str, Any] | None:
        """``confidence``, ``correction`` and ``family_size``."""
        return self.head.get("verdict_method")

    @property
    def aborted(self) -> bool:
        """The run did not finish (interrupted, internal or usage error)."""
        return self.head.get("aborted") is True

    @property
    def claims(self) -> list[ClaimEntry]:
        return [c for t in self.tests for c in t.claims]

    @property
    def results(self) -> list[EnvEntry]:
        return [e for t in self.tests for e in t.envs]

    # -- JSON ---------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The JSON object: the head in its order with ``results``,
        ``claims`` and ``tests`` in their places (at the end when the head
        has no place for them), NaN and infinities as null."""
        lists = {"results": [e.to_json() for e in self.results], "claims": [c.to_json() for c in self.claims],
                 "tests": [t.data for t in self.tests if t.data is not None]}
        out: dict[str, Any] = {}
        for key, value in self.head.items():
            out[key] = lists.pop(key) if key in lists else value
        out.update(lists)
        return json_safe(out)

    @classmethod
    def from_json(cls, data: Any, name: str = "run") -> "RunDocument":
        """Read a JSON object; DocumentError names ``name`` and what is wrong
        (a version not read, a list that is not one, an entry without its
        test, ...)."""
        data = _object(data, name)
        check_version(data, name)
        lists = {}
        for key in ("results", "claims", "tests"):
            value = data.get(key, [])
            if not isinstance(value, list):
                raise DocumentError(f"{name}: '{key}' must be a list, got {type(value).__name__}")
            lists[key] = value
        if not isinstance(data.get("environments", {}), dict):
            raise DocumentError(f"{name}: 'environments' must be an object")
        head = {k: (None if k in lists else v) for k, v in data.items()}
        records: dict[str, ItemRecord] = {}
        for i, t in enumerate(lists["tests"]):
            t = _object(t, f"{name}: tests[{i}]")
            nodeid = _string(t, "test", f"{name}: tests[{i}]")
            records[nodeid] = ItemRecord(nodeid, t)

        def record(test: str) -> ItemRecord:
            # A test without an object in "tests" (version 1 has none).
            return records.setdefault(test, ItemRecord(test, None))

        for i, e in enumerate(lists["results"]):
            entry = EnvEntry.from_json(e, f"{name}: results[{i}]")
            record(entry.test).envs.append(entry)
        for i, c in enumerate(lists["claims"]):
            claim = ClaimEntry.from_json(c, f"{name}: claims[{i}]")
            record(claim.test).claims.append(claim)
        return cls(head, list(records.values()))

    @classmethod
    def load(cls, path: str) -> "RunDocument":
        """Read a ``--virt-json`` file; DocumentError names the file."""
        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8")
            data = json.loads(text)
        except OSError as exc:
            raise DocumentError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise DocumentError(f"{path}: not a JSON file ({exc})") from None
        return cls.from_json(data, path)

    def dump(self, path: str) -> None:
        write_json_atomic(path, self.to_json())


def write_json_atomic(path: str, data: dict[str, Any]) -> None:
    """Write the JSON object ``data`` to ``path`` so that readers never
    see half a file (NaN is refused: :func:`json_safe` first)."""
    atomic_write(path, json.dumps(data, indent=1, allow_nan=False, default=str) + "\n")

