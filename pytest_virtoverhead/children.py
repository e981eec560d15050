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

from .protocol import FrameDecoder, encode

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
    except (OSError, AttributeError):
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


def memory_limit_mb() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text) // (1024 * 1024)
    return None


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
        cmd = [sys.executable, "-m", "pytest_virtoverhead.worker", "--cwd", os.getcwd()]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env={**os.environ, **env, PARENT_DEATH_VAR: str(os.getpid())})
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
        self._oom_before: int | None = oom_kills()
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        ready = self._next()
        if ready.get("event") != "ready":
            raise ChildDied(f"worker process {self.slot} did not say ready: {ready!r}")
        self.pid = int(ready.get("pid") or self.proc.pid)

    def _next(self) -> dict:
        while not self._pending:
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                code = self.proc.wait()
                how = f"killed by {signal_name(-code)}" if code < 0 else f"exit status {code}"
                kills = oom_kills()
                if code == -9 and kills is not None and self._oom_before is not None and kills > self._oom_before:
                    limit = memory_limit_mb()
                    where = f" ({limit} MiB, --virt-memory)" if limit else ""
                    raise ChildDied(f"OOM-killed: the environment hit its memory limit{where} and the kernel's "
                                    f"OOM killer ended worker process {self.slot} (pid {self.proc.pid}); "
                                    f"every worker process holds its own copy of the tests' modules: "
                                    f"raise --virt-memory or lower --virt-processes")
                raise ChildDied(f"worker process {self.slot} (pid {self.proc.pid}) exited ({how})")
            self._pending.extend(self._decoder.feed(data))
        return self._pending.pop(0)

    def request(self, msg: dict) -> dict:
        """Send ``msg`` to the child and return its reply frame (events skipped)."""
        self.send(msg)
        return self.reply_to(msg)

    def send(self, msg: dict) -> None:
        self._oom_before = oom_kills()
        self.proc.stdin.write(encode(msg))
        self.proc.stdin.flush()

    def reply_to(self, msg: dict) -> dict:
        while True:
            reply = self._next()
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

    def spawn(self, msg: dict) -> dict[str, Any]:
        """``spawn``: start (or restart) child ``slot`` with extra environment
        variables (``env``, e.g. PYTHONHASHSEED)."""
        slot = int(msg["slot"])
        if slot < 1:
            raise ValueError("child slots start at 1")
        old = self.by_slot.pop(slot, None)
        if old is not None:
            old.close()
        env = {str(k): str(v) for k, v in (msg.get("env") or {}).items()}
        child = Child(slot, env)
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
        its session is open.

        Returns {"slots": {slot: {"pid", "seconds"} or {"error", "type"}}}."""
        pin = msg.get("pin_cpus") or (sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None)
        start = msg.get("start_cpus") or None
        session = msg.get("session")
        slots = [(int(k), {str(a): str(b) for a, b in (v or {}).items()}) for k, v in (msg.get("slots") or {}).items()]
        # As many starting at once as there are CPUs to start on: more would
        # only share them (and thrash their caches) for no gain.
        width = max(1, len(start or pin or [0]))
        out: dict[str, Any] = {}
        flight: list[tuple[Child, dict | None]] = []
        while slots or flight:
            while slots and len(flight) < width:
                slot, env = slots.pop(0)
                old = self.by_slot.pop(slot, None)
                if old is not None:
                    old.close()
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
        return {"slots": out}

    def _opened(self, child: Child, ask: dict | None) -> dict[str, Any]:
        """Wait for ``child``'s answer to the session request ``ask``."""
        if ask is not None:
            try:
                reply = child.reply_to(ask)
            except (ChildDied, OSError) as exc:
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
            return {"id": msg.get("id"), "ok": False, "error": {
                "type": "ChildDied", "traceback": "",
                "message": f"no worker process {slot} here (not started, or it exited)"}}
        try:
            return child.request(inner)
        except (ChildDied, OSError) as exc:
            self.by_slot.pop(slot, None)
            return {"id": msg.get("id"), "ok": False, "error": {
                "type": "ChildDied", "traceback": "", "message": str(exc)}}

    def close(self) -> None:
        for child in self.by_slot.values():
            child.close()
        self.by_slot.clear()
