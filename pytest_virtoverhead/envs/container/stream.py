"""The byte stream to a worker in a container: Docker's attach socket.

With ``tty=False`` Docker multiplexes the container's stdout and stderr on
the attach socket: every chunk is an 8-byte header (stream type, three zero
bytes, big-endian 32-bit length) followed by that many bytes. Stream 1 is
stdout (the worker's protocol frames), stream 2 is stderr (kept, bounded, for
diagnostics). Writes go to the container's stdin unframed.

Nothing here imports docker: the demultiplexer is unit-tested with
hand-made frames, and the transport needs only a connected socket.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

from ..channel import Transport

STDIN, STDOUT, STDERR = 0, 1, 2
_HEADER = struct.Struct(">BxxxL")
HEADER_SIZE = _HEADER.size


class DemuxError(ValueError):
    """The attach stream does not carry Docker's multiplexing headers."""


class Demuxer:
    """Incremental parser of Docker's multiplexed stream.

    :meth:`feed` takes any slice of the stream and returns the complete or
    partial payloads it carries as ``(stream, bytes)`` pairs: a payload is
    handed out as soon as its bytes arrive, so a large stdout chunk does not
    wait for its last byte before the protocol decoder sees its first.
    """

    def __init__(self) -> None:
        self._header = bytearray()
        self._stream = STDOUT
        self._left = 0  # payload bytes of the current chunk not yet seen

    @property
    def idle(self) -> bool:
        """True between chunks (no partial header or payload pending)."""
        return not self._header and not self._left

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        view = memoryview(data)
        while view:
            if self._left:
                take = min(self._left, len(view))
                self._append(out, self._stream, bytes(view[:take]))
                self._left -= take
                view = view[take:]
                continue
            need = HEADER_SIZE - len(self._header)
            self._header += view[:need]
            view = view[need:]
            if len(self._header) < HEADER_SIZE:
                break
            stream, length = _HEADER.unpack(bytes(self._header))
            if stream not in (STDIN, STDOUT, STDERR) or self._header[1:4] != b"\0\0\0":
                raise DemuxError(
                    f"bad multiplexing header {bytes(self._header)!r}: is the container running with a tty?"
                )
            self._header.clear()
            self._stream, self._left = stream, length
        return out

    @staticmethod
    def _append(out: list[tuple[int, bytes]], stream: int, payload: bytes) -> None:
        if out and out[-1][0] == stream:
            out[-1] = (stream, out[-1][1] + payload)
        else:
            out.append((stream, payload))


def mux(stream: int, payload: bytes) -> bytes:
    """One chunk as Docker frames it (for tests)."""
    return _HEADER.pack(stream, len(payload)) + payload


class AttachTransport(Transport):
    """The worker's stdin/stdout over an attach socket; stderr set aside.

    ``keep`` is the object the docker SDK returned (its socket wrapper); it is
    held so the connection is not closed by garbage collection.
    """

    STDERR_LIMIT = 64 * 1024

    def __init__(self, sock: socket.socket, keep: Any = None):
        self._sock = sock
        self._keep = keep
        self._demux = Demuxer()
        self._out = bytearray()
        self._err = bytearray()
        self._err_lock = threading.Lock()
        self._eof = False
        self._closed = False

    # -- reading ------------------------------------------------------------

    def _pump(self) -> bool:
        """Read once from the socket; False at end of stream."""
        if self._eof:
            return False
        try:
            data = self._sock.recv(65536)
        except socket.timeout:
            raise
        except OSError:
            data = b""
        if not data:
            self._eof = True
            return False
        for stream, payload in self._demux.feed(data):
            if stream == STDERR:
                with self._err_lock:
                    self._err += payload
                    if len(self._err) > self.STDERR_LIMIT:
                        del self._err[: len(self._err) - self.STDERR_LIMIT]
            else:
                self._out += payload
        return True

    def read(self, n: int) -> bytes:
        while not self._out:
            if not self._pump():
                return b""
        chunk = bytes(self._out[:n])
        del self._out[:n]
        return chunk

    def wait_output(self, timeout: float) -> bool:
        """Block until stdout has bytes (True) or the stream ends (False).

        What arrives stays buffered for :meth:`read`. Raises
        ``socket.timeout`` when nothing arrives within ``timeout`` seconds.
        """
        self._sock.settimeout(timeout)
        try:
            while not self._out:
                if not self._pump():
                    return False
            return True
        finally:
            try:
                self._sock.settimeout(None)
            except OSError:
                pass

    @property
    def stderr(self) -> str:
        with self._err_lock:
            return bytes(self._err).decode("utf-8", "replace")

    # -- writing ------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self._sock.sendall(data)

    def close_stdin(self) -> None:
        """Half-close: the worker reads EOF and exits (``StdinOnce``)."""
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass
        keep, self._keep = self._keep, None
        if keep is not None:
            try:
                keep.close()
            except Exception:  # noqa: BLE001 - best effort
                pass
