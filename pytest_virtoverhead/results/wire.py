"""A compared test's :class:`.ItemResult` as plain data and back, whole
(rounds, estimates, claims with their waivers), for pytest-xdist's
``workeroutput``: the controller runs the serial session's finishing code
on the results its workers measured.

The plain form holds only what execnet carries (None, bools, numbers,
strings, lists, tuples, dicts): a dataclass becomes a dict tagged with its
class name, from a fixed list of the package's own result classes; nothing
is unpickled and no other class is ever built.

Nothing here imports pytest.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from ..judge import stats
from ..judge.claims import Claim
from ..judge.verdict import Verdict
from ..judge.waivers import Waiver
from .model import ClaimResult, ItemResult, RoundRecord
from .phases import PhaseClock

TAG = "__virtoverhead__"
_CLASSES: dict[str, Any] = {cls.__name__: cls for cls in (ItemResult, RoundRecord, ClaimResult, stats.Estimate,
                                                         Claim, Waiver)}
#: Plain classes (not dataclasses) that cross as their attributes.
_PLAIN: dict[str, Any] = {cls.__name__: cls for cls in (PhaseClock,)}


def to_plain(obj: Any) -> Any:
    """``obj`` (a result, or anything inside one) as plain data."""
    if isinstance(obj, Verdict):
        return {TAG: "Verdict", "value": obj.value}
    if isinstance(obj, datetime.date):
        return {TAG: "date", "value": obj.isoformat()}
    if type(obj).__name__ in _PLAIN and _PLAIN[type(obj).__name__] is type(obj):
        return {TAG: type(obj).__name__, "attributes": {k: to_plain(v) for k, v in vars(obj).items()}}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        name = type(obj).__name__
        if _CLASSES.get(name) is not type(obj):
            raise TypeError(f"{name} is not a result class the workers may send")
        return {TAG: name, "fields": {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_plain(v) for v in obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"a {type(obj).__name__} cannot travel in a result")


def from_plain(data: Any) -> Any:
    """The object :func:`to_plain` made ``data`` from; ValueError for a
    class that is not one of the result classes."""
    if isinstance(data, dict):
        tag = data.get(TAG)
        if tag is None:
            return {k: from_plain(v) for k, v in data.items()}
        if tag == "Verdict":
            return Verdict(data["value"])
        if tag == "date":
            return datetime.date.fromisoformat(data["value"])
        if tag in _PLAIN:
            plain = _PLAIN[tag].__new__(_PLAIN[tag])
            plain.__dict__.update({k: from_plain(v) for k, v in data["attributes"].items()})
            return plain
        cls = _CLASSES.get(tag)
        if cls is None:
            raise ValueError(f"unknown result class {tag!r}")
        values = {k: from_plain(v) for k, v in data["fields"].items()}
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        obj = cls(**{k: v for k, v in values.items() if k in names})
        for k, v in values.items():
            if k not in names:
                object.__setattr__(obj, k, v)
        return obj
    if isinstance(data, list):
        return [from_plain(v) for v in data]
    if isinstance(data, tuple):
        return tuple(from_plain(v) for v in data)
    return data
