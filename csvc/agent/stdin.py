"""
Writing a container's stdin: one stdin-only attach per container, opened on
demand, whose transport's pause tells the control plane to hold further
input (the stdin window).
"""

from twisted.internet.defer import succeed
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Protocol
from zope.interface import implementer

from csvc.fastpath.sockets import write_now
from csvc.wire.pump import HeldAnswers


@implementer(IPushProducer, IHalfCloseableProtocol)
class StdinStream(Protocol):
    def __init__(self, on_lost):
        self._on_lost = on_lost
        # Answers to writes held while the engine's connection is backed up.
        self._answers = HeldAnswers()
        self.closed = False

    def connectionMade(self):
        self.transport.registerProducer(self, True)

    def write(self, data):
        """
        Fires once the engine has taken ``data`` off the agent's hands (the
        transport is not backed up).
        """
        if self.closed:
            return succeed(None)
        write_now(self.transport, [data])
        return self._answers.answer()

    def close(self):
        """
        Close the container's stdin (the engine does, for StdinOnce).
        """
        if not self.closed:
            self.closed = True
            self.transport.unregisterProducer()
            self.transport.loseWriteConnection()

    def pauseProducing(self):
        self._answers.pause()

    def resumeProducing(self):
        self._answers.resume()

    def stopProducing(self):
        pass

    def dataReceived(self, data):
        # A stdin-only attach carries nothing back.
        pass

    def readConnectionLost(self):
        self.transport.loseConnection()

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        self.closed = True
        self._answers.release(reason)
        self._on_lost(self)
