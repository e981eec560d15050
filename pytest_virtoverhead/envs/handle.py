"""The environment handle the fixtures return: :class:`Environment` runs
calls, benchmarks and collected test items in its worker over a
:class:`~.channel.Channel`, restarts a worker that died or timed out, and
keeps the environment's metadata and footprint. Functions cross the boundary
by reference, their arguments as JSON (:mod:`.calls`). Imports neither
pytest nor numpy nor any backend library.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, NoReturn

from .. import footprint as footprint_mod
from . import direct
from .base import Backend
from .calls import Measurement, call_fields, check_json, function_ref
from .channel import Channel
from .errors import EnvError, EnvUnavailable, RemoteError, WorkerDied

__all__ = ["Environment", "Measurement", "call_fields", "check_json", "function_ref"]


class Environment:
    """A started (or startable) environment: what the fixtures return."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.spec = backend.spec
        self.name = backend.spec.name
        self.kind = backend.spec.kind
        self.ctx = backend.ctx
        self._channel: Channel | None = None
        self._metadata: dict[str, Any] = {"name": self.name, "kind": self.kind}
        #: {process slot: (nodeids, args)} of the pytest sessions open there.
        self._items: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        #: {process slot: pid} of the processes started by spawn().
        self._procs: dict[int, int] = {}
        #: {process slot: seconds to start it and open its pytest session}.
        self._proc_seconds: dict[int, float] = {}
        self.start_time: float | None = None
        self.starts = 0
        #: What the environment costs the host (footprint.Tracker).
        self.footprint = footprint_mod.Tracker(self.name, self.kind)
        #: Take footprint readings (the pool turns it on for --virt-compare
        #: sessions; a fixture session has no footprint to report).
        self.footprint_on = False
        self._guest_sampled = 0.0
        #: [CPU before, opened at, request seconds] of an open begin_calls() window.
        self._window: list[Any] | None = None
        #: Worker processes' direct connections to the host (:mod:`.direct`).
        self._links = direct.Links(self.name)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Environment {self.name}={self.kind} {state}>"

    @property
    def running(self) -> bool:
        return self._channel is not None and not self._channel.eof

    @property
    def metadata(self) -> dict[str, Any]:
        meta = dict(self._metadata)
        if self._proc_seconds:
            # Seconds each worker process took to start and collect its
            # tests (its pytest session), by slot: a part of the run's cost.
            meta["process_start_seconds"] = {str(k): round(v, 3) for k, v in sorted(self._proc_seconds.items())}
        if self._procs:  # how requests reach each process: its own socket, or the environment's worker
            direct = sorted(slot for slot in self._procs if self._links.get(slot) is not None)
            meta["request_path"] = {"direct": direct, "relay": sorted(set(self._procs) - set(direct))}
        return meta

    # -- life cycle ---------------------------------------------------------

    def start(self) -> "Environment":
        if self.running:
            return self
        self._close_channel()
        if self.backend.cancelled.is_set():
            raise EnvUnavailable(f"environment {self.name!r} was not started: the session is ending")
        t0 = time.monotonic()
        self.backend.direct_host_dir = self._links.listen()
        transport = self.backend.start()
        channel = Channel(transport, self.name)
        self._channel = channel
        try:
            channel.wait_event("ready", self.ctx.startup_timeout)
            facts = channel.request("hello", timeout=self.ctx.startup_timeout, env=self.name)
        except (EnvError, RemoteError) as exc:
            diag = self._diagnostics()
            # A worker that did not say hello will not answer a shutdown
            # request either: waiting for one cost 5-10 s per failed start.
            self.stop(graceful=False)
            raise EnvUnavailable(f"environment {self.name!r} ({self.kind}) started but its worker "
                                 f"did not answer: {exc}\n{diag}".rstrip()) from None
        self.start_time = time.monotonic() - t0
        self.starts += 1
        self._metadata = {"name": self.name, "kind": self.kind, **facts,
                          **self.backend.metadata(), "start_seconds": round(self.start_time, 4)}
        self._items = {}
        self._procs = {}
        self._footprint_start()
        return self

    # -- footprint ------------------------------------------------------------

    #: Seconds between two guest views taken after test items (each is one
    #: request to the worker: ~5-10 ms in a TCG guest, outside measured calls).
    GUEST_EVERY = 10.0

    def _fp_sample(self) -> dict[str, Any]:
        if not self.footprint_on:
            return {}
        try:
            return self.backend.footprint_sample()
        except Exception as exc:  # noqa: BLE001 - a footprint never fails a run
            self.footprint.note_error("sample", exc)
            return {}

    def _fp_guest(self, phase: str) -> None:
        if not self.footprint_on or not self.backend.guest_view or not self.running:
            return
        self._guest_sampled = time.monotonic()
        try:
            # A short timeout: stop() asks for the end view, and a guest that
            # stopped answering must not hold it up (a shutdown gets 5 s).
            # Through _request, so a worker that timed out is replaced.
            view = self._request("call", timeout=5, **call_fields(footprint_mod.guest_memory, (), {}))
            self.footprint.on_guest(view, phase)
        except Exception as exc:  # noqa: BLE001
            self.footprint.note_error("guest view", exc)

    def _footprint_start(self) -> None:
        if not self.footprint_on:
            return
        sample = self._fp_sample()
        try:
            storage = self.backend.footprint_storage()
        except Exception as exc:  # noqa: BLE001
            self.footprint.note_error("storage", exc)
            storage = {}
        self.footprint.on_start(self.start_time or 0.0, sample, storage)
        self._fp_guest("idle")

    def footprint_end(self) -> None:
        """Take the footprint's last readings (once; again after a restart).
        The session calls it before writing its reports; stop() too."""
        if not self.footprint_on or self.start_time is None or self.footprint.ended or not self.running:
            return
        self._fp_guest("end")
        self.footprint.process_starts = [round(v, 4) for v in self._proc_seconds.values()]
        try:
            storage = self.backend.footprint_storage()
            if storage:
                self.footprint.storage = dict(storage)
        except Exception as exc:  # noqa: BLE001
            self.footprint.note_error("storage", exc)
        self.footprint.on_end(self._fp_sample())

    def begin_calls(self) -> None:
        """Open a window of item requests (a round's block): the footprint
        samples the environment once at each end of the window instead of
        around every request (reading a container's cgroup or a process
        tree's /proc files costs ~0.5-1 ms, as much as a request)."""
        if self._window is None:
            cpu = self._fp_sample().get(footprint_mod.CPU)
            self._window = [cpu.value if cpu else None, time.monotonic(), 0.0]

    def end_calls(self) -> None:
        """Close the window :meth:`begin_calls` opened: its requests' wall
        time and the environment's CPU over it count as the calls'."""
        window, self._window = self._window, None
        if window is not None and window[2] > 0:
            self._fp_after_calls(window[0], window[2])

    def _fp_after_calls(self, cpu_before: float | None, wall: float) -> None:
        if not self.footprint_on:
            return
        after = self._fp_sample()
        cpu = after.get(footprint_mod.CPU)
        self.footprint.on_calls(cpu_before, cpu.value if cpu else None, wall)
        self.footprint.on_sample(after)
        if time.monotonic() - self._guest_sampled >= self.GUEST_EVERY:
            self._fp_guest("run")

    def _diagnostics(self) -> str:
        parts = []
        try:
            parts.append(self.backend.diagnostics())
        except Exception as exc:  # noqa: BLE001 - diagnostics must never mask the error
            parts.append(f"(no diagnostics: {exc})")
        if self._channel is not None and self._channel.noise.strip():
            parts.append("stream output outside frames:\n" + self._channel.noise[-4000:])
        return "\n".join(p for p in parts if p)

    def _close_channel(self) -> None:
        self._links.close()
        if self._channel is not None:
            try:
                self._channel.close()
            except OSError:
                pass
        self._channel = None
        self._items = {}
        self._procs = {}

    def stop(self, graceful: bool = True) -> None:
        """Stop the worker and everything the backend started (idempotent).

        The worker is asked to shut down first, unless a job may still be
        running (an interrupted or timed-out request) or ``graceful`` is
        false: then it is killed at once.
        """
        channel = self._channel
        busy = channel is not None and channel.pending is not None
        busy = busy or self._links.busy
        # Worker processes on a direct connection end when it closes (their
        # environment's worker would otherwise wait for them at shutdown).
        self._links.unlink()
        if graceful and not busy:
            self.footprint_end()
        if graceful and not busy and channel is not None and not channel.eof:
            try:
                channel.request("shutdown", timeout=5)
            except (EnvError, RemoteError, OSError):
                pass
        self._close_channel()
        if graceful and not busy:
            self.backend.stop()
        else:
            self.backend.kill()

    def recycle(self) -> None:
        """Throw the worker away; the next job starts a new one."""
        self._close_channel()
        try:
            self.backend.kill()
        except Exception:  # noqa: BLE001
            pass

    def _request(self, op: str, timeout: float | None = None, **fields: Any) -> Any:
        __tracebackhide__ = True
        link = self._links.get(fields.get("proc") or 0)
        if link is not None and self._channel is not None and self._channel.eof:
            # The environment's worker ended since the last request (its
            # processes end with it): as if it had died during this one.
            self._fail(WorkerDied(f"the worker in environment {self.name!r} died during {op!r}"))
        self.start()
        assert self._channel is not None
        timeout = self.ctx.job_timeout if timeout is None else timeout
        if link is not None:
            out = self._request_direct(link, op, timeout, {k: v for k, v in fields.items() if k != "proc"})
            if self._channel is not None and self._channel.eof:  # it ended meanwhile: the reply cannot count
                self._fail(WorkerDied(f"the worker in environment {self.name!r} died during {op!r}"))
            return out
        try:
            return self._channel.request(op, timeout=timeout, **fields)
        except EnvError as exc:
            self._fail(exc)

    def _fail(self, exc: EnvError) -> NoReturn:
        """Raise ``exc`` with the environment's diagnostics, its worker thrown
        away (a dead one reaped first, so they carry its exit status)."""
        __tracebackhide__ = True
        died = isinstance(exc, WorkerDied)
        if died:
            self.recycle()
        exc.diagnostics = exc.diagnostics or self._diagnostics()
        if not died:
            self.recycle()
        raise exc

    def _request_direct(self, link: direct.DirectChannel, op: str, timeout: float, fields: dict[str, Any]) -> Any:
        """A request over worker process ``link.slot``'s own connection. A
        process that closed it ended (or is ended now): its environment's
        worker says why, as it would have had the request gone through it."""
        try:
            return link.request(op, timeout=timeout, **fields)
        except WorkerDied:
            self._links.unlink(link.slot)
            what = {"session": "collected the tests", "item": "ran the test"}.get(op) or f"served {op!r}"
            out = self._request("reap", slot=link.slot, when=f"while worker process {link.slot} {what}",
                                timeout=self.ctx.startup_timeout)
            raise RemoteError(self.name, {"type": "ChildDied", "message": out["message"]}) from None
        except EnvError as exc:
            self._fail(exc)

    def _link(self, slot: int) -> None:
        """Move worker process ``slot`` onto a direct connection to this host
        where the environment allows one (else it stays on its pipe)."""
        where = self.backend.direct_path()
        if where is not None and self._links.wants(slot):
            self._links.link(slot, where, lambda **f: self._request("direct", proc=slot, **f),
                             self.ctx.startup_timeout)

    # -- jobs ---------------------------------------------------------------

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)`` once inside the environment."""
        __tracebackhide__ = True
        return self._request("call", **call_fields(fn, args, kwargs))

    def benchmark(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Measurement:
        """Calibrated, repeated timing of ``fn(*args, **kwargs)`` in the environment."""
        __tracebackhide__ = True
        return self.pedantic(fn, args=args, kwargs=kwargs)

    def pedantic(self, fn: Callable[..., Any], args: tuple = (), kwargs: Mapping[str, Any] | None = None,
                 **options: Any) -> Measurement:
        """Like :meth:`benchmark`, with timing options (``samples``,
        ``warmup``, ``sample_time``, ``gc``, ``max_time``) given explicitly."""
        __tracebackhide__ = True
        opts = {k: v for k, v in options.items() if v is not None}
        result = self._request("bench", **call_fields(fn, args, kwargs or {}), options=opts)
        return Measurement(env=self.name, samples=result["samples"], metadata=self.metadata,
                           loops=result["loops"], details=result)

    def spawn(self, slot: int, env: Mapping[str, str] | None = None) -> int:
        """Start worker process ``slot`` (1, 2, ...) inside this environment,
        a fresh interpreter beside the environment's worker, with extra
        environment variables (e.g. PYTHONHASHSEED); return its pid."""
        t0 = time.monotonic()
        self._links.unlink(slot)
        out = self._request("spawn", slot=slot, env=dict(env or {}), timeout=self.ctx.startup_timeout)
        self._items.pop(slot, None)
        self._procs[slot] = int(out["pid"])
        self._proc_seconds[slot] = time.monotonic() - t0
        return self._procs[slot]

    def prepare(self, slots: Mapping[int, Mapping[str, str]], nodeids: tuple[str, ...],
                args: tuple[str, ...] = (), start_cpus: tuple[int, ...] | None = None) -> dict[int, str]:
        """Start worker processes ``slots`` ({slot: extra environment
        variables}) side by side and open in each the pytest session that
        collects ``nodeids``: what :meth:`spawn` and :meth:`open_items` do
        one process at a time, here at once (on ``start_cpus`` where given,
        each process moving onto the environment's own CPUs when ready).
        Returns {slot: why it failed} for the processes that could not."""
        if not slots:
            return {}
        key = (tuple(nodeids), tuple(args))
        for slot in slots:
            self._links.unlink(slot)  # the process ends: the one that replaces it gets a new connection
            self._items.pop(slot, None)
        session = {"nodeids": list(nodeids), "args": list(args), "rootdir": self.ctx.rootdir}
        timeout = self.ctx.startup_timeout + self.ctx.job_timeout
        widened = bool(start_cpus) and self.backend.allow_cpus(start_cpus)
        try:
            out = self._request("prepare", slots={str(k): dict(v) for k, v in slots.items()}, session=session,
                                start_cpus=list(start_cpus) if widened and start_cpus else None,
                                pin_cpus=list(self.ctx.cpus) if widened and self.ctx.cpus else None,
                                timeout=timeout)
        finally:
            if widened:
                self.backend.allow_cpus(None)
        failed: dict[int, str] = {}
        for key_slot, info in (out.get("slots") or {}).items():
            slot = int(key_slot)
            if "error" in info:
                self._procs.pop(slot, None)
                failed[slot] = str(info["error"])
                continue
            self._procs[slot] = int(info["pid"])
            self._items[slot] = key
            self._proc_seconds[slot] = float(info.get("seconds") or 0.0)
            try:
                self._link(slot)
            except EnvError as exc:
                failed[slot] = f"worker process {slot} could not connect to the host: {exc}"
        return failed

    def collect_garbage(self, proc: int = 0) -> None:
        """Run the garbage collector in worker process ``proc`` (a full
        collection costs ~10-40 ms in a process that loaded pytest: done
        before a round, so the round's calls sit next to each other)."""
        self._request("collect", proc=proc)

    @property
    def processes(self) -> dict[int, int]:
        """{slot: pid} of the worker processes started by :meth:`spawn`."""
        return dict(self._procs) if self.running else {}

    def session_key(self, proc: int) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """(nodeids, args) of the pytest session open in process ``proc``, if any."""
        return self._items.get(proc) if self.running else None

    def open_items(self, nodeids: tuple[str, ...], args: tuple[str, ...] = (), *, proc: int = 0) -> None:
        """Open (once) the pytest session of worker process ``proc`` that
        collects ``nodeids`` with pytest ``args``; reopen it after a restart."""
        key = (tuple(nodeids), tuple(args))
        if self._items.get(proc) == key and (self.running or self._links.get(proc)):
            return  # (a direct process whose environment's worker died: its request says so)
        if self._items.get(proc) is not None and self.running:
            self._request("end_session", proc=proc)
        t0 = time.monotonic()
        try:
            self._request("session", nodeids=list(nodeids), args=list(args), rootdir=self.ctx.rootdir,
                          timeout=self.ctx.startup_timeout + self.ctx.job_timeout, proc=proc)
        except RemoteError as exc:
            if exc.type_name == "ChildDied":
                self._procs.pop(proc, None)
                raise WorkerDied(f"worker process {proc} in {self.name!r} is gone: {exc.remote_message}",
                                 diagnostics=self._diagnostics()) from None
            raise EnvError(f"pytest could not start in environment {self.name!r}: {exc.remote_message}",
                           diagnostics=self._diagnostics()) from None
        self._items[proc] = key
        if proc:
            self._link(proc)
        self._proc_seconds[proc] = self._proc_seconds.get(proc, 0.0) + time.monotonic() - t0

    def run_item(self, nodeid: str, nodeids: tuple[str, ...], args: tuple[str, ...] = (), *,
                 proc: int = 0, calls: int = 1, gc: bool = True, reports: bool = False,
                 untimed: bool = False) -> dict[str, Any]:
        """Run a collected test item ``calls`` times inside the environment's
        pytest session in worker process ``proc`` (0: the environment's own
        worker; K: the process started by ``spawn(K)``).

        The session (collecting ``nodeids`` with pytest ``args``) is opened on
        first use in that process and reopened after a worker restart. With
        ``reports``, a passing run's serialized pytest reports come back too
        (a failing run's always do). ``untimed``: a run whose timing nobody
        reads (warm-up, reporting): a pytest-benchmark test calls its
        function once instead of benchmarking it.
        """
        self.open_items(nodeids, args, proc=proc)
        window = self._window
        before = None if window is not None else self._fp_sample().get(footprint_mod.CPU)
        t0 = time.monotonic()
        try:
            extra: dict[str, Any] = {"reports": True} if reports else {}
            if untimed:
                extra["untimed"] = True
            out = self._request("item", nodeid=nodeid, calls=calls, proc=proc, gc=gc, **extra)
            wall = time.monotonic() - t0
            if window is not None:
                window[2] += wall
            else:
                self._fp_after_calls(before.value if before else None, wall)
        except RemoteError as exc:
            if exc.type_name == "ChildDied":
                self._items.pop(proc, None)
                self._procs.pop(proc, None)
                raise WorkerDied(f"the worker process {proc} in environment {self.name!r} died while running "
                                 f"the test: {exc.remote_message}", diagnostics=self._diagnostics()) from None
            raise
        if out.get("fatal"):
            # The process ended its pytest session (KeyboardInterrupt,
            # pytest.exit): the next request opens a new one.
            self._items.pop(proc, None)
        return out
