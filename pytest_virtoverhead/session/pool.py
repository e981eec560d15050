"""The environments of one host session: started on first use (or all at
once), looked up by name, stopped together - also on SIGTERM or a second
Ctrl-C.

Nothing here imports pytest.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from typing import Any, Iterable

from ..envs import backend_class
from ..envs.base import EnvSpec, RunContext
from ..envs.errors import EnvError, EnvUnavailable
from ..envs.handle import Environment
from .config import Settings
from .events import EnvsStarting, Listener, ignore

#: Longest stop_all() waits for starts in progress (each gives up early
#: when cancelled) before it stops what exists.
START_CANCEL_WAIT = 20.0


class EnvironmentPool:
    """Creates, starts (lazily, in parallel when asked) and stops environments.

    A failure to start is remembered: the next test that needs the same
    environment is skipped at once with the same reason.

    Interrupts: parallel starts run in daemon threads the main thread waits
    for, so Ctrl-C is seen at once; :meth:`stop_all` cancels starts in
    progress and waits for them before it stops everything. While
    environments may be running, SIGTERM raises KeyboardInterrupt (as
    Ctrl-C does), so a terminated session cleans up too. A second Ctrl-C
    during :meth:`stop_all` kills what is left without waiting for workers.
    """

    def __init__(self, settings: Settings, ctx: RunContext):
        self.settings = settings
        self.ctx = ctx
        self._envs: dict[str, Environment] = {}
        self._failed: dict[str, str] = {}
        self._reaped: set[str] = set()
        self._lock = threading.RLock()
        self.reaped: list[str] = []
        self._starting: list[threading.Thread] = []
        self._closing = False
        self._sigterm: Any = None  # the handler replaced while environments run

    def spec_for(self, name: str) -> EnvSpec:
        spec = self.settings.spec(name)
        if spec is not None:
            return spec
        # A fixture named after a kind works even when the run did not list it.
        from ..envs import KINDS

        if name in KINDS:
            return EnvSpec(name, name, dict(self.settings.kind_defaults.get(name, {})))
        raise KeyError(f"unknown environment {name!r}; environments of this run: "
                       f"{', '.join(self.settings.env_names)}")

    def _reap(self, kind: str, cls: Any) -> None:
        if kind in self._reaped:
            return
        self._reaped.add(kind)
        try:
            self.reaped.extend(cls.reap(self.ctx))
        except EnvUnavailable:
            pass  # the start below reports it
        except Exception as exc:  # noqa: BLE001 - reaping is best effort
            self.reaped.append(f"(reaping {kind} failed: {exc})")

    def get(self, name: str) -> Environment:
        """The started environment ``name``; EnvUnavailable if it cannot start."""
        self._arm_sigterm()
        with self._lock:
            if self._closing:
                raise EnvUnavailable(f"environment {name!r} was not started: the session is ending")
            if name in self._failed:
                raise EnvUnavailable(self._failed[name])
            env = self._envs.get(name)
            if env is None:
                spec = self.spec_for(name)
                try:
                    cls = backend_class(spec.kind)
                except ImportError as exc:
                    self._failed[name] = f"{spec.kind} environments need a module that is missing: {exc}"
                    raise EnvUnavailable(self._failed[name]) from None
                self._reap(spec.kind, cls)
                env = Environment(cls(spec, self.ctx))
                env.footprint_on = self.settings.compare
                self._envs[name] = env
        try:
            with self._start_turn(env.kind):
                env.start()
        except EnvUnavailable as exc:
            with self._lock:
                self._failed[name] = str(exc)
            raise
        if self._closing:  # stop_all() ran while this start was in progress
            env.stop(graceful=False)
            raise EnvUnavailable(f"environment {name!r} was stopped: the session is ending")
        return env

    def _start_turn(self, kind: str) -> Any:
        """Under pytest-xdist, a VM waits for the VM start of another worker
        on this host to end before its own: the host side of a start (the
        cached kernel and initramfs built on first use, libvirt, QEMU before
        its threads are pinned) is not confined to the worker's CPU."""
        if kind == "vm" and self.ctx.stagger_vm_starts:
            from .hostlock import start_lock

            return start_lock(kind)
        return contextlib.nullcontext()

    def try_get(self, name: str) -> tuple[Environment | None, str | None]:
        try:
            return self.get(name), None
        except EnvUnavailable as exc:
            return None, str(exc)

    def start_all(self, names: Iterable[str], progress: Listener = ignore) -> dict[str, str]:
        """Start several environments in parallel; return {name: reason} of
        failures. ``progress`` hears which are started (not those already
        running).

        Each start runs in a daemon thread: an interrupt reaches the caller
        at once, and an interpreter leaving never waits for a VM to boot.
        """
        self._arm_sigterm()
        names = [n for n in names if n not in self._failed]
        starting = tuple(n for n in names if n not in self.started())
        if starting:
            progress(EnvsStarting(starting))
        reasons: dict[str, str | None] = {}

        def start(name: str) -> None:
            try:
                reasons[name] = self.try_get(name)[1]
            except Exception as exc:  # noqa: BLE001 - a backend's bug must not end the session
                reasons[name] = f"environment {name!r} could not start: {type(exc).__name__}: {exc}"
                with self._lock:
                    self._failed[name] = reasons[name]

        threads = [threading.Thread(target=start, args=(n,), name=f"virt-start-{n}", daemon=True) for n in names]
        with self._lock:
            self._starting = [t for t in self._starting if t.is_alive()] + threads
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {n: r for n, r in reasons.items() if r}

    def failure(self, name: str) -> str | None:
        return self._failed.get(name)

    def started(self) -> dict[str, Environment]:
        return {n: e for n, e in self._envs.items() if e.start_time is not None}

    def metadata(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for spec in self.settings.specs:
            env = self._envs.get(spec.name)
            if env is not None and env.start_time is not None:
                out[spec.name] = env.metadata
            else:
                out[spec.name] = {"name": spec.name, "kind": spec.kind, "options": dict(spec.options)}
                if spec.name in self._failed:
                    out[spec.name]["unavailable"] = self._failed[spec.name]
        return out

    def stop_all(self) -> None:
        """Stop every environment: cancel starts in progress, wait for them
        (bounded), then stop each one. A KeyboardInterrupt meanwhile (a
        second Ctrl-C) has the rest killed at once; one more propagates."""
        with self._lock:
            self._closing = True
            envs = list(self._envs.values())
            starting = [t for t in self._starting if t.is_alive()]
        for env in envs:
            env.backend.cancelled.set()
        graceful = True
        errors = []
        try:
            try:
                deadline = time.monotonic() + START_CANCEL_WAIT
                for t in starting:
                    t.join(max(0.0, deadline - time.monotonic()))
            except KeyboardInterrupt:
                graceful = False
                _say_interrupted_again()
            with self._lock:
                envs = list(self._envs.values())
            for env in envs:
                try:
                    env.stop(graceful=graceful)
                except KeyboardInterrupt:
                    if not graceful:
                        raise
                    graceful = False
                    _say_interrupted_again()
                    env.stop(graceful=False)
                except Exception as exc:  # noqa: BLE001 - stop every one, report after
                    errors.append(f"{env.name}: {exc}")
        finally:
            self._disarm_sigterm()
        if errors:
            raise EnvError("could not stop every environment: " + "; ".join(errors))

    # -- SIGTERM ------------------------------------------------------------

    def _arm_sigterm(self) -> None:
        """Make SIGTERM raise KeyboardInterrupt while environments may run.

        Only from the main thread, and only where SIGTERM has its default
        action (a handler someone else installed is left alone).
        """
        if self._sigterm is not None or threading.current_thread() is not threading.main_thread():
            return
        try:
            if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
                return
            self._sigterm = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
        except (ValueError, OSError):  # not the main interpreter
            pass

    def _disarm_sigterm(self) -> None:
        if self._sigterm is None or threading.current_thread() is not threading.main_thread():
            return
        try:
            if signal.getsignal(signal.SIGTERM) is _sigterm_to_interrupt:
                signal.signal(signal.SIGTERM, self._sigterm)
        except (ValueError, OSError):
            pass
        self._sigterm = None


def _sigterm_to_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt("terminated (SIGTERM)")


def _say_interrupted_again() -> None:
    sys.stderr.write("\npytest-virtoverhead: interrupted again: removing the environments without waiting "
                     "for their workers (once more to leave them to the next session's reaper)\n")
    sys.stderr.flush()
