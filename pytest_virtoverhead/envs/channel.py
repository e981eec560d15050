"""The byte streams to a worker and the request/reply channel over them.

A backend returns a :class:`Transport`; the environment handle wraps it in a
:class:`Channel`, which frames requests, awaits replies with timeouts and
notices a dead worker at once. Imports neither pytest nor any backend library.
"""

from __future__ import annotations

import abc
import itertools
import os
import queue
import socket
import threading
import time
from typing import Any

from ..wire.protocol import FrameDecoder, ProtocolError, encode
from .errors import EnvError, JobTimeout, RemoteError, WorkerDied


class Transport(abc.ABC):
    """A bidirectional byte stream to one worker."""

    @abc.abstractmethod
    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; ``b""`` at end of stream."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Write all of ``data``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the stream (idempotent)."""


class PipeTransport(Transport):
    """A subprocess's stdout (read) and stdin (write)."""

    def __init__(self, rfile: Any, wfile: Any):
        self._r, self._w = rfile, wfile

    def read(self, n: int) -> bytes:
        try:
            return os.read(self._r.fileno(), n)
        except (OSError, ValueError):
            return b""

    def write(self, data: bytes) -> None:
        self._w.write(data)
        self._w.flush()

    def close(self) -> None:
        for f in (self._w, self._r):
            try:
                f.close()
            except OSError:
                pass


class SocketTransport(Transport):
    """A connected stream socket (unix socket, attach socket)."""

    def __init__(self, sock: socket.socket):
        self._sock = sock

    def read(self, n: int) -> bytes:
        try:
            return self._sock.recv(n)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        self._sock.sendall(data)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


_EOF = object()


class Channel:
    """Requests and replies over a transport, with timeouts.

    A reader thread decodes frames into a queue, so a reply can be awaited
    with a timeout whatever the transport, and the end of the stream (a dead
    worker) is noticed at once.
    """

    def __init__(self, transport: Transport, env_name: str):
        self.transport = transport
        self.env_name = env_name
        self._decoder = FrameDecoder()
        self._queue: "queue.Queue[Any]" = queue.Queue()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.closed = False
        self.eof = False
        #: Id of a request sent whose reply has not been taken: set while a
        #: job runs, and left set when its wait was abandoned (a timeout, a
        #: Ctrl-C), since the worker may still be running it.
        self.pending: int | None = None
        self._thread = threading.Thread(target=self._reader, name=f"virt-reader-{env_name}", daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        try:
            while True:
                data = self.transport.read(65536)
                if not data:
                    break
                for msg in self._decoder.feed(data):
                    self._queue.put(msg)
        except (ProtocolError, OSError, ValueError) as exc:
            self._queue.put({"event": "protocol-error", "message": str(exc)})
        finally:
            self.eof = True
            self._queue.put(_EOF)

    @property
    def noise(self) -> str:
        """Bytes seen on the stream outside frames (boot messages, stray output)."""
        return bytes(self._decoder.noise).decode("utf-8", "replace")

    def _next(self, deadline: float | None) -> Any:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None

    def wait_event(self, event: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self._next(deadline)
            except TimeoutError:
                raise JobTimeout(f"worker in {self.env_name!r} did not say {event!r} within {timeout:g} s") from None
            if msg is _EOF:
                self._queue.put(_EOF)
                raise WorkerDied(f"worker in {self.env_name!r} exited before saying {event!r}")
            if msg.get("event") == event:
                return msg

    def request(self, op: str, timeout: float | None = None, **fields: Any) -> Any:
        """Send one request and return its result (raise on error)."""
        __tracebackhide__ = True  # pytest shows the caller's line and the remote traceback, not this
        with self._lock:
            if self.eof:
                raise WorkerDied(f"worker in {self.env_name!r} is gone")
            msg_id = next(self._ids)
            frame = encode({"id": msg_id, "op": op, **fields})
            try:
                self.transport.write(frame)
            except OSError as exc:
                raise WorkerDied(f"cannot write to the worker in {self.env_name!r}: {exc}") from None
            self.pending = msg_id
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                try:
                    msg = self._next(deadline)
                except TimeoutError:
                    raise JobTimeout(
                        f"{op!r} in environment {self.env_name!r} did not finish within {timeout:g} s "
                        "(--virt-timeout); its worker was stopped and a new one serves the next job"
                    ) from None
                if msg is _EOF:
                    self._queue.put(_EOF)
                    raise WorkerDied(f"the worker in environment {self.env_name!r} died during {op!r}")
                if msg.get("event") == "protocol-error":
                    raise EnvError(f"protocol error from {self.env_name!r}: {msg.get('message')}")
                if msg.get("id") != msg_id:
                    continue  # an event or a stale reply
                self.pending = None
                if msg.get("ok"):
                    return msg.get("result")
                raise RemoteError(self.env_name, msg.get("error") or {})

    def close(self) -> None:
        self.closed = True
        self.transport.close()
