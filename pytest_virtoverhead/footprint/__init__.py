"""What an environment costs the host: start time, memory, CPU, storage.

A pure package (standard library; imports neither pytest, docker nor
libvirt), one job per module:

- :mod:`.procfs`: readings of ``/proc`` and cgroup files the backends call;
- :mod:`.tracker`: the :class:`Tracker` an environment keeps while it runs
  and the figures' JSON;
- :mod:`.text`: the figures as text (the terminal section);
- :mod:`.claims`: footprint claims (``vm.memory >= 4 * container.memory``,
  ``container.start <= 0.5 s``), their grammar and three-valued verdicts.

Every figure names its source (``/proc/<pid>/status VmRSS``, a cgroup file,
the docker or libvirt API, ``stat`` of a file), so a reader can tell what
was measured from what was estimated (nothing is estimated). This module
is the package's interface: the names the backends, the reports and the
plugin use.
"""

from .added import add_overheads, added_figures
from .claims import (
    FAIL,
    INCONCLUSIVE,
    METRICS,
    PASS,
    SKIPPED,
    FootprintClaim,
    Ref,
    check_envs,
    claim_line,
    evaluate,
    is_footprint_claim,
    parse_claim,
    parse_claims,
    reject_here,
)
from .procfs import (
    cgroup_cpu_seconds,
    cgroup_dirs,
    cgroup_memory,
    descendants,
    find_pid,
    guest_memory,
    meminfo,
    path_bytes,
    proc_cpu_seconds,
    proc_status,
    read_text,
    tree_cpu_seconds,
    tree_memory,
)
from .text import ROWS, format_bytes, format_value, section_lines
from .tracker import CPU, MEMORY, MEMORY_PEAK, Reading, Tracker

__all__ = [
    "add_overheads", "added_figures", "FAIL", "INCONCLUSIVE", "METRICS", "PASS", "SKIPPED", "FootprintClaim", "Ref", "check_envs", "claim_line",
    "evaluate", "is_footprint_claim", "parse_claim", "parse_claims", "reject_here",
    "cgroup_cpu_seconds", "cgroup_dirs", "cgroup_memory", "descendants", "find_pid", "guest_memory",
    "meminfo", "path_bytes", "proc_cpu_seconds", "proc_status", "read_text", "tree_cpu_seconds", "tree_memory",
    "ROWS", "format_bytes", "format_value", "section_lines",
    "CPU", "MEMORY", "MEMORY_PEAK", "Reading", "Tracker",
]
