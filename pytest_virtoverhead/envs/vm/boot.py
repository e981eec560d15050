"""Booting a guest: one boot (or the restore of a saved state) up to the
worker's ``ready``, what the console says when it fails, and the KVM probe.

:class:`Booter` does one start's boots for :class:`~.VMBackend` and writes
what happened (attempts, phase times, how the guest started) into a
:class:`BootLog` that the backend's metadata and diagnostics read.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ...wire.protocol import FrameDecoder
from ..channel import SocketTransport
from . import domain as domain_mod, initramfs, snapshot as snapshot_mod, workdir as workdir_mod
from .connect import first_error

#: Console text that means the boot cannot succeed (no point waiting longer).
FATAL_CONSOLE = re.compile(r"Kernel panic - not syncing.*|virtoverhead-init: \[[\d.]+\] FAILED.*"
                           r"|virtoverhead-init: \[[\d.]+\] worker exited.*")
INIT_STEP = re.compile(r"virtoverhead-init: \[[\d.]+\] ([a-z][a-z ]*)")
DENIED_CONSOLE = re.compile(r".*(Permission denied|PermissionError).*")


class BootFailed(Exception):
    def __init__(self, kind: str, message: str, console: str = ""):
        super().__init__(message)
        self.kind = kind  # "hang", "panic", "denied", "died", "cancelled"
        self.console = console


class PrefixedSocketTransport(SocketTransport):
    """A socket whose first bytes were already read while waiting for ``ready``."""

    def __init__(self, sock: socket.socket, prefix: bytes):
        super().__init__(sock)
        self._prefix = prefix

    def read(self, n: int) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix[:n], self._prefix[n:]
            return data
        return super().read(n)


@dataclass
class BootLog:
    """What the boots of a VM did: for its metadata and diagnostics."""

    attempts: list[str] = field(default_factory=list)
    #: Host seconds since the domain was created at which each phase was seen.
    phases: dict[str, float] = field(default_factory=dict)
    probe_seconds: float | None = None  # how long the KVM probe took
    start_mode: str = ""  # "restored" or "booted"
    prestarted: bool = False  # the worker said it was started before the start point
    snapshot: str = ""  # what became of the saved state


class Booter:
    """Boots the guests of one start on connection ``conn``. ``console``
    reads the tail of the guest's console log, ``destroy`` destroys the
    domain, ``cancelled`` is set when the session ends meanwhile."""

    def __init__(self, libvirt: Any, conn: Any, log: BootLog, console: Callable[[int], str],
                 destroy: Callable[[], None], cancelled: threading.Event, cwd: str = "/"):
        self.libvirt = libvirt
        #: The worker's working directory, sent with the "go" line (not
        #: built into the initramfs, so one saved state serves every project).
        self.cwd = cwd
        self.conn = conn
        self.log = log
        self.console = console
        self.destroy = destroy
        self.cancelled = cancelled

    def probe_kvm(self, dcfg: domain_mod.DomainConfig, workdir: str, cache_dir: str,
                  timeout: float) -> tuple[bool, str]:
        """Does a KVM guest reach user space here? A guest of the kernel and
        a busybox /init that prints one line before any module loads: under
        KVM that takes well under a second; where nested virtualization
        does not work the guest hangs in early boot. Returns (works, why)."""
        libvirt = self.libvirt
        probe = dataclasses.replace(
            dcfg, name=dcfg.name + "-kvmprobe", initrd=initramfs.build_probe(cache_dir),
            console_log=os.path.join(workdir, "probe-console.log"),
            worker_socket=os.path.join(workdir, "probe.sock"), scratch_disk=None, accel="kvm",
            incoming=False, genid=False, memory_mb=min(dcfg.memory_mb, 256))
        t0 = time.monotonic()
        try:
            dom = self.conn.createXML(domain_mod.build_xml(probe), libvirt.VIR_DOMAIN_START_AUTODESTROY)
        except libvirt.libvirtError as exc:
            self.log.attempts.append("kvm probe: QEMU could not start it")
            self.log.probe_seconds = round(time.monotonic() - t0, 3)
            return False, (f"QEMU could not start a KVM guest ({first_error(exc.get_error_message())}; "
                           "nested virtualization that does not work?)")
        started = time.monotonic()
        try:
            while True:
                try:
                    with open(probe.console_log, "rb") as f:
                        console = f.read().decode("utf-8", "replace")
                except OSError:
                    console = ""
                elapsed = time.monotonic() - started
                if initramfs.PROBE_MARKER in console:
                    self.log.attempts.append(f"kvm probe: user space in {elapsed:.2f} s")
                    return True, f"a KVM guest reached user space in {elapsed:.2f} s"
                if FATAL_CONSOLE.search(console):
                    self.log.attempts.append("kvm probe: panic")
                    return False, f"a KVM guest panicked: {FATAL_CONSOLE.search(console).group(0).strip()}"
                try:
                    active = dom.isActive()
                except libvirt.libvirtError:
                    active = False
                if not active:
                    self.log.attempts.append("kvm probe: ended early")
                    return False, "a KVM guest ended before reaching user space"
                if self.cancelled.is_set():
                    raise BootFailed("cancelled", "KVM probe abandoned: the session is ending (interrupted)")
                if elapsed > timeout:
                    printed = "printed nothing" if not console.strip() else "stopped before user space"
                    self.log.attempts.append(f"kvm probe: hang ({printed})")
                    return False, (f"a KVM guest did not reach user space within {timeout:g} s (its kernel "
                                   f"{printed}; nested virtualization does not work here?)")
                time.sleep(0.02)
        finally:
            try:
                dom.destroy()
            except libvirt.libvirtError:
                pass
            self.log.probe_seconds = round(time.monotonic() - t0, 3)

    def boot(self, dcfg: domain_mod.DomainConfig, accel: str, timeout: float, scratch_mb: int,
             state: str | None = None) -> tuple[socket.socket, bytes, float]:
        """Boot once, or restore the saved state ``state`` if that file
        exists (and save it at the start point if it does not); return
        (socket, bytes read so far, seconds to ready) or raise BootFailed."""
        libvirt = self.libvirt
        if self.cancelled.is_set():
            raise BootFailed("cancelled", "not booted: the session is ending")
        self.destroy()
        for path in (dcfg.console_log, dcfg.worker_socket, dcfg.scratch_disk):
            try:
                os.unlink(path)
            except OSError:
                pass
        workdir_mod.make_scratch(dcfg.scratch_disk, scratch_mb)
        restoring = bool(state) and os.path.isfile(state)
        dcfg.accel = accel
        dcfg.incoming = restoring
        xml = domain_mod.build_xml(dcfg)
        t0 = time.monotonic()
        label = f"{accel}: " + ("restore: " if restoring else "")
        try:
            # AUTODESTROY: if this process dies, its libvirt connection closes
            # and libvirtd destroys the guest at once (reap() is the backstop).
            dom = self.conn.createXML(xml, libvirt.VIR_DOMAIN_START_PAUSED | libvirt.VIR_DOMAIN_START_AUTODESTROY)
        except libvirt.libvirtError as exc:
            self.log.attempts.append(label + "libvirt refused the domain")
            if restoring:
                raise BootFailed("restore", f"libvirt could not create the domain: {exc.get_error_message()}") from exc
            raise BootFailed("died", f"libvirt could not create the domain: {exc.get_error_message()}") from exc
        self.log.phases = phases = {"created": round(time.monotonic() - t0, 3)}
        if restoring:
            try:
                snapshot_mod.restore(dom, state, timeout=min(timeout, 60.0))
            except snapshot_mod.SnapshotError as exc:
                self.destroy()
                self.log.attempts.append(label + f"failed ({exc})")
                raise BootFailed("restore", str(exc)) from exc
            phases["restored"] = round(time.monotonic() - t0, 3)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(dcfg.worker_socket)
            dom.resume()
        except (OSError, libvirt.libvirtError) as exc:
            sock.close()
            self.destroy()
            self.log.attempts.append(label + "no worker socket")
            raise BootFailed("died", f"cannot connect to the guest's serial socket: {exc}") from exc
        phases["resumed"] = round(time.monotonic() - t0, 3)
        decoder = FrameDecoder()
        received = bytearray()
        marker = initramfs.START_POINT.encode()
        waiting = not restoring  # for the start point; a restored guest waits there already
        if restoring:
            self._go(sock)
            self.log.start_mode = "restored"
            self.log.snapshot = f"restored ({state})"
        sock.settimeout(0.02)
        deadline = t0 + timeout
        console_seen = 0
        failure: BootFailed | None = None
        while failure is None:
            try:
                data = sock.recv(65536)
                if not data:
                    failure = BootFailed("died", "the guest ended before its worker was ready")
                    break
                received += data
                if waiting and received.find(marker) >= 0:
                    waiting = False
                    phases["start point"] = round(time.monotonic() - t0, 3)
                    del received[:received.find(marker) + len(marker)]
                    data = bytes(received)
                    if state:
                        self._save_state(dom, state, phases, t0)
                    self._go(sock)
                    self.log.start_mode = "booted"
                ready = [] if waiting else [m for m in decoder.feed(data)
                                            if isinstance(m, dict) and m.get("event") == "ready"]
                if ready:
                    self.log.prestarted = bool(ready[0].get("prestarted"))
                    sock.settimeout(None)
                    elapsed = time.monotonic() - t0
                    self._note_phases(phases, elapsed)
                    phases["ready"] = round(elapsed, 3)
                    self.log.attempts.append(label + f"ready in {elapsed:.2f} s")
                    return sock, bytes(received), elapsed
            except socket.timeout:
                pass
            except OSError as exc:
                failure = BootFailed("died", f"the worker socket failed: {exc}")
                break
            if self.cancelled.is_set():
                failure = BootFailed("cancelled", "boot abandoned: the session is ending (interrupted)")
                break
            console = self.console(1 << 20)
            if len(console) != console_seen:
                console_seen = len(console)
                self._note_phases(phases, time.monotonic() - t0, console)
                if FATAL_CONSOLE.search(console):
                    failure = BootFailed("panic", "")
            if failure is None and time.monotonic() > deadline:
                failure = BootFailed("hang", f"no ready from the worker within {timeout:g} s")
        sock.close()
        time.sleep(0.3)  # let the panic trace reach the console log
        self.destroy()
        failure = self._classify(failure)
        failure.console = self.console(4000)
        self.log.attempts.append(label + failure.kind)
        raise failure

    def _go(self, sock: socket.socket) -> None:
        """The host's answer at the start point: wall clock, entropy and the
        worker's working directory (hex: any path fits on the line)."""
        import secrets

        sock.sendall(f"go {round(time.time())} {secrets.token_hex(32)} {self.cwd.encode().hex()}\n".encode())

    def _save_state(self, dom, state: str, phases: dict[str, float], t0: float) -> None:
        """Save the guest at its start point for later starts (a failure
        only costs later starts their speed: it is noted, not raised)."""
        try:
            size = snapshot_mod.save(dom, state)
        except (snapshot_mod.SnapshotError, OSError) as exc:
            self.log.snapshot = f"not saved ({exc}); every start boots"
            return
        phases["saved"] = round(time.monotonic() - t0, 3)
        self.log.snapshot = f"saved now ({size / 1e6:.0f} MB, {state})"

    def _note_phases(self, phases: dict[str, float], elapsed: float, console: str | None = None) -> None:
        """Host time (seconds since the domain was created) at which the
        console first showed the kernel and each step of /init (to within
        the ~0.1 s poll): where a boot's time goes (benchmarks/vm_boot.py)."""
        console = self.console(1 << 20) if console is None else console
        if console.strip():
            phases.setdefault("kernel", round(elapsed, 3))
        for m in INIT_STEP.finditer(console):
            phases.setdefault(m.group(1), round(elapsed, 3))

    def _classify(self, failure: BootFailed) -> BootFailed:
        """Say what the console says: a panic, a failed init step, Permission denied."""
        console = self.console(1 << 20)
        fatal = FATAL_CONSOLE.search(console)
        if fatal and DENIED_CONSOLE.search(console):
            denied = DENIED_CONSOLE.search(console).group(0).strip()
            return BootFailed("denied", f"the guest could not run the worker: {denied}")
        if fatal:
            text = f"the guest reported: {fatal.group(0).strip()}"
            if failure.kind == "hang":
                text = f"{failure}; {text}"
            return BootFailed("hang" if failure.kind == "hang" else "panic", text)
        return failure
