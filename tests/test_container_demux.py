"""Docker's stdout/stderr multiplexing, parsed from hand-made frames."""

from __future__ import annotations

import socket
import struct

import pytest

from pytest_virtoverhead.envs.container.stream import STDERR, STDOUT, AttachTransport, Demuxer, DemuxError, mux
from pytest_virtoverhead.wire.protocol import FrameDecoder, encode


def frame(stream: int, payload: bytes) -> bytes:
    # Written out by hand rather than with mux(): the test must not trust
    # the code under test to build its input.
    return bytes([stream, 0, 0, 0]) + struct.pack(">I", len(payload)) + payload


def test_mux_matches_docker_layout():
    assert mux(STDOUT, b"hi") == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
    assert mux(STDERR, b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"


def test_whole_frames():
    d = Demuxer()
    data = frame(1, b"out1") + frame(2, b"err") + frame(1, b"out2")
    assert d.feed(data) == [(STDOUT, b"out1"), (STDERR, b"err"), (STDOUT, b"out2")]
    assert d.idle


def test_adjacent_chunks_of_one_stream_are_joined():
    d = Demuxer()
    assert d.feed(frame(1, b"ab") + frame(1, b"cd")) == [(STDOUT, b"abcd")]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 8, 9, 13])
def test_any_split_gives_the_same_bytes(step):
    data = frame(1, b"hello ") + frame(2, b"warning\n") + frame(1, b"") + frame(1, b"world" * 50)
    d = Demuxer()
    got = {STDOUT: b"", STDERR: b""}
    for i in range(0, len(data), step):
        for stream, payload in d.feed(data[i:i + step]):
            got[stream] += payload
    assert got == {STDOUT: b"hello " + b"world" * 50, STDERR: b"warning\n"}
    assert d.idle


def test_partial_payload_is_handed_out_early():
    d = Demuxer()
    data = frame(1, b"0123456789")
    assert d.feed(data[:12]) == [(STDOUT, b"0123")]
    assert not d.idle
    assert d.feed(data[12:]) == [(STDOUT, b"456789")]
    assert d.idle


def test_zero_length_frame():
    d = Demuxer()
    assert d.feed(frame(2, b"")) == []
    assert d.idle


def test_tty_stream_is_rejected():
    with pytest.raises(DemuxError, match="tty"):
        Demuxer().feed(b"plain text from a tty")


def test_transport_separates_protocol_from_stderr():
    host, container = socket.socketpair()
    try:
        t = AttachTransport(host)
        msg = encode({"id": None, "event": "ready", "pid": 1})
        container.sendall(frame(2, b"booting\n") + frame(1, msg[:5]) + frame(2, b"more\n") + frame(1, msg[5:]))
        assert t.wait_output(5)
        got = b""
        while len(got) < len(msg):
            got += t.read(3)
        assert FrameDecoder().feed(got) == [{"id": None, "event": "ready", "pid": 1}]
        assert t.stderr == "booting\nmore\n"
        t.write(b"to stdin")
        assert container.recv(100) == b"to stdin"
        container.close()
        assert t.read(10) == b""
        t.close()
        t.close()  # idempotent
    finally:
        container.close()
        host.close()


def test_transport_wait_output_sees_end_of_stream():
    host, container = socket.socketpair()
    t = AttachTransport(host)
    container.sendall(frame(2, b"virtoverhead-missing: pytest\n"))
    container.close()
    assert t.wait_output(5) is False
    assert "pytest" in t.stderr
    t.close()


def test_transport_wait_output_times_out():
    host, container = socket.socketpair()
    t = AttachTransport(host)
    with pytest.raises(socket.timeout):
        t.wait_output(0.05)
    t.close()
    container.close()
