"""Work accounting: how much work one call of a test did, so reports can
show a rate (events/s, MiB/s, ops/s) beside the time.

A workload (or any test) calls :func:`record_work` during the call; the
worker sends the amount back with the sample, and the host divides it by the
median time. Pure standard library: it runs inside every environment.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~50 ms in a TCG guest: not at run time
    from typing import Any

_current: dict[str, Any] | None = None


def record_work(amount: float, unit: str, **extra: Any) -> None:
    """Say that this call did ``amount`` of ``unit`` (e.g. 10000, "events").

    The rate shown is ``amount / time`` in ``unit/s``; for data use "MiB"
    to get MiB/s. Calling it again in the same call replaces the record.
    """
    global _current
    if not amount > 0:
        raise ValueError(f"record_work: amount must be positive, got {amount!r}")
    _current = {"amount": float(amount), "unit": str(unit), **extra}


def take_work() -> dict[str, Any] | None:
    """Return and clear what the last call recorded."""
    global _current
    out, _current = _current, None
    return out
