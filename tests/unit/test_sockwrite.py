"""
csvc/fastpath/sockets.py: with the fast path on, writes go straight to the socket when nothing is queued,
and what the socket does not take is queued in order, on real TCP and UNIX
connections.
"""

import os
import socket

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.endpoints import (
    TCP4ClientEndpoint, TCP4ServerEndpoint, UNIXClientEndpoint, UNIXServerEndpoint, connectProtocol,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport

from csvc.fastpath import SWITCH
from csvc.fastpath.sockets import write_now


@pytest.fixture(autouse=True)
def fast_path(monkeypatch):
    # What these tests check is the fast path's (a test below turns it off).
    monkeypatch.setattr(SWITCH, "on", True)


class Collect(Protocol):
    def __init__(self):
        self.data = bytearray()
        self.done = Deferred()

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.done.callback(bytes(self.data))


class Writer(Protocol):
    def __init__(self):
        self.made = Deferred()

    def connectionMade(self):
        self.made.callback(self)


def pattern(n, seed):
    return bytes((seed + i) % 251 for i in range(256)) * (n // 256) + bytes(n % 256)


@pytest_twisted.inlineCallbacks
def _round_trip(server_endpoint, client_endpoint_of):
    collector = Collect()
    port = yield server_endpoint.listen(Factory.forProtocol(lambda: collector))
    try:
        writer = yield connectProtocol(client_endpoint_of(port), Writer())
        yield writer.made
        transport = writer.transport
        # The peer reads nothing until it is connected and the loop turns:
        # 8 MiB cannot all go at once, so most of it is queued.
        pieces = [pattern(3 * 1024 * 1024, 1), b"-", memoryview(pattern(5 * 1024 * 1024, 2)), bytearray(b"tail")]
        expected = b"".join(bytes(p) for p in pieces)
        write_now(transport, pieces)
        queued = len(transport.dataBuffer) - transport.offset + transport._tempDataLen
        assert 0 < queued < len(expected)
        # Queued bytes keep their place before a later write.
        write_now(transport, [b"after"])
        assert transport._tempDataLen == queued + 5
        transport.loseConnection()
        got = yield collector.done
        assert got == expected + b"after"
    finally:
        yield port.stopListening()


def test_tcp_writes_in_order_with_the_rest_queued():
    return _round_trip(
        TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"),
        lambda port: TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port),
    )


def test_unix_writes_in_order_with_the_rest_queued(tmp_path):
    path = os.path.join(tmp_path, "s")
    return _round_trip(UNIXServerEndpoint(reactor, path), lambda port: UNIXClientEndpoint(reactor, path))


@pytest_twisted.inlineCallbacks
def test_a_small_write_leaves_nothing_queued():
    collector = Collect()
    port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory.forProtocol(lambda: collector))
    try:
        writer = yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), Writer())
        yield writer.made
        write_now(writer.transport, [b"ab", memoryview(b"cd")])
        # Sent before the reactor turned: nothing for it to write.
        assert writer.transport._tempDataLen == 0 and writer.transport.dataBuffer == b""
        writer.transport.loseConnection()
        yield collector.done
        assert bytes(collector.data) == b"abcd"
    finally:
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_the_fast_path_off_a_write_is_twisteds_own(monkeypatch):
    monkeypatch.setattr(SWITCH, "on", False)
    collector = Collect()
    port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory.forProtocol(lambda: collector))
    try:
        writer = yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), Writer())
        yield writer.made
        write_now(writer.transport, [b"ab", memoryview(b"cd")])
        # Queued for the reactor's next turn, as ``write`` does.
        assert writer.transport._tempDataLen == 4
        writer.transport.loseConnection()
        yield collector.done
        assert bytes(collector.data) == b"abcd"
    finally:
        yield port.stopListening()


def test_other_transports_get_a_plain_write():
    transport = StringTransport()
    write_now(transport, [b"a", memoryview(b"b"), bytearray(b"c")])
    assert transport.value() == b"abc"


class Lost(Protocol):
    def __init__(self):
        self.lost = Deferred()

    def connectionLost(self, reason):
        self.lost.callback(reason.value)


def adopted():
    """
    One end of a socket pair as a reactor transport (a ``unix.Server``) with
    a ``Lost`` protocol, and the other end as a plain socket.
    """
    a, b = socket.socketpair()
    protocol = Lost()
    reactor.adoptStreamConnection(a.fileno(), socket.AF_UNIX, Factory.forProtocol(lambda: protocol))
    a.close()
    return protocol, b


@pytest_twisted.inlineCallbacks
def test_a_broken_connection_is_left_to_the_transport():
    # The peer is gone before the reactor could notice: sendmsg fails
    # (EPIPE), and the error is the transport's to find and report
    # (connectionLost), not write_now's to raise.
    protocol, b = adopted()
    transport = protocol.transport
    b.close()
    write_now(transport, [b"x" * 1000])
    reason = yield protocol.lost
    assert isinstance(reason, (ConnectionLost, ConnectionDone))


def test_a_transport_that_started_tls_is_not_written_around():
    # startTLS turns a plain tcp.Server/Client into a TLS one (transport.TLS):
    # bytes must go through its TLS layer, never straight to the socket.
    protocol, b = adopted()
    transport = protocol.transport
    written = []
    transport.TLS = True
    transport.write = written.append
    try:
        write_now(transport, [b"secret", b"!"])
        b.setblocking(False)
        try:
            leaked = b.recv(100)
        except BlockingIOError:
            leaked = b""
        assert written == [b"secret!"] and leaked == b""
    finally:
        del transport.write
        transport.TLS = False
        transport.loseConnection()
        b.close()
