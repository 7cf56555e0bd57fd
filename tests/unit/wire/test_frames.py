"""RFC 6455 frames alone: the server's encoder and the parser of client frames."""

import os

import pytest
from hypothesis import given, settings, strategies as st

from conftest import client_frame

from handlers.wire.frames import (
    BINARY, CLOSE, PING, PONG, TEXT, FrameError, FrameParser, close_frame, control_frame, encode_frame, unmask,
)
from handlers.transports.tornado_frames import frame_parser




@pytest.mark.parametrize("size, header", [(5, b"\x81\x05"), (200, b"\x81\x7e\x00\xc8"),
                                          (70000, b"\x81\x7f" + (70000).to_bytes(8, "big"))])
def test_encode_lengths(size, header):
    frame = encode_frame("a" * size)
    assert frame[:len(header)] == header and len(frame) == len(header) + size


def test_encode_binary():
    assert encode_frame(b"\x00\x01") == b"\x82\x02\x00\x01"


def test_unmask_matches_bytewise_xor():
    mask, data = b"\x01\x02\x03\x04", bytes(range(11))
    assert unmask(mask, data) == bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    assert unmask(mask, b"") == b""


def test_several_frames_in_one_read():
    data = client_frame(TEXT, b"42[\"a\"]") + client_frame(BINARY, b"\x00\xff") + client_frame(PING, b"x")
    assert FrameParser(100).feed(data) == [(TEXT, b"42[\"a\"]"), (BINARY, b"\x00\xff"), (PING, b"x")]


def test_byte_by_byte_and_large_lengths():
    payload = os.urandom(70000)
    data = client_frame(BINARY, payload) + client_frame(TEXT, b"x" * 300)
    parser = FrameParser(100_000)
    out = []
    for i in range(0, len(data), 997):
        out += parser.feed(data[i:i + 997])
    assert out == [(BINARY, payload), (TEXT, b"x" * 300)]


def test_fragments_joined_with_control_frames_between():
    data = (client_frame(TEXT, b"hel", fin=False) + client_frame(PING, b"p")
            + client_frame(0, b"lo", fin=False) + client_frame(0, b"!", fin=True))
    assert FrameParser(100).feed(data) == [(PING, b"p"), (TEXT, b"hello!")]


@pytest.mark.parametrize("data, code", [
    (client_frame(TEXT, b"x", masked=False), 1002),
    (client_frame(TEXT, b"x", rsv=0x40), 1002),
    (client_frame(0x3, b"x"), 1002),
    (client_frame(0, b"x"), 1002),
    (client_frame(PING, b"x", fin=False), 1002),
    (client_frame(CLOSE, b"x" * 126), 1002),
    (client_frame(TEXT, b"a", fin=False) + client_frame(TEXT, b"b"), 1002),
    (client_frame(TEXT, b"x" * 101), 1009),
    (client_frame(TEXT, b"x" * 60, fin=False) + client_frame(0, b"x" * 60), 1009),
])
def test_bad_frames(data, code):
    with pytest.raises(FrameError) as caught:
        FrameParser(100).feed(data)
    assert caught.value.code == code


def test_oversize_refused_from_the_header_alone():
    header = bytes((0x82, 0x80 | 127)) + (10**9).to_bytes(8, "big")
    with pytest.raises(FrameError, match="too big"):
        FrameParser(1_000_000).feed(header)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([TEXT, BINARY, PING]), st.binary(max_size=300)), max_size=5),
       st.lists(st.integers(1, 200), max_size=10))
def test_any_split_gives_the_same_messages(frames, cuts):
    frames = [(op, p[:125] if op == PING else p) for op, p in frames]
    data = b"".join(client_frame(op, p) for op, p in frames)
    for parser in (FrameParser(10_000), frame_parser(10_000)):  # the transports' unmasks in C where it can
        out, pos = [], 0
        for cut in cuts:
            out += parser.feed(data[pos:pos + cut])
            pos += cut
        out += parser.feed(data[pos:])
        assert out == frames


def test_a_large_frame_arriving_in_pieces_is_held_until_whole():
    payload = b"x" * 70_000
    data = client_frame(TEXT, payload) + client_frame(PING, b"p")
    parser = FrameParser(100_000)
    assert parser.feed(data[:3]) == []  # not even its length yet
    for pos in range(3, 69_003, 1000):
        assert parser.feed(data[pos:pos + 1000]) == []
    assert parser.feed(data[69_003:]) == [(TEXT, payload), (PING, b"p")]
    assert parser.feed(client_frame(TEXT, b"4")) == [(TEXT, b"4")]  # nothing of it left behind


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=5))
def test_garbage_only_raises_frame_error(chunks):
    parser = FrameParser(1000)
    try:
        for chunk in chunks:
            parser.feed(chunk)
    except FrameError:
        pass


def test_control_frames_stay_within_125_bytes():
    assert control_frame(PONG, b"are you there") == b"\x8a\x0dare you there"
    assert control_frame(PONG, b"x" * 200) == b"\x8a\x7d" + b"x" * 125
    assert close_frame(1000) == b"\x88\x02\x03\xe8"
    long = close_frame(1001, "\u00e9" * 100)  # 200 bytes of UTF-8: cut at a whole character
    assert long[1] == 124 and long[4:].decode("utf-8") == "\u00e9" * 61


@pytest.mark.parametrize("make", [FrameParser, frame_parser])
def test_one_whole_small_frame_read_alone_keeps_every_rule(make):
    assert make(100).feed(client_frame(TEXT, b"42[\"a\"]")) == [(TEXT, b"42[\"a\"]")]
    with pytest.raises(FrameError) as refused:
        make(4).feed(client_frame(TEXT, b"hello"))  # over the limit, however small
    assert refused.value.code == 1009
    parser, frame = make(100), client_frame(TEXT, b"42")
    assert parser.feed(frame[:-1]) == []  # one byte short: held
    assert parser.feed(frame[-1:] + client_frame(TEXT, b"x")) == [(TEXT, b"42"), (TEXT, b"x")]
    assert make(100).feed(client_frame(BINARY, b"42")) == [(BINARY, b"42")]  # not text: the usual way
