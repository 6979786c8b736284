"""
What clients send reaches the container's stdin exactly as sent, however the
frames are cut by reads and whatever mix of messages and control frames
arrives: AttachProtocol reads simple binary frames itself and leaves the
rest to autobahn (csvc/fastpath/frames.py, ``_dataReceived``), or, with the
fast path off, autobahn reads them all.  And output goes out as one message
per chunk, or, when autobahn has to write it (always, with the fast path
off), in messages of at most 64 KiB.  Every test runs both ways.
"""

import os
import struct
from contextlib import contextmanager

import pytest
from hypothesis import given, settings, strategies as st
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from csvc.wire.commands import STDIN_PIECE, stdin_pieces
from csvc.fastpath import SWITCH
from csvc.relay.websocket import MAX_CLIENT_MESSAGE, MAX_FRAME, SUBPROTOCOL, attach_factory


@pytest.fixture(params=["fast", "public"])
def path(request, monkeypatch):
    monkeypatch.setattr(SWITCH, "on", request.param == "fast")
    return request.param


@contextmanager
def fast_path(on):
    before, SWITCH.on = SWITCH.on, on
    try:
        yield
    finally:
        SWITCH.on = before


class Session:
    def start(self):
        pass

    def stop(self):
        pass

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


class Context:
    container_uuid = "c1"
    project_id = "p1"
    stdin = True
    secure = False
    allowed_origins = ()
    raw_only = False
    idle_timeout = None

    def __init__(self):
        self.clock = Clock()
        self.writes = []
        self.resizes = []

    def open_session(self, sink):
        return Session()

    def write_stdin(self, data):
        self.writes.append(data)
        return succeed(None)

    def close_stdin(self):
        self.writes.append(None)
        return succeed(None)

    def resize(self, rows, cols):
        self.resizes.append((rows, cols))
        return succeed(None)

    def opened(self, protocol):
        pass

    def closed(self, protocol):
        pass


def frame(payload, opcode=2, fin=True, mask=None):
    mask = os.urandom(4) if mask is None else mask
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def opened():
    context = Context()
    protocol = attach_factory(context).buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(
        b"GET /v1/attach HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: " + SUBPROTOCOL.encode() + b"\r\n\r\n"
    )
    assert transport.value().startswith(b"HTTP/1.1 101")
    transport.clear()
    return protocol, transport, context


# A stdin message of 0 to ~70,000 bytes (the longest go to autobahn's
# 64-bit-length path; past the limit: see the test below).
stdin_bodies = st.one_of(
    st.binary(min_size=0, max_size=40),
    st.integers(min_value=100, max_value=70000).map(lambda n: os.urandom(n)),
)
messages = st.lists(
    st.one_of(
        stdin_bodies.map(lambda body: ("stdin", body)),
        st.just(("ping", b"")),
        st.just(("fragmented", b"")),
        st.just(("resize", b"")),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=80, deadline=None)
@given(messages=messages, cuts=st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=8), fast=st.booleans())
def test_stdin_arrives_as_sent_however_cut(messages, cuts, fast):
    with fast_path(fast):
        stdin_arrives_as_sent(messages, cuts)


def stdin_arrives_as_sent(messages, cuts):
    protocol, transport, context = opened()
    wire = b""
    expected = []
    for kind, body in messages:
        if kind == "stdin":
            wire += frame(b"\x00" + body)
            if body:
                # Stdin goes to the agent in pieces one Input carries.
                expected.extend(stdin_pieces(body))
        elif kind == "ping":
            wire += frame(b"hi", opcode=9)
        elif kind == "fragmented":
            wire += frame(b"\x00fr", fin=False) + frame(b"ag", opcode=0)
            expected.append(b"frag")
        else:
            wire += frame(b'\x04{"cols": 80, "rows": 24}')
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    for a, b in zip(points, points[1:]):
        protocol.dataReceived(wire[a:b])
    assert context.writes == expected
    assert all(0 < len(data) <= STDIN_PIECE for data in context.writes)
    assert context.resizes == [(24, 80)] * sum(1 for kind, _ in messages if kind == "resize")
    # Every ping answered with its payload (an unmasked pong, 0x8a).
    assert transport.value().count(b"\x8a\x02hi") == sum(1 for kind, _ in messages if kind == "ping")
    assert protocol.state == protocol.STATE_OPEN


def test_a_message_over_the_limit_fails_the_connection_as_autobahn_does(path):
    protocol, transport, context = opened()
    protocol.dataReceived(frame(b"\x00" + b"x" * 10) + frame(b"\x00" + b"y" * MAX_CLIENT_MESSAGE))
    # Only the first reached stdin; autobahn dropped the connection (its
    # failByDrop), as it did before frames were read here.
    assert context.writes == [b"x" * 10]
    assert transport.disconnecting
    assert protocol.state == protocol.STATE_CLOSED


def test_an_unmasked_frame_fails_the_connection(path):
    protocol, transport, context = opened()
    protocol.dataReceived(b"\x82\x02\x00a")
    assert context.writes == []
    assert transport.disconnecting
    assert protocol.state == protocol.STATE_CLOSED


def server_frames(wire):
    """(opcode, fin, payload) of unmasked server frames."""
    frames, i = [], 0
    while i < len(wire):
        b0, b1 = wire[i], wire[i + 1]
        length, i = b1 & 0x7F, i + 2
        if length == 126:
            length, i = struct.unpack_from("!H", wire, i)[0], i + 2
        elif length == 127:
            length, i = struct.unpack_from("!Q", wire, i)[0], i + 8
        frames.append((b0 & 0x0F, bool(b0 & 0x80), wire[i:i + length]))
        i += length
    return frames


def test_output_longer_than_autobahns_limit_is_split_when_autobahn_writes_it(path):
    # Output is written directly in one message per chunk (up to 256 KiB);
    # when it has to go through autobahn's sendMessage (here: fragmentation
    # set), it is cut into messages autobahn accepts, the bytes unchanged.
    protocol, transport, context = opened()
    protocol.autoFragmentSize = 40000
    data = os.urandom(200000)
    protocol.output(1, data)
    frames = server_frames(transport.value())
    assert all(len(payload) <= 40000 for _, _, payload in frames)
    messages, current = [], b""
    for opcode, fin, payload in frames:
        current += payload
        if fin:
            messages.append(current)
            current = b""
    assert all(len(m) <= MAX_CLIENT_MESSAGE and m[:1] == b"\x01" for m in messages)
    assert b"".join(m[1:] for m in messages) == data


def test_output_of_a_whole_chunk_is_one_message_or_frames_of_64_kib(path):
    protocol, transport, context = opened()
    data = os.urandom(256 * 1024)
    protocol.output(2, data)
    frames = server_frames(transport.value())
    if path == "fast":
        assert frames == [(2, True, b"\x02" + data)]
    else:
        assert all(opcode == 2 and fin and len(payload) <= MAX_FRAME and payload[:1] == b"\x02"
                   for opcode, fin, payload in frames)
        assert len(frames) == 5 and b"".join(payload[1:] for _, _, payload in frames) == data


def test_only_the_fast_path_reads_frames_itself(path, monkeypatch):
    protocol, transport, context = opened()
    read = []
    simple_frames = protocol._simple_frames
    monkeypatch.setattr(protocol, "_simple_frames", lambda data: read.append(data) or simple_frames(data))
    protocol.dataReceived(frame(b"\x00ab"))
    assert context.writes == [b"ab"]
    assert bool(read) == (path == "fast")


@pytest.mark.parametrize("body", [
    b'{"cols": Infinity, "rows": 24}',  # Python's JSON takes it; int() overflows
    b'{"cols": 1e400, "rows": 24}',
    b'{"cols": -Infinity, "rows": NaN}',
    b"[" * 100000,  # deep nesting: refused before parsing, no RecursionError
    b'{"cols": 80, "rows": 24, "pad": "' + b"x" * 1000 + b'"}',
    b'{"COLS": 80, "ROWS": 24}',
    b'[80, 24]',
])
def test_a_resize_a_member_crafts_is_refused_on_its_status_channel(path, body):
    protocol, transport, context = opened()
    protocol.dataReceived(frame(b"\x04" + body) + frame(b"\x00ok"))
    assert context.resizes == []
    assert b'"error": "resize takes' in transport.value()
    # The session goes on: the next message still reaches stdin.
    assert context.writes == [b"ok"]
    assert protocol.state == protocol.STATE_OPEN
