"""Framing: round trips, partial reads, noise before frames."""

import pytest

from pytest_virtoverhead.wire.protocol import MAGIC, FrameDecoder, ProtocolError, encode


def test_round_trip_in_one_piece():
    dec = FrameDecoder()
    data = encode({"op": "hello", "id": 1}) + encode([1, 2.5, "x"])
    assert dec.feed(data) == [{"op": "hello", "id": 1}, [1, 2.5, "x"]]


def test_byte_by_byte():
    dec = FrameDecoder()
    data = encode({"a": "é" * 100})
    out = []
    for i in range(len(data)):
        out += dec.feed(data[i:i + 1])
    assert out == [{"a": "é" * 100}]


def test_noise_before_a_frame_is_skipped_and_kept():
    dec = FrameDecoder()
    out = dec.feed(b"[    0.000] Linux version 6.1\r\nlogin: " + encode({"ok": True}))
    assert out == [{"ok": True}]
    assert b"Linux version" in dec.noise


def test_magic_split_across_reads():
    dec = FrameDecoder()
    frame = encode({"x": 1})
    assert dec.feed(b"junk" + frame[:3]) == []
    assert dec.feed(frame[3:]) == [{"x": 1}]


def test_absurd_length_resynchronises():
    dec = FrameDecoder()
    bogus = MAGIC + b"\xff\xff\xff\xff"
    assert dec.feed(bogus + encode({"y": 2})) == [{"y": 2}]


def test_undecodable_payload_raises():
    dec = FrameDecoder()
    with pytest.raises(ProtocolError):
        dec.feed(MAGIC + (3).to_bytes(4, "big") + b"{{{")
