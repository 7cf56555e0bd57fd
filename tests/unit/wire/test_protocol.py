"""The codec alone: every packet type, payload framing, malformed input."""

import base64
import json

import pytest
from hypothesis import given, settings, strategies as st

from handlers.wire.protocol import (
    ACK, BINARY_ACK, BINARY_EVENT, CLOSE, CONNECT, CONNECT_ERROR, DISCONNECT, EVENT, MESSAGE, NOOP,
    OPEN, PING, PONG, UPGRADE, Decoder, Outgoing, Packet, ProtocolError, decode_engine_packet,
    decode_payload, encode_packet, encode_payload,
)


# -- Engine.IO ---------------------------------------------------------------

@pytest.mark.parametrize("text, kind, data", [
    ("0{\"sid\":\"x\"}", OPEN, "{\"sid\":\"x\"}"),
    ("1", CLOSE, ""),
    ("2", PING, ""),
    ("2probe", PING, "probe"),
    ("3", PONG, ""),
    ("3probe", PONG, "probe"),
    ("4hello", MESSAGE, "hello"),
    ("5", UPGRADE, ""),
    ("6", NOOP, ""),
])
def test_engine_packet_types(text, kind, data):
    assert decode_engine_packet(text) == (kind, data)


def test_binary_frame_is_a_message():
    assert decode_engine_packet(b"\x00\x01\xff") == (MESSAGE, b"\x00\x01\xff")


@pytest.mark.parametrize("bad", ["", "7", "x", "\x1e", "-1"])
def test_engine_packet_malformed(bad):
    with pytest.raises(ProtocolError):
        decode_engine_packet(bad)


def test_payload_round_trip_with_binary():
    packets = ["4hello", "2", b"\x01\x02\x03", "4€"]
    text = encode_payload(packets)
    assert text == "4hello\x1e2\x1eb" + base64.b64encode(b"\x01\x02\x03").decode() + "\x1e4€"
    assert decode_payload(text) == [(MESSAGE, "hello"), (PING, ""), (MESSAGE, b"\x01\x02\x03"), (MESSAGE, "€")]


@pytest.mark.parametrize("bad", ["", "4a\x1e", "\x1e4a", "b!!!notbase64", "bAQ", "9x"])
def test_payload_malformed(bad):
    with pytest.raises(ProtocolError):
        decode_payload(bad)


# -- Socket.IO ---------------------------------------------------------------

@pytest.mark.parametrize("packet, wire", [
    (Packet(CONNECT), "40"),
    (Packet(CONNECT, "/admin", {"token": "t"}), "40/admin,{\"token\":\"t\"}"),
    (Packet(DISCONNECT, "/admin"), "41/admin,"),
    (Packet(EVENT, "/", ["news", {"msg": "hi"}]), "42[\"news\",{\"msg\":\"hi\"}]"),
    (Packet(EVENT, "/admin", ["ping"], 12), "42/admin,12[\"ping\"]"),
    (Packet(ACK, "/", ["pong"], 12), "4312[\"pong\"]"),
    (Packet(CONNECT_ERROR, "/", {"message": "Not authorized"}), "44{\"message\":\"Not authorized\"}"),
])
def test_encode_and_decode_text(packet, wire):
    assert encode_packet(packet) == [wire]
    assert Decoder().feed(wire[1:]) == packet


def test_binary_event_round_trip():
    packet = Packet(EVENT, "/", ["upload", {"file": b"\x00\x01", "more": [b"\x02"]}], 7)
    first, *buffers = encode_packet(packet)
    assert first == ("452-7[\"upload\",{\"file\":{\"_placeholder\":true,\"num\":0},"
                     "\"more\":[{\"_placeholder\":true,\"num\":1}]}]")
    assert buffers == [b"\x00\x01", b"\x02"]
    decoder = Decoder()
    assert decoder.feed(first[1:]) is None
    assert decoder.feed(buffers[0]) is None
    decoded = decoder.feed(buffers[1])
    assert decoded == Packet(BINARY_EVENT, "/", packet.data, 7)


def test_binary_ack_with_namespace():
    first, attachment = encode_packet(Packet(ACK, "/admin", [b"ok"], 3))
    assert first == "461-/admin,3[{\"_placeholder\":true,\"num\":0}]"
    decoder = Decoder()
    decoder.feed(first[1:])
    assert decoder.feed(attachment) == Packet(BINARY_ACK, "/admin", [b"ok"], 3)


@pytest.mark.parametrize("bad", [
    "", "7", "2", "2{}", "2[]", "2[1]", "2\"x\"", "2[\"a\"", "3[]", "312", "312{}",
    "0[1]", "1{}", "4", "5[\"a\"]", "50-[\"a\"]", "599-[\"a\"]", "51-[\"a\",{\"_placeholder\":true,\"num\":3}]x",
    "2" + "9" * 30 + "[\"a\"]", "01[\"a\"]", "2/" + "a" * 300 + ",[\"a\"]",
])
def test_socketio_malformed(bad):
    decoder = Decoder()
    with pytest.raises(ProtocolError):
        decoder.feed(bad)


def test_placeholder_out_of_range():
    decoder = Decoder()
    decoder.feed("51-[\"a\",{\"_placeholder\":true,\"num\":3}]")
    with pytest.raises(ProtocolError):
        decoder.feed(b"x")


def test_unexpected_attachment_and_interleaved_text():
    with pytest.raises(ProtocolError):
        Decoder().feed(b"stray")
    decoder = Decoder()
    decoder.feed("51-[\"a\",{\"_placeholder\":true,\"num\":0}]")
    with pytest.raises(ProtocolError):
        decoder.feed("2[\"b\"]")


def test_attachment_limit():
    with pytest.raises(ProtocolError):
        Decoder(max_attachments=2).feed("53-[\"a\"]")


def test_unserialisable_data_is_a_clear_error():
    with pytest.raises(TypeError, match="cannot send"):
        encode_packet(Packet(EVENT, "/", ["x", object()]))


# -- strict JSON -------------------------------------------------------------

@pytest.mark.parametrize("body", [
    "[\"a\",NaN]", "[\"a\",{\"x\":Infinity}]", "[\"a\",-Infinity]", "[\"a\",1e400]",
    "[\"a\",-1" + "0" * 400 + ".5]",                       # finite text, infinite float
    "[\"a\",\"\\ud800\"]", "[\"a\",{\"\\udfff\":1}]",        # lone surrogates, value and key
    "[\"a\",\"\\ude00\\ud83d\"]",                            # a pair in the wrong order
])
def test_what_is_not_json_is_refused(body):
    with pytest.raises(ProtocolError):
        Decoder().feed("2" + body)


def test_escapes_that_make_valid_strings_are_accepted():
    packet = Decoder().feed("2[\"a\",\"\\ud83d\\ude00\",\"\\u00e9\",\"\\\\ud800\",1.5e3]")
    assert packet.data == ["a", "\U0001F600", "é", "\\ud800", 1500.0]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_sending_nan_or_infinity_fails_at_the_emit(value):
    with pytest.raises(ValueError, match="NaN and Infinity are not JSON"):
        Outgoing.of(Packet(EVENT, "/", ["x", {"v": value}]))


def test_a_lone_surrogate_is_sent_as_an_escape():
    """As JSON.stringify writes it: valid JSON, and the same string once parsed."""
    (text,) = encode_packet(Packet(EVENT, "/", ["x", "cut\ud83d", "é"]))
    assert text == "42[\"x\",\"cut\\ud83d\",\"\\u00e9\"]"
    text.encode("utf-8")
    assert json.loads(text[2:]) == ["x", "cut\ud83d", "é"]
    Outgoing.of(Packet(EVENT, "/", ["x", "\udc00"])).frames  # writable


def test_outgoing_made_by_hand_refuses_what_cannot_be_written():
    with pytest.raises(ValueError, match="lone surrogate"):
        Outgoing(["4\ud800"])
    assert Outgoing(["4é", b"\xff"]).frames


def test_placeholders_only_where_they_mean_an_attachment():
    # a client's own "_placeholder" in a binary packet must be a real one
    decoder = Decoder()
    decoder.feed("51-[\"a\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":false,\"num\":0}]")
    with pytest.raises(ProtocolError):
        decoder.feed(b"x")
    # in a text packet it is only data: it comes back as it was...
    assert Decoder().feed("2[\"a\",{\"_placeholder\":true,\"num\":0}]").data[1] == {"_placeholder": True, "num": 0}
    assert encode_packet(Packet(EVENT, "/", ["a", {"_placeholder": True, "num": 0}])) == \
        ["42[\"a\",{\"_placeholder\":true,\"num\":0}]"]
    # ...unless it would travel with binary data, where receivers would swap it for an attachment
    with pytest.raises(ValueError, match="_placeholder"):
        encode_packet(Packet(EVENT, "/", ["a", {"_placeholder": True, "num": 0}, b"\x01"]))


def test_no_more_attachments_than_socket_io_client_takes():
    assert len(encode_packet(Packet(EVENT, "/", ["a", *[b"x"] * 10]))) == 11
    with pytest.raises(ValueError, match="accepts 10"):
        encode_packet(Packet(EVENT, "/", ["a", *[b"x"] * 11]))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_whatever_is_sent_is_strict_json_and_comes_back_the_same(value):
    """Any text (lone surrogates included) and finite number: what a browser's JSON.parse reads."""
    (text,) = encode_packet(Packet(EVENT, "/", ["e", value]))
    body = text[2:]
    body.encode("utf-8")  # a frame can carry it
    strict = json.loads(body, parse_constant=lambda name: pytest.fail(f"{name} sent"))
    assert strict == ["e", value]


# -- ready forms -------------------------------------------------------------

def test_outgoing_is_encoded_once():
    out = Outgoing.of(Packet(EVENT, "/", ["x", b"\x01"]))
    assert out.frames is out.frames and out.text is out.text
    assert out.frames.startswith(b"\x81") and b"\x82\x01\x01" in out.frames
    assert out.text.endswith("\x1ebAQ==")


# -- hostile input -----------------------------------------------------------

def _decode_all(decoder: Decoder, items) -> None:
    for item in items:
        decoder.feed(item)


wire_text = st.one_of(
    st.text(max_size=60),
    st.builds(lambda t, body: str(t) + body, st.integers(0, 9),
              st.sampled_from(["", "/a,", "1-", "2-/x,", "12", "[\"e\",1]", "{\"a\":1}",
                               "[\"e\",{\"_placeholder\":true,\"num\":0}]", "[", "\"s\""])),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(wire_text, st.binary(max_size=20)), max_size=6))
def test_decoder_only_raises_protocol_error(items):
    try:
        _decode_all(Decoder(), items)
    except ProtocolError:
        pass


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80))
def test_payload_decoder_only_raises_protocol_error(text):
    try:
        decode_payload(text)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=10), st.binary(max_size=10),
                          st.integers(), st.none(), st.booleans()), max_size=4),
       st.sampled_from(["/", "/admin"]), st.one_of(st.none(), st.integers(0, 10**9)))
def test_events_round_trip(args, namespace, ack_id):
    packet = Packet(EVENT, namespace, ["event", *args], ack_id)
    first, *buffers = encode_packet(packet)
    decoder = Decoder()
    result = decoder.feed(first[1:])
    for buffer in buffers:
        result = decoder.feed(buffer)
    assert result.namespace == namespace and result.id == ack_id and result.data == packet.data
