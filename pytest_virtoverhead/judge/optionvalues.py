"""Readers of single option values (CPUs, memory, counts, seconds, a
confidence level) and of a list of claim texts, each raising ``ValueError``
with the message a user should see (the option or source named).

Pure: standard library and the claim errors; imports no pytest.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Iterable, TypeVar

from .claims import ClaimError

DEFAULT_CONFIDENCE = 0.95

C = TypeVar("C")


def parse_each(texts: Iterable[str], source: str, parse: Callable[[str], C],
               check: Callable[[C, list[str], set[str]], Any], env_names: Iterable[str],
               elsewhere: Iterable[str] = ()) -> list[C]:
    """Each text parsed with ``parse`` (a claim grammar) and checked with
    ``check`` against the run's environments (and those known
    ``elsewhere``); the first ClaimError becomes ValueError
    ``source: invalid claim at column ...``."""
    names, others = list(env_names), set(elsewhere)
    out = []
    for text in texts:
        try:
            claim = parse(text)
            check(claim, names, others)
        except ClaimError as exc:
            raise ValueError(f"{source}: {exc}") from None
        out.append(claim)
    return out


def parse_cpus(text: str, available: Iterable[int] | None = None) -> tuple[int, ...] | None:
    """``auto`` (one CPU: the host's last), ``all`` (no pinning) or a list
    such as ``1`` or ``0-1,3``."""
    avail = sorted(available if available is not None else os.sched_getaffinity(0))
    text = text.strip().lower()
    if text == "all":
        return None
    if text == "auto":
        return (avail[-1],)
    cpus: set[int] = set()
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ValueError(f"--virt-cpus: cannot read {text!r}; use auto, all, or a list like 1 or 0-1,3")
        lo = int(m.group(1))
        hi = int(m.group(2) or lo)
        if hi < lo:
            raise ValueError(f"--virt-cpus: range {part.strip()!r} runs backwards")
        cpus.update(range(lo, hi + 1))
    missing = sorted(cpus - set(avail))
    if missing:
        raise ValueError(f"--virt-cpus: CPU(s) {missing} not available here; available: {avail}")
    return tuple(sorted(cpus))


def host_memory_mb() -> int | None:
    """This host's physical memory in MiB (None where it cannot be read)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)
    except (ValueError, OSError, AttributeError):
        return None


def parse_memory(text: str, host_mb: int | None = None) -> int:
    """``1024``, ``512m``, ``2g`` -> MiB, at most the host's memory."""
    m = re.fullmatch(r"\s*(\d+)\s*([mMgG]?)(?:i?[bB])?\s*", text)
    if not m:
        raise ValueError(f"--virt-memory: cannot read {text!r}; use e.g. 1024, 512m or 2g")
    value = int(m.group(1)) * (1024 if m.group(2).lower() == "g" else 1)
    if value < 128:
        raise ValueError(f"--virt-memory: {value} MiB is too little for a worker (at least 128)")
    host_mb = host_memory_mb() if host_mb is None else host_mb
    if host_mb and value > host_mb:
        raise ValueError(f"--virt-memory: {value} MiB is more than this host's memory ({host_mb} MiB); "
                         f"a container or VM cannot have more (e.g. --virt-memory={min(1024, host_mb // 2)}m)")
    return value


def positive_int(text: Any, what: str) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a whole number, got {text!r}") from None
    if value < 1:
        raise ValueError(f"{what}: must be at least 1, got {value}")
    return value


def positive_float(text: Any, what: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"{what}: must be positive, got {text!r}")
    return value


def parse_confidence(text: Any, what: str = "--virt-confidence") -> float:
    """``0.95``, ``95%`` or ``95`` -> 0.95 (between 0.5 and 1); errors name ``what``."""
    if text in (None, ""):
        return DEFAULT_CONFIDENCE
    raw = str(text).strip()
    try:
        value = float(raw.rstrip("%"))
    except ValueError:
        raise ValueError(f"{what}: expected a level such as 0.95 or 95%, got {text!r}") from None
    if raw.endswith("%") or value >= 1:
        value /= 100
    if not 0.5 <= value < 1:
        raise ValueError(f"{what}: the level must lie between 0.5 and 1 (50% and 100%), got {text!r}")
    return value
