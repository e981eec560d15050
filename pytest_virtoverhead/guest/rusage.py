"""Resource counters around the timed calls. Runs inside the worker.

Pure standard library (no numpy, no pytest): it must import wherever the
worker runs. :class:`CallCounters` is started and stopped around each timed
call (the call phase pytest times) and sums what the process, and the
children it waited for, used in between: CPU time in user and system mode,
voluntary and involuntary context switches, minor and major page faults
(``getrusage``), and bytes read and written (``/proc/self/io``, where the
kernel offers it: ``read_bytes``/``write_bytes`` are what reached the
storage layer, ``rchar``/``wchar`` what passed through read and write
calls). :meth:`CallCounters.per_call` divides by the number of calls.
"""

from __future__ import annotations

import resource
from typing import Any

#: The keys of a ``resources`` object, per call, in the order reports show them.
KEYS = ("user_seconds", "system_seconds", "voluntary_switches", "involuntary_switches",
        "minor_faults", "major_faults", "read_bytes", "write_bytes")
#: Extra keys: bytes through read/write calls (``/proc/self/io`` rchar, wchar).
EXTRA_KEYS = ("read_chars", "write_chars")

_RUSAGE_FIELDS = (("user_seconds", "ru_utime"), ("system_seconds", "ru_stime"),
                  ("voluntary_switches", "ru_nvcsw"), ("involuntary_switches", "ru_nivcsw"),
                  ("minor_faults", "ru_minflt"), ("major_faults", "ru_majflt"))
_IO_FIELDS = {"read_bytes": "read_bytes", "write_bytes": "write_bytes", "rchar": "read_chars",
              "wchar": "write_chars"}
IO_PATH = "/proc/self/io"


def read_io(path: str = IO_PATH) -> dict[str, int] | None:
    """The byte counters of ``/proc/self/io`` under our names; None where
    the file cannot be read (not Linux, or a kernel without task I/O
    accounting). Reaped children's bytes are included by the kernel."""
    try:
        with open(path, encoding="ascii") as f:
            text = f.read()
    except OSError:
        return None
    # Reading the file counts as a read: a reading taken after this one
    # includes these bytes in rchar (snapshot's callers subtract them).
    out: dict[str, int] = {"_self": len(text.encode("ascii", "replace"))}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        name = _IO_FIELDS.get(key.strip())
        if name is not None:
            try:
                out[name] = int(value)
            except ValueError:
                continue
    return out


def snapshot() -> dict[str, float]:
    """Every counter now: this process plus its waited-for children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    out: dict[str, float] = {name: float(getattr(me, attr)) + float(getattr(kids, attr))
                             for name, attr in _RUSAGE_FIELDS}
    io = read_io()
    if io is not None:
        out.update({k: float(v) for k, v in io.items()})
    return out


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """``after - before`` for the counters both have; ``read_chars`` less
    the bytes of ``before``'s own read of ``/proc/self/io``."""
    out = {k: after[k] - before[k] for k in before if k in after and not k.startswith("_")}
    if "read_chars" in out:
        out["read_chars"] -= before.get("_self", 0.0)
    return out


class CallCounters:
    """Sums the counters over the calls between :meth:`start` and :meth:`stop`."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}
        self.calls = 0
        self._before: dict[str, float] | None = None

    def start(self) -> None:
        self._before = snapshot()

    def stop(self) -> None:
        if self._before is None:
            return
        for key, value in delta(self._before, snapshot()).items():
            self.total[key] = self.total.get(key, 0.0) + value
        self._before = None
        self.calls += 1

    def per_call(self) -> dict[str, Any] | None:
        """Each counter per call (``read_bytes``/``write_bytes`` None where
        ``/proc/self/io`` was unreadable); None when no call was counted."""
        if not self.calls:
            return None
        return {key: (self.total[key] / self.calls if key in self.total else None)
                for key in KEYS + EXTRA_KEYS}
