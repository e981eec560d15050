"""Process-creation workload: spawn a trivial program and wait for it.

Spawning weighs the kernel's process creation, exec and the page-table work
of the environment: namespaces and cgroups in a container (plus the
overlayfs lookup of the program), page-table management by the hypervisor
(or by QEMU's softmmu under TCG) in a VM.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

from ._common import finish, positive_int


def _program(program: str) -> str:
    if os.path.isabs(program):
        if os.access(program, os.X_OK):
            return program
        program = os.path.basename(program)
    found = shutil.which(program)
    if found is None:
        raise FileNotFoundError(f"cannot find the program {program!r} to spawn in this environment")
    return found


def fork_exec(n: int = 50, program: str = "/bin/true") -> dict[str, Any]:
    """Start ``program`` (no arguments) ``n`` times with ``os.posix_spawn``
    and wait for each; a non-zero exit raises RuntimeError. A relative name
    or a missing absolute path is looked up on PATH.

    Records ``n`` "spawns" (rate in spawns/s). Returns ``seconds``, ``rate``
    and ``spawns_per_s`` (spawns/s), ``unit`` ("spawns/s"), ``spawns``,
    ``ms_per_spawn``, ``program``. With the defaults one call takes about
    35-70 ms on the host (~0.7-1.5 ms per spawn).
    """
    positive_int("n", n)
    path = _program(program)
    argv, env = [path], dict(os.environ)
    t0 = time.perf_counter()
    for _ in range(n):
        pid = os.posix_spawn(path, argv, env)
        _, status = os.waitpid(pid, 0)
        if status:
            raise RuntimeError(f"{path} exited with status {os.waitstatus_to_exitcode(status)}")
    seconds = time.perf_counter() - t0
    out = finish(n, "spawns", seconds, program=path)
    out.update(spawns=n, spawns_per_s=out["rate"], ms_per_spawn=out["seconds"] / n * 1e3)
    return out
