"""One measuring session per CPU on a host.

Two ``--virt-compare`` sessions pinned to the same CPU (``--virt-cpus=auto``
picks the host's last one in both) would each measure the other's load:
medians doubled, no warning. So a session holds an advisory lock for every
CPU it measures on, for as long as it runs: ``flock`` on
``<lock dir>/cpu<N>.lock`` (default ``/tmp/pytest-virtoverhead-locks``,
``VIRTOVERHEAD_LOCK_DIR`` to move it). The kernel drops the lock when its
process ends, however it ends (SIGKILL too), so a dead session never blocks
the next one. The file names its holder (pid, directory, start time) for
the message the next session shows.

When the CPU is taken:

- ``--virt-cpus=auto`` takes another free CPU if the host has one besides
  CPU 0 (which keeps the host's own housekeeping); the session says which
  and why;
- otherwise (an explicit CPU list, or no free CPU) the session waits for
  the CPU, saying for whom, up to ``--virt-cpu-wait`` seconds (default
  600), then refuses with the holder named. ``--virt-cpu-wait=0`` refuses
  at once.

Environments started by another tool, or by a version of this plugin
without the lock, are not seen. Standard library only; no pytest.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from typing import Callable, Iterable, Iterator

LOCK_DIR_ENV = "VIRTOVERHEAD_LOCK_DIR"
DEFAULT_LOCK_DIR = "/tmp/pytest-virtoverhead-locks"
POLL = 0.5


class CpuBusy(Exception):
    """The CPUs stayed in use by another session for the whole wait."""


def lock_dir() -> str:
    return os.environ.get(LOCK_DIR_ENV) or DEFAULT_LOCK_DIR


def _open_dir(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o1777)  # shared by every user of the host, like /tmp
    except PermissionError:
        pass  # another user made it: it is already 1777


class CpuLocks:
    """The locks this session holds, by CPU."""

    def __init__(self, directory: str | None = None):
        self.directory = directory or lock_dir()
        self.fds: dict[int, int] = {}

    def path(self, cpu: int) -> str:
        return os.path.join(self.directory, f"cpu{cpu}.lock")

    def try_lock(self, cpus: Iterable[int], info: dict) -> dict[int, dict]:
        """Lock every CPU of ``cpus`` or none; return {cpu: holder} of the
        busy ones ({} when all are now held by this session)."""
        _open_dir(self.directory)
        taken: list[int] = []
        busy: dict[int, dict] = {}
        for cpu in sorted(set(cpus)):
            if cpu in self.fds:
                continue
            fd = os.open(self.path(cpu), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                os.fchmod(fd, 0o666)
            except OSError:
                pass
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                busy[cpu] = self.holder(cpu)
                continue
            self.fds[cpu] = fd
            taken.append(cpu)
            data = json.dumps({**info, "cpu": cpu}).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        if busy:
            for cpu in taken:
                self._unlock(cpu)
        return busy

    def holder(self, cpu: int) -> dict:
        try:
            with open(self.path(cpu), "rb") as f:
                return json.loads(f.read().decode("utf-8", "replace") or "{}")
        except (OSError, ValueError):
            return {}

    def _unlock(self, cpu: int) -> None:
        fd = self.fds.pop(cpu, None)
        if fd is not None:
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            os.close(fd)  # closing drops the flock

    def held_elsewhere(self, cpu: int) -> bool:
        """Whether another session holds ``cpu``'s lock now (a glance: a
        shared non-blocking flock, dropped at once)."""
        if cpu in self.fds:
            return False
        try:
            fd = os.open(self.path(cpu), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False  # no lock file: nobody ever measured there
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # closing drops the shared lock
        return False

    def spare(self, available: Iterable[int]) -> tuple[int, ...]:
        """The CPUs of ``available`` where this session may start worker
        processes: its own and those no other measuring session holds."""
        return tuple(sorted(c for c in set(available) if c in self.fds or not self.held_elsewhere(c)))

    def release(self) -> None:
        for cpu in list(self.fds):
            self._unlock(cpu)

    @property
    def cpus(self) -> tuple[int, ...]:
        return tuple(sorted(self.fds))


def describe(holder: dict) -> str:
    """``the pytest-virtoverhead session of pid 123 (started 14:02:11, in /x)``."""
    if not holder.get("pid"):
        return "another pytest-virtoverhead session"
    parts = []
    if holder.get("started"):
        parts.append("started " + time.strftime("%H:%M:%S", time.localtime(holder["started"])))
    if holder.get("cwd"):
        parts.append(f"in {holder['cwd']}")
    where = f" ({', '.join(parts)})" if parts else ""
    host = holder.get("host")
    on = f" on {host}" if host and host != socket.gethostname() else ""
    return f"the pytest-virtoverhead session of pid {holder['pid']}{on}{where}"


def session_info(session_id: str = "", cwd: str | None = None) -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "cwd": cwd or os.getcwd(),
            "session": session_id, "started": time.time()}


def candidates(cpus: tuple[int, ...] | None, auto: bool, available: Iterable[int]) -> list[tuple[int, ...]]:
    """CPU sets to try, in order: the asked one; under ``auto`` also every
    other single CPU, highest first, leaving CPU 0 out when there are others."""
    avail = sorted(available)
    if cpus is None:
        return [tuple(avail)]
    out = [tuple(cpus)]
    if auto:
        others = [c for c in reversed(avail) if (c,) not in out and (c != 0 or len(avail) == 1)]
        out += [(c,) for c in others]
    return out


def acquire(locks: CpuLocks, cpus: tuple[int, ...] | None, *, auto: bool, available: Iterable[int],
            wait: float, info: dict, say: Callable[[str], None] = lambda msg: None,
            clock: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep) -> tuple[int, ...] | None:
    """Lock the session's CPUs; return the CPU set to measure on (the asked
    one, or another free one under ``auto``; None stays None: no pinning,
    every CPU locked). Waits up to ``wait`` seconds; CpuBusy after that."""
    options = candidates(cpus, auto, available)
    deadline = clock() + max(0.0, wait)
    waited = False
    while True:
        first_busy: dict[int, dict] = {}
        for option in options:
            busy = locks.try_lock(option, info)
            if not busy:
                if option != options[0]:
                    asked = ",".join(map(str, options[0]))
                    say(f"virtoverhead: CPU {asked} is in use by {describe(first_busy[min(first_busy)])}: "
                        f"this session measures on CPU {','.join(map(str, option))} instead (--virt-cpus=auto)")
                elif waited:
                    say("virtoverhead: the CPU is free: measuring")
                return cpus if cpus is None else option
            if not first_busy:
                first_busy = busy
        cpu = min(first_busy)
        who = describe(first_busy[cpu])
        asked = "every CPU (--virt-cpus=all)" if cpus is None else f"CPU {','.join(map(str, options[0]))}"
        if clock() >= deadline:
            how = (f"waited {wait:g} s (--virt-cpu-wait); " if wait > 0 else "")
            raise CpuBusy(
                f"--virt-cpus: {asked} is in use by {who}: two sessions measuring on one CPU would each "
                f"time the other's work. {how}let that session finish, pass --virt-cpu-wait=SECONDS to "
                f"wait for it, or --virt-cpus=LIST to measure on other CPUs"
                + ("" if auto else " (auto picks a free one)"))
        if not waited:
            say(f"virtoverhead: waiting for {asked}, in use by {who}; up to {wait:g} s (--virt-cpu-wait), "
                "Ctrl-C to stop")
            waited = True
        sleep(min(POLL, max(0.0, deadline - clock())))


@contextlib.contextmanager
def start_lock(kind: str, directory: str | None = None) -> Iterator[None]:
    """Hold ``start-<kind>.lock`` in the lock directory: one start of that
    kind at a time on the host (pytest-xdist workers stagger their VMs'
    boots this way). Blocks until the start in progress ends; the kernel
    drops the lock when its holder dies."""
    directory = directory or lock_dir()
    _open_dir(directory)
    fd = os.open(os.path.join(directory, f"start-{kind}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
