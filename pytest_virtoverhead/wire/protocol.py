"""Framing of the worker protocol: JSON messages over any byte stream.

A frame is ``MAGIC + length (4 bytes, big endian) + UTF-8 JSON``. The magic
lets a reader skip bytes that are not protocol traffic (a serial line that
carries boot noise before the worker starts, a stray write to the stream) and
find the next frame. Only JSON crosses the stream: nothing coming from an
environment is unpickled on the host.

This module imports neither pytest nor numpy; the worker uses it inside every
environment.
"""

from __future__ import annotations

import json
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~50 ms in a TCG guest: not at run time
    from typing import Any, Callable

MAGIC = b"\x00VOW1"
_HEADER = struct.Struct(">I")
HEADER_SIZE = len(MAGIC) + _HEADER.size
#: Largest message accepted (64 MiB): a corrupt length must not make a reader
#: wait for gigabytes.
MAX_FRAME = 64 * 1024 * 1024


#: What a request's handler returns when it answers by itself (or not at
#: all): the worker's loop then sends no reply for it.
NO_REPLY = object()


class ProtocolError(Exception):
    """The stream carried something that is not a valid frame."""


class FrameTooLarge(ProtocolError):
    """A message to send would exceed :data:`MAX_FRAME`."""

    def __init__(self, size: int):
        super().__init__(f"message of {size} bytes exceeds {MAX_FRAME}")
        self.size = size


def bound_text(text: str, limit: int, what: str = "text") -> str:
    """``text`` kept to about ``limit`` characters: its first and last
    halves, with a line between them saying how much was cut and why."""
    if len(text) <= limit:
        return text
    half = max(limit // 2, 1)
    cut = len(text) - 2 * half
    return (f"{text[:half]}\n[... pytest-virtoverhead: {cut:,} characters of this {what} cut here; its first and "
            f"last {half:,} are kept: what crosses from an environment to the host is bounded ...]\n{text[-half:]}")


def bound_strings(value: Any, limit: int, what: str = "text") -> Any:
    """``value`` (JSON data) with every string longer than ``limit``
    shortened by :func:`bound_text`."""
    if isinstance(value, str):
        return bound_text(value, limit, what)
    if isinstance(value, list):
        return [bound_strings(x, limit, what) for x in value]
    if isinstance(value, dict):
        return {k: bound_strings(x, limit, what) for k, x in value.items()}
    return value


def encode(message: Any) -> bytes:
    """Return one frame carrying ``message`` (JSON-serialisable)."""
    payload = json.dumps(message, separators=(",", ":"), allow_nan=True).encode()
    if len(payload) > MAX_FRAME:
        raise FrameTooLarge(len(payload))
    return MAGIC + _HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Incremental decoder: feed bytes, get complete messages.

    Bytes before a frame's magic are kept in :attr:`noise` (bounded) so that
    diagnostics can show them.
    """

    NOISE_LIMIT = 16 * 1024

    def __init__(self) -> None:
        self._buf = bytearray()
        self.noise = bytearray()

    def _keep_noise(self, data: bytes) -> None:
        self.noise += data
        if len(self.noise) > self.NOISE_LIMIT:
            del self.noise[: len(self.noise) - self.NOISE_LIMIT]

    def feed(self, data: bytes) -> list[Any]:
        self._buf += data
        out: list[Any] = []
        while True:
            start = self._buf.find(MAGIC)
            if start < 0:
                # Keep a tail that could be the beginning of the magic.
                cut = max(0, len(self._buf) - (len(MAGIC) - 1))
                self._keep_noise(bytes(self._buf[:cut]))
                del self._buf[:cut]
                return out
            if start:
                self._keep_noise(bytes(self._buf[:start]))
                del self._buf[:start]
            if len(self._buf) < HEADER_SIZE:
                return out
            (length,) = _HEADER.unpack_from(self._buf, len(MAGIC))
            if length > MAX_FRAME:
                # Not a real header: skip this magic and resynchronise.
                self._keep_noise(bytes(self._buf[:1]))
                del self._buf[:1]
                continue
            end = HEADER_SIZE + length
            if len(self._buf) < end:
                return out
            payload = bytes(self._buf[HEADER_SIZE:end])
            del self._buf[:end]
            try:
                out.append(json.loads(payload))
            except ValueError as exc:
                raise ProtocolError(f"undecodable frame: {exc}") from None


def read_message(read: Callable[[int], bytes], decoder: FrameDecoder, pending: list[Any]) -> Any:
    """Block until one message is available from ``read``; None at EOF."""
    while not pending:
        data = read(65536)
        if not data:
            return None
        pending.extend(decoder.feed(data))
    return pending.pop(0)
