"""
A container's stream over a hijacked Docker connection (``docker attach``,
``docker run``): output from an ``AttachSession`` (framed unless TTY), stdin
from the client to the agent within the stdin window.

The client's FIN means only "stdin is closed": the container's stdin is
closed once what came before has been delivered, and output keeps flowing
until the process exits; then the connection is closed.  Stdin sent before
the container runs (``echo x | docker run -i``) is held, at most
``STDIN_HOLD`` bytes with the client paused beyond that, and delivered once
it runs.
"""

from twisted.internet.defer import inlineCallbacks
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from zope.interface import implementer

from csvc.compute import states
from csvc.wire.commands import STDIN_WINDOW, stdin_pieces
from csvc.wire.pump import Pump
from csvc.relay.session import AttachSession
from csvc.stdio.frames import encode_frame

STDIN_HOLD = 1024 * 1024


@implementer(IHalfCloseableProtocol)
class DockerAttachStream(Protocol):
    log = Logger()

    def __init__(self, containers, journal, store, row, streams, stdin, next_seq, clock, throttle=None,
                 start_delay=0.05, sessions=None):
        self._containers = containers
        self._journal = journal
        self._store = store
        self._row = row
        self._streams = streams
        self._stdin = stdin and row["interactive"]
        self._next_seq = next_seq
        self._clock = clock
        self._throttle = throttle
        self._start_delay = start_delay
        self._tty = row["tty"]
        self._session = None
        self._stdin_pump = None
        self._running = states.may("input", row["status"])
        self._gone = False
        # The relay's open sessions, counted against the project's quota.
        self._sessions = sessions if sessions is not None else set()
        self.project_id = row["project_id"]

    def connectionMade(self):
        self._sessions.add(self)
        # Stdin's pieces within the window; until the container runs they
        # wait, at most STDIN_HOLD bytes with the client paused beyond.
        self._stdin_pump = Pump(
            self._write_stdin, self.transport, STDIN_WINDOW, hold=STDIN_HOLD, ready=self._running,
            failed=self._stdin_failed,
        )
        # docker-py loses a frame that arrives in the same read as the 101
        # head (docker-py issues 2042, 3332): the stream starts a moment later.
        self._clock.callLater(self._start_delay, self._start)
        if self._stdin and not self._running:
            self._await_running()

    def _start(self):
        if self._gone:
            return
        self._session = AttachSession(
            self._journal, self._store, self._row["uuid"], self._streams, self._next_seq, self,
            throttle=self._throttle,
        )
        self.transport.registerProducer(self._session, True)
        self._session.start()

    # -- output ------------------------------------------------------------

    def output(self, stream, data):
        if self._tty:
            self.transport.write(data)
        else:
            self.transport.write(encode_frame(stream, data))

    def finished(self, exit_code, reason):
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    # -- stdin -------------------------------------------------------------

    def dataReceived(self, data):
        if not self._stdin:
            return
        # A read may be larger than one Input carries (a TCP read is up to
        # 64 KiB): in pieces, each sent within the window.
        self._stdin_pump.feed(stdin_pieces(data))

    def readConnectionLost(self):
        if self._stdin:
            self._stdin_pump.end(self._close_stdin)

    def writeConnectionLost(self):
        self.transport.loseConnection()

    @inlineCallbacks
    def _await_running(self):
        while not self._gone:
            waiter = self._journal.wait_state(self._row["uuid"])
            row = yield self._store.get_container(self._row["uuid"])
            if row is None or row["status"] not in states.LIVE:
                self._journal.cancel_wait(self._row["uuid"], waiter)
                self._stdin_pump.discard()
                return
            if states.may("input", row["status"]):
                self._journal.cancel_wait(self._row["uuid"], waiter)
                self._running = True
                self._stdin_pump.open()
                return
            yield waiter

    def _write_stdin(self, data):
        return self._containers.write_stdin(self._row, data)

    def _stdin_failed(self, failure):
        self.log.info("stdin of {uuid} failed: {why}", uuid=self._row["uuid"], why=failure.getErrorMessage())

    def _close_stdin(self):
        d = self._containers.close_stdin(self._row)
        d.addErrback(lambda f: self.log.info("closing stdin failed: {why}", why=f.getErrorMessage()))
        return d

    def connectionLost(self, reason):
        self._sessions.discard(self)
        self._gone = True
        if self._session is not None:
            self._session.stop()
