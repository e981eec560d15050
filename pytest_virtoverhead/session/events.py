"""What the pool and the round runner report while a compared test runs:
small typed events, passed to a listener (the terminal's
:class:`.progress.Progress` renders them).

Nothing here imports pytest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union


@dataclass(frozen=True)
class EnvsStarting:
    """The pool starts these environments (in parallel) for a test."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class WorkerStarting:
    """Environment ``env`` starts its worker process ``process`` for test ``nodeid``."""

    nodeid: str
    env: str
    process: int


@dataclass(frozen=True)
class Step:
    """Which round a call belongs to: warm-up pass ``index`` of ``total``
    (in worker process ``process``), measured round ``index`` of
    ``total``, or an adaptive round (``total`` None) while
    ``open_claims`` claims are inconclusive."""

    index: int
    total: int | None
    warmup: bool = False
    process: int | None = None
    open_claims: int = 0


@dataclass(frozen=True)
class Calling:
    """Test ``nodeid`` is about to be called in environment ``env``."""

    nodeid: str
    env: str
    step: Step


Event = Union[EnvsStarting, WorkerStarting, Calling]
Listener = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The listener of a runner nobody watches."""
