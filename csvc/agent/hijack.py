"""
Docker's hijacked HTTP streams (attach, exec start): one request, a
``101 UPGRADED`` answer, then the raw connection carries the stream both ways.
Twisted's HTTP client does not hand a connection over after a 101, so this
small protocol writes the request, reads the answer's head, and from then on
gives the connection to a delegate protocol.
"""

import json

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from csvc.wire.commands import EngineError, NoSuchContainer

#: Largest answer head accepted before the stream.
MAX_HEAD = 64 * 1024

#: Bytes read from the engine at once (Twisted's default is 64 KiB): output
#: that piled up while the agent was busy comes in fewer, larger reads.
READ_SIZE = 256 * 1024


@implementer(IHalfCloseableProtocol)
class HijackedStream(Protocol):
    """
    ``ready`` fires once the engine answered 101 (the delegate then has the
    transport); it fails with the engine's error otherwise.
    """

    def __init__(self, method, path, body, delegate):
        self._request = self._format(method, path, body)
        self._delegate = delegate
        self._head = b""
        self._upgraded = False
        self.ready = Deferred()

    @staticmethod
    def _format(method, path, body):
        payload = json.dumps(body).encode() if body is not None else b""
        lines = [
            f"{method} {path} HTTP/1.1",
            "Host: docker",
            "Connection: Upgrade",
            "Upgrade: tcp",
            f"Content-Length: {len(payload)}",
        ]
        if body is not None:
            lines.append("Content-Type: application/json")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + payload

    def connectionMade(self):
        # Also the write buffer past which stdin's producer is paused: still
        # a bound.
        self.transport.bufferSize = READ_SIZE
        self.transport.write(self._request)

    def dataReceived(self, data):
        if self._upgraded:
            self._delegate.dataReceived(data)
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > MAX_HEAD:
                self._fail(EngineError("the engine's answer head is too large"))
            return
        head, rest = self._head[:end], self._head[end + 4:]
        self._head = b""
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if code not in (101, 200):
            self._fail(_error(code, rest))
            return
        self._upgraded = True
        self._delegate.makeConnection(self.transport)
        self.ready.callback(self)
        if rest:
            self._delegate.dataReceived(rest)

    def _fail(self, exc):
        self.transport.loseConnection()
        if not self.ready.called:
            self.ready.errback(Failure(exc))

    def readConnectionLost(self):
        if self._upgraded and IHalfCloseableProtocol.providedBy(self._delegate):
            self._delegate.readConnectionLost()
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self):
        if self._upgraded and IHalfCloseableProtocol.providedBy(self._delegate):
            self._delegate.writeConnectionLost()

    def connectionLost(self, reason):
        if self._upgraded:
            self._delegate.connectionLost(reason)
        elif not self.ready.called:
            self.ready.errback(Failure(EngineError("the engine closed the connection before answering")))


def _error(code, body):
    # The body may be chunked or partial; take the JSON message if it is there.
    text = body.decode("utf-8", "replace")
    start, end = text.find("{"), text.rfind("}")
    message = text.strip()
    if start >= 0 and end > start:
        try:
            message = json.loads(text[start:end + 1]).get("message", message)
        except ValueError:
            pass
    if code == 404:
        return NoSuchContainer(message)
    return EngineError(f"{code}: {message}")
