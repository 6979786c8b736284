"""
Execs on the agent: a second process in a running container, its stdin and
its output on one hijacked engine stream (``POST /exec/{id}/start``).

The output goes to the control plane as ExecOutput boxes through an
``OutputFollower`` (the same bounded window and pause as a container's
output: once a chunk's worth waits for the window the engine stream is not
read, so the process's own pipe blocks), and once the stream has ended and every chunk is
answered, ExecExited carries the exit code the engine reports.
"""

from twisted.internet.defer import fail, inlineCallbacks, succeed
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.logger import Logger
from zope.interface import implementer

from csvc.wire import commands
from csvc.wire.pump import HeldAnswers
from csvc.agent.output import OutputFollower
from csvc.fastpath.sockets import write_now
from csvc.stdio.reader import OutputReader


@implementer(IPushProducer, IHalfCloseableProtocol)
class ExecStream(Protocol):
    """
    The delegate of one exec's hijacked stream: output is handed to
    ``follower``; ``write`` and ``close_input`` are the process's stdin.
    The transport's pause of this producer (its write buffer is full) holds
    the answers to ``write``, which is the stdin window's backpressure.
    """

    def __init__(self, follower):
        self._follower = follower
        # Answers to writes held while the engine's connection is backed
        # up: at most the service's stdin window.
        self._answers = HeldAnswers()
        self._producing = False
        self.input_closed = False
        self.lost = False

    def connectionMade(self):
        self._follower.makeConnection(self.transport)
        self.transport.registerProducer(self, True)
        self._producing = True

    def dataReceived(self, data):
        self._follower.dataReceived(data)

    # -- stdin -------------------------------------------------------------

    def write(self, data):
        """
        Fires once the engine has taken ``data`` (the transport is not
        backed up).  After ``close_input`` writes are dropped.
        """
        if self.lost:
            return fail(commands.NoSuchExec("the exec's stream is closed"))
        if self.input_closed:
            return succeed(None)
        write_now(self.transport, [data])
        return self._answers.answer()

    def close_input(self):
        if self.input_closed or self.lost:
            return
        self.input_closed = True
        self._unregister()
        self.transport.loseWriteConnection()
        self._answers.release()

    def _unregister(self):
        if self._producing:
            self._producing = False
            self.transport.unregisterProducer()

    def pauseProducing(self):
        self._answers.pause()

    def resumeProducing(self):
        self._answers.resume()

    def stopProducing(self):
        pass

    # -- the end -----------------------------------------------------------

    def readConnectionLost(self):
        # The engine sent all of the output: the process is over.
        self._unregister()
        self.transport.loseConnection()

    def writeConnectionLost(self):
        pass

    def abort(self):
        """
        Drop the stream (no one takes the output any more).
        """
        if not self.lost and self.transport is not None:
            self._unregister()
            self.transport.abortConnection()

    def connectionLost(self, reason):
        self.lost = True
        self._producing = False
        self._answers.release(reason)
        self._follower.connectionLost(reason)


class ExecRunner:
    """
    The agent's execs, by engine exec id.  ``call(command, **kwargs)`` sends
    a box to the control plane.
    """

    log = Logger()

    #: Tries and pause while the engine still reports a finished exec as
    #: running, or refuses a resize of an exec that is just starting.
    retries = 100
    retry_delay = 0.05

    def __init__(self, engine, call, clock, window=commands.EXEC_WINDOW):
        self._engine = engine
        self._call = call
        self._clock = clock
        self._window = window
        self._streams = {}

    def create(self, uuid, spec):
        return self._engine.exec_create(uuid, spec)

    @inlineCallbacks
    def start(self, exec_id, tty):
        if exec_id in self._streams:
            raise commands.EngineError(f"exec {exec_id} is already started")

        def send(seq, stream, data, cursor):
            return self._call(commands.ExecOutput, exec_id=exec_id, seq=seq, stream=stream, data=data)

        follower = OutputFollower(send, OutputReader(tty), 0, window=self._window)
        stream = ExecStream(follower)
        follower.done.addCallbacks(
            self._ended, self._failed, callbackArgs=(exec_id, stream), errbackArgs=(exec_id, stream)
        )
        self._streams[exec_id] = stream
        try:
            yield self._engine.exec_start(exec_id, tty, stream)
        except Exception:
            if self._streams.get(exec_id) is stream:
                del self._streams[exec_id]
            raise

    def _stream(self, exec_id):
        stream = self._streams.get(exec_id)
        if stream is None:
            raise commands.NoSuchExec(f"no started exec {exec_id} on this agent")
        return stream

    def write(self, exec_id, data):
        try:
            return self._stream(exec_id).write(data)
        except commands.NoSuchExec:
            return fail()

    def close_input(self, exec_id):
        try:
            self._stream(exec_id).close_input()
        except commands.NoSuchExec:
            return fail()
        return succeed(None)

    @inlineCallbacks
    def resize(self, exec_id, height, width):
        # The engine answers the start before the process runs; a resize
        # right after it may come too early (the docker CLI retries too).
        for attempt in range(self.retries):
            try:
                yield self._engine.exec_resize(exec_id, height, width)
                return
            except commands.EngineError:
                if attempt == self.retries - 1 or exec_id not in self._streams:
                    raise
            yield deferLater(self._clock, self.retry_delay, lambda: None)

    def disconnected(self):
        """
        The link is gone: no one can take the output of any exec.
        """
        streams, self._streams = self._streams, {}
        for stream in streams.values():
            stream.abort()

    # -- the end -----------------------------------------------------------

    @inlineCallbacks
    def _ended(self, last_seq, exec_id, stream):
        if self._streams.get(exec_id) is stream:
            del self._streams[exec_id]
        try:
            exit_code = yield self._exit_code(exec_id)
            yield self._call(commands.ExecExited, exec_id=exec_id, exit_code=exit_code)
        except Exception as exc:
            self.log.info("exit of exec {exec_id} not reported: {why}", exec_id=exec_id, why=str(exc))

    def _failed(self, failure, exec_id, stream):
        if self._streams.get(exec_id) is stream:
            del self._streams[exec_id]
        stream.abort()
        self.log.info(
            "output of exec {exec_id} no longer taken: {why}", exec_id=exec_id, why=failure.getErrorMessage()
        )

    @inlineCallbacks
    def _exit_code(self, exec_id):
        state = None
        for _ in range(self.retries):
            state = yield self._engine.exec_inspect(exec_id)
            if not state["running"] and state["exit_code"] is not None:
                return state["exit_code"]
            yield deferLater(self._clock, self.retry_delay, lambda: None)
        self.log.warn("exec {exec_id} still reported running after its stream ended", exec_id=exec_id)
        return -1
