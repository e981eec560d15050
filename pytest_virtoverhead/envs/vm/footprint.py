"""A VM's footprint on the host, for :class:`.VMBackend`.

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

from ... import footprint


def qemu_pid(dom_name: str, known: int | None = None) -> int | None:
    """The pid of domain ``dom_name``'s QEMU process (its command line names
    ``guest=<domain>``): ``known`` while that process exists, else looked up."""
    if known is not None and os.path.exists(f"/proc/{known}"):
        return known
    return footprint.find_pid(f"guest={dom_name},") or footprint.find_pid(f"guest={dom_name}\0")


def sample(pid: int) -> dict[str, footprint.Reading]:
    """CPU time, resident set and its high-water mark of QEMU process ``pid``."""
    st = footprint.proc_status(pid)
    where = f"QEMU pid {pid}"
    out = {footprint.CPU: footprint.Reading(footprint.proc_cpu_seconds(pid, children=False), "s",
                                            f"/proc/<pid>/stat utime+stime of {where} (vCPU and I/O threads)")}
    if "VmRSS" in st:
        out[footprint.MEMORY] = footprint.Reading(st["VmRSS"], "B", f"/proc/<pid>/status VmRSS of {where}")
    if "VmHWM" in st:
        out[footprint.MEMORY_PEAK] = footprint.Reading(st["VmHWM"], "B", f"/proc/<pid>/status VmHWM of {where}")
    return out


def storage(boot_paths: tuple[str, str] | None, workdir: str | None,
            snapshot_note: str) -> dict[str, footprint.Reading]:
    """The boot kernel and initramfs, the scratch disk in ``workdir`` and the
    saved state named in ``snapshot_note``."""
    out: dict[str, footprint.Reading] = {}
    if boot_paths:
        kernel, initrd = boot_paths
        for name, path in (("kernel", kernel), ("initramfs", initrd)):
            alloc, size = footprint.path_bytes(path)
            out[name] = footprint.Reading(size, "B", f"stat {path}")
    if workdir:
        path = os.path.join(workdir, "scratch.img")
        alloc, size = footprint.path_bytes(path)
        if size:
            out["scratch_disk"] = footprint.Reading(alloc, "B", f"stat {path}: allocated blocks (sparse file of "
                                                                f"{footprint.format_bytes(size)})")
    for path in re.findall(r"/[^\s(),]+", snapshot_note):
        if os.path.isfile(path):
            alloc, size = footprint.path_bytes(path)
            out["saved_state"] = footprint.Reading(alloc, "B", f"stat {path} (the guest state a start restores; "
                                                               "shared by every start of this configuration)")
            break
    return out
