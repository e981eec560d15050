"""The container's limits read from its options.

Standard library only.
"""

from __future__ import annotations

from typing import Mapping

from ..errors import EnvUnavailable

#: The container's pids cgroup limit unless the pids_limit option says
#: other: a test's fork bomb must not take the host's PIDs.
DEFAULT_PIDS_LIMIT = 4096


def pids_limit(options: Mapping[str, str]) -> int | None:
    """The ``pids_limit`` option: a number of at least 16, or None for ``none``."""
    value = str(options.get("pids_limit") or DEFAULT_PIDS_LIMIT).strip().lower()
    if value in ("none", "unlimited", "-1"):
        return None
    if not value.isdigit() or int(value) < 16:
        raise EnvUnavailable(f"container option pids_limit: expected a whole number of at least 16, or "
                             f"'none', got {value!r}")
    return int(value)
