"""
An interactive exec over the attach WebSocket: the same protocol as a
container's attach (``websocket.AttachProtocol``, channel ``channel.csvc.v1``
or raw), given an ``ExecContext`` whose session takes the exec's output from
its agent (the registry's consumer) instead of the journal, and whose stdin,
close-stdin and resize go to the exec.

The session answers each ExecOutput box only while the client's transport is
not paused, so the agent's window (a few chunks) is all that waits for a slow
client, and the agent stops reading the engine beyond it.
"""

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from csvc.wire.commands import OutputRefused
from csvc.wire.pump import HeldAnswers
from csvc.relay.attach import _TakeOver
from csvc.relay.websocket import attach_factory


@implementer(IPushProducer)
class ExecSession:
    """
    One client's interactive exec.  ``sink`` is the WebSocket protocol
    (``output(stream, data)``, ``finished(exit_code, reason)``).
    """

    log = Logger()

    def __init__(self, context, sink):
        self._context = context
        self._sink = sink
        # ExecOutput answers held while paused: at most the window.
        self._answers = HeldAnswers()
        self._done = False

    # -- life --------------------------------------------------------------

    def start(self):
        context = self._context
        try:
            context.registry.claim(context.exec_id, self, context.container_uuid)
        except Exception as exc:
            self._end(None, str(exc))
            return
        d = context.start_exec()
        d.addErrback(self._start_failed)

    def _start_failed(self, failure):
        self._context.registry.discard(self._context.exec_id)
        self._end(None, f"the exec could not start: {failure.getErrorMessage()}")

    def stop(self):
        """
        The client went away: the exec's output is no longer wanted, and its
        stdin is closed (a shell reading it ends).
        """
        if self._done:
            return
        self._done = True
        self._context.registry.discard(self._context.exec_id)
        self._answers.release(Failure(OutputRefused("the client of the exec went away")))
        self._context.close_stdin().addErrback(lambda _: None)

    def _end(self, exit_code, reason):
        if self._done:
            return
        self._done = True
        self._answers.release()
        self._sink.finished(exit_code, reason)

    # -- consumer (from the registry) --------------------------------------

    def output(self, stream, data):
        if self._done:
            raise OutputRefused("the client of the exec went away")
        self._sink.output(stream, data)
        return self._answers.answer()

    def exited(self, exit_code):
        self._end(exit_code, None)

    def failed(self, exc):
        self._end(None, str(exc))

    # -- producer (of the client's transport) ------------------------------

    def pauseProducing(self):
        self._answers.pause()

    def resumeProducing(self):
        self._answers.resume()

    def stopProducing(self):
        self.stop()


class ExecContext:
    """
    What one exec attach was granted, and the calls its protocol makes.
    Stdin and resize wait until the exec's start is answered (the agent has
    its stream); the protocol keeps the stdin calls within its window, and
    only the newest resize waits.
    """

    throttle = None
    #: Seconds without traffic either way before the relay closes.
    idle_timeout = 3600

    def __init__(self, containers, registry, row, exec_id, tty, stdin, *, clock, secure=False, allowed_origins=(),
                 sessions=None, raw_only=False):
        #: the session's time (its idle timeout)
        self.clock = clock
        # raw_only: raw bytes both ways, no channel subprotocol (Docker's).
        self.raw_only = raw_only
        self.registry = registry
        self.container_uuid = row["uuid"]
        self.project_id = row.get("project_id")
        self.exec_id = exec_id
        self.tty = tty
        self.stdin = stdin
        self.secure = secure
        self.allowed_origins = allowed_origins
        self._containers = containers
        self._row = row
        self._sessions = sessions
        self._started = None  # None: pending; True; or the start's Failure
        self._waiting = []  # [call, Deferred] in arrival order
        self._resize = None  # the pending resize's entry in _waiting

    def open_session(self, sink):
        return ExecSession(self, sink)

    def start_exec(self):
        d = self._containers.exec_start(self._row, self.exec_id, self.tty)
        d.addBoth(self._start_answered)
        return d

    def _start_answered(self, result):
        self._started = True if not isinstance(result, Failure) else result
        waiting, self._waiting = self._waiting, []
        self._resize = None
        for call, d in waiting:
            self._after_start(call).chainDeferred(d)
        return result

    def _after_start(self, call):
        if self._started is True:
            return call()
        if self._started is not None:
            return fail(self._started)
        d = Deferred()
        self._waiting.append([call, d])
        return d

    def write_stdin(self, data):
        return self._after_start(lambda: self._containers.exec_input(self._row, self.exec_id, data))

    def close_stdin(self):
        return self._after_start(lambda: self._containers.exec_close_input(self._row, self.exec_id))

    def resize(self, rows, cols):
        def call():
            return self._containers.exec_resize(self._row, self.exec_id, rows, cols)

        if self._started is None and self._resize is not None:
            # Superseded: only the newest size is worth sending.
            self._resize[0] = lambda: succeed(None)
        d = self._after_start(call)
        if self._started is None:
            self._resize = self._waiting[-1]
        return d

    def opened(self, protocol):
        if self._sessions is not None:
            self._sessions.add(protocol)

    def closed(self, protocol):
        if self._sessions is not None:
            self._sessions.discard(protocol)


def exec_upgrade(relay, containers, registry, request, row, exec_id, tty, stdin, raw_only=False):
    """
    The WebSocket resource that runs one created exec for this request.
    """
    context = ExecContext(
        containers,
        registry,
        row,
        exec_id,
        tty,
        stdin,
        clock=relay.clock,
        secure=request.isSecure(),
        allowed_origins=relay.allowed_origins,
        sessions=relay.sessions,
        raw_only=raw_only,
    )
    return _TakeOver(attach_factory(context))
