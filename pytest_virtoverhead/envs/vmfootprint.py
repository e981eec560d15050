"""A VM's footprint on the host (issue 16), for :class:`.vm.VMBackend`.

The QEMU process is the VM as the host sees it: its resident set and
high-water mark (``/proc/<pid>/status``), its CPU time (every vCPU and I/O
thread, ``/proc/<pid>/stat``). Storage is the boot kernel, the initramfs,
the scratch disk's allocated blocks and the saved guest state a start
restores. The guest's own view of its memory is asked from the worker by
the environment handle (``guest_view``).
"""

from __future__ import annotations

import os
import re
from typing import Any

from .. import footprint


def qemu_pid(backend: Any) -> int | None:
    """The pid of the domain's QEMU process (its command line names
    ``guest=<domain>``), looked up once per domain and checked after."""
    cached = getattr(backend, "_fp_qemu", None)
    if cached and cached[0] == backend.dom_name and os.path.exists(f"/proc/{cached[1]}"):
        return cached[1]
    pid = footprint.find_pid(f"guest={backend.dom_name},") or footprint.find_pid(f"guest={backend.dom_name}\0")
    if pid is not None:
        backend._fp_qemu = (backend.dom_name, pid)
    return pid


def sample(backend: Any) -> dict[str, footprint.Reading]:
    if backend.sock is None:
        return {}
    pid = qemu_pid(backend)
    if pid is None:
        return {}
    st = footprint.proc_status(pid)
    where = f"QEMU pid {pid}"
    out = {footprint.CPU: footprint.Reading(footprint.proc_cpu_seconds(pid, children=False), "s",
                                            f"/proc/<pid>/stat utime+stime of {where} (vCPU and I/O threads)")}
    if "VmRSS" in st:
        out[footprint.MEMORY] = footprint.Reading(st["VmRSS"], "B", f"/proc/<pid>/status VmRSS of {where}")
    if "VmHWM" in st:
        out[footprint.MEMORY_PEAK] = footprint.Reading(st["VmHWM"], "B", f"/proc/<pid>/status VmHWM of {where}")
    return out


def storage(backend: Any) -> dict[str, footprint.Reading]:
    out: dict[str, footprint.Reading] = {}
    if backend.boot_paths:
        kernel, initrd = backend.boot_paths
        for name, path in (("kernel", kernel), ("initramfs", initrd)):
            alloc, size = footprint.path_bytes(path)
            out[name] = footprint.Reading(size, "B", f"stat {path}")
    if backend.workdir:
        path = os.path.join(backend.workdir, "scratch.img")
        alloc, size = footprint.path_bytes(path)
        if size:
            out["scratch_disk"] = footprint.Reading(alloc, "B", f"stat {path}: allocated blocks (sparse file of "
                                                                f"{footprint.format_bytes(size)})")
    note = str((getattr(backend, "_meta", None) or {}).get("snapshot") or getattr(backend, "_snapshot_note", ""))
    for path in re.findall(r"/[^\s(),]+", note):
        if os.path.isfile(path):
            alloc, size = footprint.path_bytes(path)
            out["saved_state"] = footprint.Reading(alloc, "B", f"stat {path} (the guest state a start restores; "
                                                               "shared by every start of this configuration)")
            break
    return out
