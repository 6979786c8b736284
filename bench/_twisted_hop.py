#!/usr/bin/env python
"""
One hop of a relay that only copies, in Python on Twisted: what the floors
of bench/attach_throughput.py and bench/echo_latency.py chain in front of
the engine's socket beside socat (bench/_service.py ``Hops``).

    .venv/bin/python bench/_twisted_hop.py LISTEN_PATH CONNECT_PATH [--buffer N]

Each connection to the UNIX socket LISTEN_PATH gets its own connection to
CONNECT_PATH; bytes are copied both ways as they are read, each side the
other's streaming producer (backpressure), reads of up to ``--buffer``
bytes (the relay's 256 KiB), half-closes passed on.  Writes go out at once
with ``csvc.fastpath.sockets.write_now``, as the relay's do (Twisted's own
``transport.write`` waits for the reactor's next turn), and the process is
tuned as the services are (``csvc.process.tune``).  Nothing else: no
framing, no persistence, no WebSocket; the code a relay on csvc's stack
cannot do with less.
"""

import argparse
import os

from twisted.internet import reactor
from twisted.internet.endpoints import UNIXClientEndpoint, UNIXServerEndpoint, connectProtocol
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from csvc.process import tune
from csvc.fastpath.sockets import write_now


@implementer(IHalfCloseableProtocol)
class Side(Protocol):
    """
    One end of a copy; ``peer`` is the other end, once it is connected.
    """

    def __init__(self, buffer):
        self.buffer = buffer
        self.peer = None

    def connectionMade(self):
        self.transport.bufferSize = self.buffer

    def pair(self, peer):
        self.peer = peer
        # What the peer reads is written here: pause it while this side's
        # buffer is full.
        self.transport.registerProducer(peer.transport, True)

    def dataReceived(self, data):
        # Never before ``pair``: the downstream side reads nothing until its
        # upstream is connected, and the upstream side is paired in the same
        # call that connects it.
        write_now(self.peer.transport, [data])

    def readConnectionLost(self):
        if self.peer is not None:
            self.peer.transport.loseWriteConnection()

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        if self.peer is not None:
            self.peer.transport.loseConnection()


class Downstream(Side):
    """
    A connection to LISTEN_PATH: dials CONNECT_PATH and pairs the two.
    """

    def connectionMade(self):
        super().connectionMade()
        # Nothing is read until there is somewhere to write it.
        self.transport.pauseProducing()
        upstream = Side(self.buffer)
        d = connectProtocol(UNIXClientEndpoint(reactor, self.factory.connect), upstream)

        def connected(_):
            self.pair(upstream)
            upstream.pair(self)
            self.transport.resumeProducing()

        d.addCallbacks(connected, lambda _: self.transport.loseConnection())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("listen")
    parser.add_argument("connect")
    parser.add_argument("--buffer", type=int, default=256 * 1024)
    args = parser.parse_args()
    if os.path.exists(args.listen):
        os.unlink(args.listen)
    factory = Factory.forProtocol(lambda: Downstream(args.buffer))
    factory.connect = args.connect
    factory.noisy = False
    UNIXServerEndpoint(reactor, args.listen).listen(factory)
    # The services' own process settings (allocator, GIL switch interval,
    # frozen start-up objects): the same stack in the same trim.
    tune(reactor)
    reactor.run()


if __name__ == "__main__":
    main()
