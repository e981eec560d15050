"""Direct connections from the host to worker processes that share its kernel.

A request for worker process K normally travels host -> the environment's
worker -> process K and back, and for a container through dockerd and the
container's shim as well: five processes each way, each woken from idle
(docs/performance.md). Where the environment shares the host's kernel
(the bare host, a container), each worker process instead connects, once
its pytest session is open, to a unix socket the host listens on in a
private directory the environment can see (a container gets it as a bind
mount), and from then on takes its requests over that connection. The
environment's worker still starts, watches and reaps the process.

A process proves who it is with a random token it was given through its
environment's worker. Imports neither pytest nor any backend library.
"""

from __future__ import annotations

import atexit
import itertools
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from typing import Any, Callable

from ..wire.protocol import FrameDecoder, ProtocolError, encode
from .errors import EnvError, JobTimeout, RemoteError, WorkerDied

#: Where a container sees the host's directory of the socket.
CONTAINER_PATH = "/.virtoverhead-direct"
#: Set to 1 to send every request through the environment's worker (to
#: compare, or where a security policy refuses the socket).
OFF_VAR = "VIRTOVERHEAD_NO_DIRECT"
SOCKET_NAME = "s"


def enabled() -> bool:
    return os.environ.get(OFF_VAR, "") in ("", "0")


class Listener:
    """The host's listening socket for one environment's worker processes."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix=f"virtoverhead-direct-{os.getpid()}-")
        # Traversable by the container's user (whoever it is), not listable;
        # the socket is writable by all: the token decides who is served.
        os.chmod(self.dir, 0o711)
        self.path = os.path.join(self.dir, SOCKET_NAME)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        os.chmod(self.path, 0o666)
        self._sock.listen(128)
        self._arrived: dict[str, socket.socket] = {}
        self._lock = threading.Lock()
        atexit.register(self.close)

    @staticmethod
    def new_token() -> str:
        return secrets.token_hex(16)

    def take(self, token: str, timeout: float) -> socket.socket:
        """The connection of the process holding ``token`` (connections of
        others that arrive meanwhile are kept for their own ``take``)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while token not in self._arrived:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise JobTimeout(f"no worker process connected with its token within {timeout:g} s")
                self._sock.settimeout(left)
                try:
                    conn, _ = self._sock.accept()
                except socket.timeout:
                    continue
                said = _first_frame(conn, min(left, 5.0))
                if said is not None:
                    self._arrived[said] = conn
                else:
                    conn.close()
            return self._arrived.pop(token)

    def close(self) -> None:
        atexit.unregister(self.close)
        with self._lock:
            for conn in self._arrived.values():
                conn.close()
            self._arrived.clear()
        try:
            self._sock.close()
        except OSError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def _first_frame(conn: socket.socket, timeout: float) -> str | None:
    """The token a new connection announces in its first frame (None: none)."""
    decoder = FrameDecoder()
    conn.settimeout(timeout)
    try:
        while True:
            data = conn.recv(4096)
            if not data:
                return None
            for msg in decoder.feed(data):
                token = msg.get("token") if isinstance(msg, dict) else None
                return str(token) if token else None
    except (OSError, ProtocolError):
        return None


class Links:
    """One environment's direct connections, by worker process slot."""

    def __init__(self, env_name: str):
        self.env_name = env_name
        self.listener: Listener | None = None
        self.by_slot: dict[int, DirectChannel] = {}

    def listen(self) -> str | None:
        """A new listening socket's directory (None: direct connections off)."""
        self.close()
        if enabled():
            try:
                self.listener = Listener()
            except OSError:
                self.listener = None  # (no writable temporary directory): through the worker
        return self.listener.dir if self.listener else None

    def get(self, slot: int) -> DirectChannel | None:
        return self.by_slot.get(slot)

    def wants(self, slot: int) -> bool:
        return self.listener is not None and slot not in self.by_slot

    def link(self, slot: int, where: str, ask: Callable[..., Any], timeout: float) -> None:
        """Ask worker process ``slot`` (``ask``: a request to it through the
        environment's worker) to connect to the socket it sees in directory
        ``where``, and take its connection. A process that cannot (or an
        image's older worker) stays on its pipe."""
        assert self.listener is not None
        token = self.listener.new_token()
        try:
            ask(path=os.path.join(where, SOCKET_NAME), token=token, timeout=timeout)
        except RemoteError:
            return
        self.by_slot[slot] = DirectChannel(self.listener.take(token, timeout), self.env_name, slot)

    def unlink(self, *slots: int) -> None:
        """Close these slots' connections (all without ``slots``): their
        processes end, as at the end of their pipe."""
        for slot in slots or list(self.by_slot):
            link = self.by_slot.pop(slot, None)
            if link is not None:
                link.close()

    @property
    def busy(self) -> bool:
        return any(link.pending is not None for link in self.by_slot.values())

    def close(self) -> None:
        self.unlink()
        if self.listener is not None:
            self.listener.close()
            self.listener = None


class DirectChannel:
    """Requests and replies over one worker process's connection, read in
    the requesting thread (no reader thread between the reply and its
    reader). The same contract as :class:`.channel.Channel`."""

    def __init__(self, sock: socket.socket, env_name: str, slot: int):
        self._sock = sock
        self.env_name = env_name
        self.slot = slot
        self._decoder = FrameDecoder()
        self._frames: list[Any] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.eof = False
        self.pending: int | None = None

    def request(self, op: str, timeout: float | None = None, **fields: Any) -> Any:
        __tracebackhide__ = True
        with self._lock:
            if self.eof:
                raise WorkerDied(f"worker process {self.slot} in {self.env_name!r} is gone")
            msg_id = next(self._ids)
            try:
                self._sock.settimeout(None)
                self._sock.sendall(encode({"id": msg_id, "op": op, **fields}))
            except OSError as exc:
                self.eof = True
                raise WorkerDied(f"cannot write to worker process {self.slot} in {self.env_name!r}: {exc}") from None
            self.pending = msg_id
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                msg = self._next(deadline, op, timeout)
                if not isinstance(msg, dict) or "event" in msg or msg.get("id") != msg_id:
                    continue  # an event or a stale reply
                self.pending = None
                if msg.get("ok"):
                    return msg.get("result")
                raise RemoteError(self.env_name, msg.get("error") or {})

    def _next(self, deadline: float | None, op: str, timeout: float | None) -> Any:
        while not self._frames:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise JobTimeout(
                        f"{op!r} in environment {self.env_name!r} did not finish within {timeout:g} s "
                        "(--virt-timeout); its worker was stopped and a new one serves the next job")
                self._sock.settimeout(left)
            try:
                data = self._sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                data = b""
            if not data:
                self.eof = True
                raise WorkerDied(f"worker process {self.slot} in {self.env_name!r} closed its connection "
                                 f"during {op!r}")
            try:
                self._frames.extend(self._decoder.feed(data))
            except ProtocolError as exc:
                raise EnvError(f"protocol error from {self.env_name!r}: {exc}") from None
        return self._frames.pop(0)

    def close(self) -> None:
        self.eof = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
