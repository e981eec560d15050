"""Saved guest states: a VM starts by restoring one instead of booting.

Everything a guest does before the 9p mount is the same for every session
of a machine configuration (kernel, initramfs, memory, vCPUs, machine type,
acceleration, devices): the kernel's boot and the module loads, ~4-5 s of a
TCG start here. /init stops at that point (``initramfs.START_POINT``) and
waits for the host's "go" line. The first start of a configuration saves
the guest's state there (QEMU's ``migrate`` into a file, ~1 s; QEMU refuses
to migrate a guest with 9p mounted, so this is the last point where it
can); later starts create the domain with ``-incoming defer`` and feed that
file to ``migrate-incoming``. The host's "go" line then carries the wall
clock and fresh entropy, and the guest's VM generation ID changes, so a
restored guest neither runs on the snapshot's clock nor repeats its random
numbers.

Both directions go through QEMU's monitor (libvirt-qemu's
``qemuMonitorCommandWithFiles``, passing an open file, because QEMU's
sandbox forbids it to spawn ``exec:`` helpers), not libvirt's own
save/restore: a libvirt save image binds the domain's name and UUID, and
every session's domain has its own. libvirt marks such domains tainted
(``custom-argv``, ``custom-monitor``) in its log; nothing else changes.

Standard library only; libvirt_qemu is imported by the functions that use it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Any

from ...fsutil import prune
from .accel import machine_key
from .domain import DomainConfig, build_xml

STATE_DIR = "snapshots"
FD_NAME = "virtoverhead-state"
#: Saved states are ~90 MB (a 1 GiB guest; pages never written are not
#: stored); older files than this many per cache are removed.
KEEP = 4


class SnapshotError(Exception):
    """A state could not be saved or restored (the caller boots instead)."""


def key(normalized_xml: str, parts: list[str]) -> str:
    """What a saved state depends on: the domain XML without per-session
    names, paths and labels, and the kernel, initramfs, QEMU and libvirt."""
    return hashlib.sha256("\n".join([normalized_xml, *parts]).encode()).hexdigest()[:20]


def state_path(cache_dir: str, state_key: str) -> str:
    return os.path.join(cache_dir, STATE_DIR, f"guest-{state_key}.state")


def path_for(cache_dir: str, dcfg: DomainConfig, accel: str, qemu_version: str, libvirt_version: int,
             scratch_mb: int) -> str:
    """Where the saved state of domain configuration ``dcfg`` under ``accel`` is (or will be)."""
    generic = dataclasses.replace(dcfg, name="virtoverhead-state", console_log="/console", worker_socket="/worker",
                                  scratch_disk="/scratch" if dcfg.scratch_disk else None, labels={}, title="",
                                  cpus=None, accel=accel, incoming=False)
    kernel = dcfg.kernel
    try:
        st = os.stat(kernel)
        kstamp = f"{kernel}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        kstamp = kernel
    parts = [kstamp, dcfg.initrd, f"qemu {qemu_version}", f"libvirt {libvirt_version}", f"scratch {scratch_mb}"]
    if accel == "kvm":
        parts.append(machine_key(qemu_version))  # KVM state depends on the host CPU
    return state_path(cache_dir, key(build_xml(generic), parts))


def _qmp(dom: Any, command: str, arguments: dict[str, Any] | None = None, files: list[int] | None = None) -> Any:
    import libvirt_qemu  # lazy: part of libvirt-python

    message = json.dumps({"execute": command, **({"arguments": arguments} if arguments else {})})
    try:
        if files:
            out = libvirt_qemu.qemuMonitorCommandWithFiles(dom, message, files, 0)[0]
        else:
            out = libvirt_qemu.qemuMonitorCommand(dom, message, 0)
    except Exception as exc:  # noqa: BLE001 - libvirt.libvirtError, or no such API
        raise SnapshotError(f"QEMU monitor command {command} failed: {exc}") from None
    reply = json.loads(out)
    if "error" in reply:
        raise SnapshotError(f"QEMU refused {command}: {reply['error'].get('desc', reply['error'])}")
    return reply.get("return")


def _wait_migration(dom: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        info = _qmp(dom, "query-migrate") or {}
        status = info.get("status")
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            raise SnapshotError(f"{what} failed: {info.get('error-desc', status)}")
        if time.monotonic() > deadline:
            raise SnapshotError(f"{what} did not complete within {timeout:g} s (status {status})")
        time.sleep(0.005)


def save(dom: Any, path: str, timeout: float = 60.0) -> int:
    """Save a running guest's state to ``path`` (atomically) and let it run
    on. Returns the file's size. The guest is paused while it is written."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _qmp(dom, "stop")
        try:
            _qmp(dom, "migrate-set-parameters", {"max-bandwidth": 1 << 40})
            _qmp(dom, "getfd", {"fdname": FD_NAME}, files=[fd])
            _qmp(dom, "migrate", {"uri": f"fd:{FD_NAME}"})
            _wait_migration(dom, timeout, "saving the guest's state")
        finally:
            _qmp(dom, "cont")
        size = os.fstat(fd).st_size
        os.replace(tmp, path)
        _prune(os.path.dirname(path), keep=path)
        return size
    finally:
        os.close(fd)
        if os.path.exists(tmp):
            os.unlink(tmp)


def restore(dom: Any, path: str, timeout: float = 60.0) -> None:
    """Load ``path`` into a domain created paused with ``incoming=True``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise SnapshotError(f"cannot open the saved state: {exc}") from None
    try:
        _qmp(dom, "getfd", {"fdname": FD_NAME}, files=[fd])
    finally:
        os.close(fd)
    _qmp(dom, "migrate-incoming", {"uri": f"fd:{FD_NAME}"})
    _wait_migration(dom, timeout, "restoring the guest's state")
    try:
        os.utime(path)  # recently used: kept by _prune
    except OSError:
        pass


def discard(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _prune(directory: str, keep: str) -> None:
    """Keep the newest KEEP states (each configuration has its own)."""
    prune(directory, lambda n: n.endswith(".state"), KEEP, keep=keep)
