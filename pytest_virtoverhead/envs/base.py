"""The one protocol every environment follows: :class:`Backend`.

A backend's only job is to start ``python -m pytest_virtoverhead.guest.worker``
somewhere and return a :class:`~.channel.Transport`, a bidirectional byte
stream to it, then to tear everything down in :meth:`Backend.stop`.
Everything else (the request/reply protocol, timeouts, restarts, metadata)
lives once in :mod:`.channel` and :mod:`.handle`. Here too: what a backend is
given (:class:`EnvSpec`, :class:`RunContext`), the labels that mark what it
starts, and the host environment variables a worker is given.

This module imports neither pytest nor numpy nor any backend library.
"""

from __future__ import annotations

import abc
import os
import re
import socket
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from .channel import Transport

if TYPE_CHECKING:
    from ..footprint import Reading

LABEL_PREFIX = "io.github.pytest-virtoverhead"
SESSION_LABEL = f"{LABEL_PREFIX}.session"
OWNER_LABEL = f"{LABEL_PREFIX}.owner"
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

#: Environment variables of the host every backend that does not inherit
#: the host's whole environment passes to its worker (see :func:`host_env`).
PASS_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "PYTHONHASHSEED", "PYTHONWARNINGS",
            "VIRTUAL_ENV")


def host_env(*extra: str) -> dict[str, str]:
    """The host's values of :data:`PASS_ENV` and of ``extra`` that are set."""
    return {k: os.environ[k] for k in (*PASS_ENV, *extra) if k in os.environ}


@dataclass(frozen=True)
class EnvSpec:
    """One named environment of a run: ``name=kind`` plus its options."""

    name: str
    kind: str
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass
class RunContext:
    """Facts shared by every environment of one host session."""

    session_id: str
    rootdir: str
    python: str = sys.executable
    #: CPU set every environment is confined to (None: no pinning).
    cpus: tuple[int, ...] | None = None
    memory_mb: int = 1024
    cache_dir: str = ""
    startup_timeout: float = 120.0
    job_timeout: float = 300.0
    owner_pid: int = field(default_factory=os.getpid)
    hostname: str = field(default_factory=socket.gethostname)
    #: A pytest-xdist worker: its VMs start one at a time on the host
    #: (:func:`.hostlock.start_lock`), never two guests booting at once.
    stagger_vm_starts: bool = False

    def host_paths(self) -> list[str]:
        """Host directories an environment mirroring the host must see."""
        candidates = [
            self.rootdir,
            os.getcwd(),
            sys.prefix,
            sys.base_prefix,
            sys.exec_prefix,
            os.path.dirname(os.path.realpath(self.python)),
            os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            *[p for p in sys.path if p],
        ]
        seen: list[str] = []
        for path in candidates:
            path = os.path.realpath(path)
            if os.path.isdir(path) and path not in seen:
                seen.append(path)
        # Drop paths already covered by a parent in the list.
        seen.sort(key=len)
        out: list[str] = []
        for path in seen:
            if not any(path == p or path.startswith(p.rstrip("/") + "/") for p in out):
                out.append(path)
        return out

    def labels(self) -> dict[str, str]:
        return {SESSION_LABEL: self.session_id, OWNER_LABEL: f"{self.hostname}:{self.owner_pid}"}


def owner_alive(owner: str, hostname: str | None = None) -> bool:
    """Is the session owner ``host:pid`` (from a label) still running here?

    Owners on another host are reported alive: never reap what may be theirs.
    """
    host, _, pid = owner.rpartition(":")
    if host != (hostname or socket.gethostname()) or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Backend(abc.ABC):
    """Starts and stops the worker of one environment of one kind."""

    kind: ClassVar[str] = ""
    #: Options a named environment of this kind accepts: name -> help.
    option_help: ClassVar[dict[str, str]] = {}

    def __init__(self, spec: EnvSpec, ctx: RunContext):
        self.spec = spec
        self.ctx = ctx
        #: Set (from another thread) when the session ends while this
        #: environment may be starting: a backend with a long start (a VM
        #: boot) checks it and gives up early.
        self.cancelled = threading.Event()

    @classmethod
    def check_options(cls, options: Mapping[str, str]) -> None:
        unknown = sorted(set(options) - set(cls.option_help))
        if unknown:
            known = ", ".join(sorted(cls.option_help)) or "none"
            raise ValueError(f"unknown option(s) {', '.join(unknown)} for kind {cls.kind!r}; known: {known}")

    def worker_command(self, python: str | None = None, *extra: str) -> list[str]:
        return [python or self.ctx.python, "-m", "pytest_virtoverhead.guest.worker", *extra]

    @abc.abstractmethod
    def start(self) -> Transport:
        """Start the worker; return a stream to it. Raise EnvUnavailable if
        this environment cannot exist here."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the worker and remove everything started (idempotent)."""

    def kill(self) -> None:
        """Like :meth:`stop`, without giving a busy worker time to finish."""
        self.stop()

    def allow_cpus(self, cpus: tuple[int, ...] | None) -> bool:
        """Let the environment's processes run on ``cpus`` for a while (worker
        processes starting side by side on spare CPUs), or, with None, hold
        them to the session's CPUs again. True when processes inside may
        now move onto ``cpus`` (a process on the host always may); a kind
        whose processes cannot leave their CPUs (a VM's vCPUs) says False."""
        return True

    #: The host directory of the environment's direct socket
    #: (:mod:`.direct`), set by the environment handle before :meth:`start`.
    direct_host_dir: str | None = None

    def direct_path(self) -> str | None:
        """Where ``direct_host_dir`` appears inside the environment, for its
        worker processes to connect to the host directly; None where they
        cannot (a kind with its own kernel)."""
        return None

    def metadata(self) -> dict[str, Any]:
        """Facts only the backend knows (runtime, image, acceleration...)."""
        return {}

    def diagnostics(self) -> str:
        """Logs worth showing when something failed (console tail, stderr)."""
        return ""

    #: Whether the worker's own /proc/meminfo is the environment's own view
    #: of its memory (a VM guest's kernel), worth asking for as a footprint.
    guest_view: ClassVar[bool] = False

    def footprint_sample(self) -> dict[str, "Reading"]:
        """What the environment holds on the host now, each reading with its
        source: ``memory`` (bytes), ``memory_peak`` (a kernel high-water
        mark, bytes), ``cpu`` (cumulative CPU seconds of its host
        processes). Cheap (file reads): called after every test item.
        Whatever cannot be read is left out."""
        return {}

    def footprint_storage(self) -> dict[str, "Reading"]:
        """Storage the environment needs on the host, by part (bytes)."""
        return {}

    @classmethod
    def reap(cls, ctx: RunContext) -> list[str]:
        """Remove what dead sessions left behind; return what was removed."""
        return []
