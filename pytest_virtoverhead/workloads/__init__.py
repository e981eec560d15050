"""Workloads modelled on sysbench, to call from marked tests or through
``env.run`` / ``env.benchmark`` inside any environment.

Each workload function records its amount of work with
:func:`pytest_virtoverhead.record_work` (so a marked test that calls it gets
a rate column) and returns a JSON dict with at least ``seconds``, ``rate``
and ``unit`` (a rate unit such as "events/s").

- :mod:`.cpu`: ``primes`` (sysbench cpu in Python), ``primes_numpy``; events/s
- :mod:`.memory`: ``blocks``: block writes/reads over a buffer; MiB/s
- :mod:`.fileio`: ``prepare``, ``run``, ``cleanup``, ``benchmark``: file I/O
  in the scratch directory; reads/s, writes/s, fsyncs/s, MiB/s
- :mod:`.syscalls`: ``getppid``: a cheap syscall in a loop; ops/s
- :mod:`.spawn`: ``fork_exec``: spawn /bin/true and wait; spawns/s
- :mod:`.sysbench`: ``run`` the real sysbench binary and parse its report
- :mod:`.loopback`: ``tcp_round_trip``: TCP round trips over ``lo`` (no NIC);
  round trips/s

Standard library only, except ``cpu.primes_numpy`` (numpy, imported lazily).
"""

from . import cpu, fileio, loopback, memory, spawn, sysbench, syscalls
from ._common import SCRATCH_ENV, scratch_dir

__all__ = ["cpu", "fileio", "loopback", "memory", "spawn", "syscalls", "sysbench", "SCRATCH_ENV", "scratch_dir"]
