"""What crosses into an environment for a call: a function by reference
(module, qualified name, file), its arguments as JSON, and the
:class:`Measurement` a benchmark returns.

Standard library only.
"""

from __future__ import annotations

import inspect
import json
import os
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .errors import SerializationError


def function_ref(fn: Callable[..., Any]) -> dict[str, Any]:
    """How a worker finds ``fn``: module, qualified name and source file."""
    if not callable(fn):
        raise TypeError(f"expected a function, got {type(fn).__name__}")
    qualname = getattr(fn, "__qualname__", None)
    module = getattr(fn, "__module__", None)
    if not qualname or not module or "<lambda>" in qualname or "<locals>" in qualname:
        raise SerializationError(
            f"{getattr(fn, '__name__', fn)!r} cannot be run in an environment: only functions "
            "defined at module level (or methods of module-level classes) can be named "
            "across the boundary, not lambdas or nested functions"
        )
    try:
        path = inspect.getsourcefile(fn) or inspect.getfile(fn)
    except TypeError:
        path = None
    return {"module": module, "qualname": qualname, "file": os.path.abspath(path) if path else None}


def check_json(value: Any, what: str) -> None:
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"{what} cannot cross into the environment: {exc}. Only JSON values "
            "(None, bool, int, float, str, lists and dicts with str keys) are carried"
        ) from None


def call_fields(fn: Callable[..., Any], args: tuple, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The request fields naming ``fn`` and its arguments, each argument
    checked to cross as JSON (the error names the one that cannot)."""
    ref = function_ref(fn)
    for i, arg in enumerate(args):
        check_json(arg, f"positional argument {i} of {ref['qualname']}")
    for key, arg in kwargs.items():
        check_json(arg, f"argument {key!r} of {ref['qualname']}")
    return {"fn": ref, "args": list(args), "kwargs": dict(kwargs)}


@dataclass
class Measurement:
    """Result of :meth:`Environment.benchmark`."""

    env: str
    samples: list[float]
    metadata: dict[str, Any]
    loops: int = 1
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def __repr__(self) -> str:
        return f"<Measurement env={self.env!r} median={self.median:.6g}s n={len(self.samples)}>"
