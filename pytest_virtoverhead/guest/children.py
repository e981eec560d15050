"""Worker processes a worker starts inside its own environment.

The verdict engine measures each test in several fresh interpreters per
environment (see docs/verdicts.md): the environment's worker, which the
backend started over its stream (a pipe, a container's attach socket, a VM's
serial port), starts them as its own children over pipes and relays
requests that carry ``"proc": K`` to child K, byte for byte, one reply per
request. So every kind gets several processes without a second channel, and
a child runs inside the same namespaces, cgroup or guest as its parent.

A child dies with its parent (``PR_SET_PDEATHSIG``), so a killed worker
never leaves a busy child behind. Standard library only: this runs inside
every environment.
"""

from __future__ import annotations

import os
import sys
import time

from ..wire.protocol import FrameDecoder, encode
from . import proctree

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Set in a child's environment to its parent's pid: the child asks the
#: kernel to kill it when that parent dies.
PARENT_DEATH_VAR = "VIRTOVERHEAD_PARENT_DEATH"

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent exits (no-op
    elsewhere); exit at once if ``parent`` is already gone. (The parent may
    well be pid 1: a container's worker is its init.)"""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent is already gone
            os._exit(1)
    except (OSError, AttributeError, ImportError):  # ImportError: an image whose ctypes cannot load
        pass


def signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def oom_kills() -> int | None:
    """The kernel's count of OOM kills that concern this environment: the
    memory cgroup's (v2 memory.events, v1 memory.oom_control), else the
    whole system's (/proc/vmstat, a VM guest's own kernel)."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control", "/proc/vmstat"):
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


def _cgroup_bytes(*paths: str) -> int | None:
    for path in paths:
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    return None


def memory_limit_mb() -> int | None:
    limit = _cgroup_bytes("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    return None if limit is None else limit // (1024 * 1024)


def memory_peak_at_limit() -> bool:
    """Whether the memory cgroup's high-water mark reached its limit (within
    1 MiB): evidence of an OOM where the kill count cannot be read."""
    limit = _cgroup_bytes("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    peak = _cgroup_bytes("/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes")
    return limit is not None and peak is not None and peak >= limit - (1 << 20)


def oom_killed(before: int | None) -> bool:
    """Whether the kernel's OOM killer struck since its count was ``before``
    (or, without a count, the cgroup's peak reached its limit)."""
    kills = oom_kills()
    if kills is not None and before is not None:
        return kills > before
    return memory_peak_at_limit()


class ChildDied(Exception):
    """A child worker exited while the host waited for its reply."""


class Child:
    def __init__(self, slot: int, env: dict[str, str], cpus: "list[int] | None" = None, wait: bool = True):
        # Here, not at module level: the worker imports this module at every
        # start (die_with_parent), and subprocess (selectors, threading,
        # signal, locale) costs ~0.15-0.25 s of a TCG guest's worker start;
        # only a spawn needs it.
        import subprocess

        self.slot = slot
        self.started = time.monotonic()
        #: The OOM count when this process started: an OOM kill at any time
        #: of its life counts (the killer picks the largest process, often
        #: another one than the one starting or running a job).
        self._oom_start: int | None = oom_kills()
        cmd = [sys.executable, "-m", "pytest_virtoverhead.guest.worker", "--cwd", os.getcwd()]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env={**os.environ, **env, PARENT_DEATH_VAR: str(os.getpid()),
                                          proctree.TAG_VAR: str(slot)})
        self.pid = self.proc.pid
        if cpus:
            # Start elsewhere than the measuring CPUs where the host has
            # spare ones; the child moves onto them once its session is open.
            try:
                os.sched_setaffinity(self.proc.pid, cpus)
            except OSError:
                pass  # outside this environment's CPU set: start where the parent runs
        self._decoder = FrameDecoder()
        self._pending: list[Any] = []
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        ready = self._next("while it started")
        if ready.get("event") != "ready":
            raise ChildDied(f"worker process {self.slot} did not say ready: {ready!r}")
        self.pid = int(ready.get("pid") or self.proc.pid)

    def death(self, code: int, when: str = "") -> str:
        """Why this process ended with status ``code`` (``when``: while it
        started, ...): an OOM kill named with the memory limit."""
        when = f" {when}" if when else ""
        if code == -9 and oom_killed(self._oom_start):
            limit = memory_limit_mb()
            where = f" ({limit} MiB, --virt-memory)" if limit else ""
            return (f"OOM-killed: the environment hit its memory limit{where} and the kernel's OOM killer ended "
                    f"worker process {self.slot} (pid {self.proc.pid}){when}; every worker process holds its own "
                    f"copy of the tests' modules: raise --virt-memory or lower --virt-processes")
        how = f"killed by {signal_name(-code)}" if code < 0 else f"exit status {code}"
        return f"worker process {self.slot} (pid {self.proc.pid}) exited ({how}){when}"

    def _next(self, when: str = "") -> dict:
        while not self._pending:
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                raise ChildDied(self.death(self.proc.wait(), when))
            self._pending.extend(self._decoder.feed(data))
        return self._pending.pop(0)

    def request(self, msg: dict) -> dict:
        """Send ``msg`` to the child and return its reply frame (events skipped)."""
        self.send(msg)
        return self.reply_to(msg)

    def send(self, msg: dict) -> None:
        code = self.proc.poll()
        if code is not None:  # ended before this request (another process's OOM, ...)
            raise ChildDied(self.death(code, "before this request"))
        try:
            self.proc.stdin.write(encode(msg))
            self.proc.stdin.flush()
        except OSError:
            raise ChildDied(self.death(self.proc.wait(), "before this request")) from None

    def reply_to(self, msg: dict, when: str = "") -> dict:
        while True:
            reply = self._next(when)
            if reply.get("id") == msg.get("id") and "event" not in reply:
                return reply

    def close(self) -> None:
        import subprocess  # (loaded by __init__ already)

        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Children:
    """The children of one worker, by slot (1, 2, ...)."""

    def __init__(self) -> None:
        self.by_slot: dict[int, Child] = {}
        #: Why each slot's process ended, for the requests that follow.
        self.gone: dict[int, str] = {}

    def notice_deaths(self, when: str) -> None:
        """Record the processes that ended meanwhile (``when``: during
        which request), so the next request for them says why."""
        died = False
        for slot, child in list(self.by_slot.items()):
            code = child.proc.poll()
            if code is not None:
                self.gone[slot] = child.death(code, when)
                del self.by_slot[slot]
                died = True
        if died:
            self.end_orphans()

    def end_orphans(self) -> None:
        """End what the worker processes that ended left behind (their
        daemons, re-parented to this worker: a subreaper)."""
        proctree.end_orphans(child.proc.pid for child in self.by_slot.values())

    def spawn(self, msg: dict) -> dict[str, Any]:
        """``spawn``: start (or restart) child ``slot`` with extra environment
        variables (``env``, e.g. PYTHONHASHSEED)."""
        slot = int(msg["slot"])
        if slot < 1:
            raise ValueError("child slots start at 1")
        old = self.by_slot.pop(slot, None)
        if old is not None:
            old.close()
            self.end_orphans()
        env = {str(k): str(v) for k, v in (msg.get("env") or {}).items()}
        self.gone.pop(slot, None)
        try:
            child = Child(slot, env)
        finally:
            self.notice_deaths(f"while worker process {slot} started")
        self.by_slot[slot] = child
        return {"slot": slot, "pid": child.pid}

    def prepare(self, msg: dict) -> dict[str, Any]:
        """``prepare``: start the children of ``slots`` ({slot: extra
        environment variables}) all at once and open in each the pytest
        session ``session`` asks for ({"nodeids", "args", "rootdir"}), so
        their interpreters start and collect side by side, on the CPUs of
        ``start_cpus`` when given (spare CPUs of the host: see
        docs/performance.md); each child moves onto ``pin_cpus`` (the
        measuring ones; default this worker's own) before it answers that
        its session is open; without ``start_cpus``, where this worker runs.

        Returns {"slots": {slot: {"pid", "seconds"} or {"error", "type"}}}."""
        start = msg.get("start_cpus") or None
        # Without CPUs to start on, a child starts where this worker runs
        # (it inherits its CPUs) and stays there.
        pin = (msg.get("pin_cpus") or sorted(os.sched_getaffinity(0))) if start else None
        session = msg.get("session")
        slots = [(int(k), {str(a): str(b) for a, b in (v or {}).items()}) for k, v in (msg.get("slots") or {}).items()]
        # As many starting at once as there are CPUs to start on: more would
        # only share them (and thrash their caches) for no gain.
        width = max(1, len(start or ()))
        out: dict[str, Any] = {}
        flight: list[tuple[Child, dict | None]] = []
        while slots or flight:
            while slots and len(flight) < width:
                slot, env = slots.pop(0)
                old = self.by_slot.pop(slot, None)
                if old is not None:
                    old.close()
                    self.end_orphans()
                self.gone.pop(slot, None)
                try:
                    child = Child(slot, env, cpus=start, wait=False)
                    child.wait_ready()
                    ask = None
                    if session is not None:
                        ask = {**session, "op": "session", "id": f"prepare-{slot}", "pin": pin}
                        child.send(ask)
                except (ChildDied, OSError) as exc:
                    out[str(slot)] = {"error": f"worker process {slot} could not start: {exc}", "type": "ChildDied"}
                    continue
                flight.append((child, ask))
            if flight:
                child, ask = flight.pop(0)
                out[str(child.slot)] = self._opened(child, ask)
        self.notice_deaths("while worker processes started")
        return {"slots": out}

    def _opened(self, child: Child, ask: dict | None) -> dict[str, Any]:
        """Wait for ``child``'s answer to the session request ``ask``."""
        if ask is not None:
            try:
                reply = child.reply_to(ask, "while it collected the tests")
            except (ChildDied, OSError) as exc:
                self.gone[child.slot] = str(exc)
                return {"error": str(exc), "type": "ChildDied"}
            if not reply.get("ok", True):
                error = reply.get("error") or {}
                self.by_slot[child.slot] = child
                return {"error": error.get("message", "pytest could not start"),
                        "type": error.get("type", "RuntimeError"), "pid": child.pid}
        self.by_slot[child.slot] = child
        return {"pid": child.pid, "seconds": round(time.monotonic() - child.started, 6)}

    def forward(self, msg: dict) -> dict:
        """Relay a request for ``proc`` and return the reply to send back."""
        slot = int(msg["proc"])
        child = self.by_slot.get(slot)
        inner = {k: v for k, v in msg.items() if k != "proc"}
        if child is None:
            gone = self.gone.get(slot)
            return {"id": msg.get("id"), "ok": False, "error": {
                "type": "ChildDied", "traceback": "",
                "message": f"worker process {slot} is gone: {gone}" if gone else
                           f"no worker process {slot} here (not started)"}}
        try:
            return child.request(inner)
        except (ChildDied, OSError) as exc:
            self.by_slot.pop(slot, None)
            self.gone[slot] = str(exc)
            self.end_orphans()
            return {"id": msg.get("id"), "ok": False, "error": {
                "type": "ChildDied", "traceback": "", "message": str(exc)}}
        finally:
            what = {"session": "collected the tests", "item": "ran the test"}.get(str(inner.get("op")))
            self.notice_deaths(f"while worker process {slot} {what or 'served ' + repr(inner.get('op'))}")

    def reap(self, msg: dict) -> dict[str, Any]:
        """``reap``: child ``slot`` closed its direct connection (it takes
        no more requests through this worker): wait a moment for it to end,
        end it if it does not, and say why it ended."""
        slot = int(msg["slot"])
        child = self.by_slot.pop(slot, None)
        if child is None:
            return {"message": f"worker process {slot} is gone: {self.gone.get(slot) or 'not started'}"}
        import subprocess  # (loaded by Child already)

        try:
            code = child.proc.wait(timeout=float(msg.get("timeout") or 5.0))
        except subprocess.TimeoutExpired:
            child.proc.kill()
            code = child.proc.wait()
        self.gone[slot] = child.death(code, str(msg.get("when") or ""))
        self.end_orphans()
        return {"message": self.gone[slot]}

    def close(self) -> None:
        for child in self.by_slot.values():
            child.close()
        self.by_slot.clear()
        self.end_orphans()


def connect_direct(path: str, token: str) -> Any:
    """This worker process's own connection to the host (envs/direct.py):
    connected, its token said; the caller switches to it after replying."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        sock.sendall(encode({"token": token}))
    except OSError:
        sock.close()
        raise
    return sock
