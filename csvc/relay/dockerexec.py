"""
``docker exec`` over a hijacked connection: the exec's output from its agent
(through an ``ExecSession``), framed unless TTY; stdin to the exec within a
window; the client's FIN closes the exec's stdin only.

``DockerExecs`` remembers, per exec, what ``GET /exec/{id}/json`` shows
(running, exit code) for a bounded number of recent execs.
"""

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from zope.interface import implementer

from csvc.agents.bounds import NewestPerProject
from csvc.wire.commands import STDIN_WINDOW, stdin_pieces
from csvc.wire.pump import Pump
from csvc.relay.exec_attach import ExecContext
from csvc.stdio.frames import encode_frame


class ExecState:
    def __init__(self, exec_id, row, project_id, spec):
        self.exec_id = exec_id
        self.row = row
        self.project_id = project_id
        self.spec = spec
        self.running = False
        self.exit_code = None
        self.context = None


class DockerExecs:
    """
    What the Docker API knows of the execs it created: of each project its
    newest ``capacity_per_project``, and ``capacity`` in all (beyond, the
    oldest of the project holding the most go first: a project creating
    execs in a loop forgets its own, never another's).
    """

    capacity = 4096
    capacity_per_project = 256

    def __init__(self):
        self._states = {}
        #: The exec ids, by project, oldest first.
        self._bound = NewestPerProject()

    def add(self, state):
        self._states[state.exec_id] = state
        for old in self._bound.add(state.exec_id, state.project_id, self.capacity_per_project, self.capacity):
            del self._states[old]

    def get(self, exec_id, project_id):
        state = self._states.get(exec_id)
        if state is None or state.project_id != project_id:
            return None
        return state


@implementer(IHalfCloseableProtocol)
class DockerExecStream(Protocol):
    log = Logger()

    def __init__(self, containers, state, clock, start_delay=0.05, sessions=None):
        self._containers = containers
        self._state = state
        self._clock = clock
        self._start_delay = start_delay
        self._tty = bool(state.spec.get("tty"))
        self._stdin = bool(state.spec.get("interactive"))
        self._session = None
        self._stdin_pump = None
        self._gone = False
        # The relay's open sessions, counted against the project's quota.
        self._sessions = sessions if sessions is not None else set()
        self.project_id = state.project_id

    def connectionMade(self):
        self._sessions.add(self)
        state = self._state
        state.context = ExecContext(
            self._containers, self._containers.execs, state.row, state.exec_id, self._tty, self._stdin,
            clock=self._clock,
        )
        self._session = state.context.open_session(self)
        self.transport.registerProducer(self._session, True)
        # Stdin's pieces within the window, the client paused while it is full.
        self._stdin_pump = Pump(state.context.write_stdin, self.transport, STDIN_WINDOW)
        # As for attach: the stream starts after the 101 has been read alone.
        self._clock.callLater(self._start_delay, self._start)

    def _start(self):
        if self._gone:
            return
        self._state.running = True
        self._session.start()

    def output(self, stream, data):
        self.transport.write(data if self._tty else encode_frame(stream, data))

    def finished(self, exit_code, reason):
        self._state.running = False
        self._state.exit_code = exit_code if exit_code is not None else 126
        self._state.context = None
        # The exec is over: what stdin waits goes nowhere.
        self._stdin_pump.stop()
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    def dataReceived(self, data):
        if not self._stdin:
            return
        # In pieces one ExecInput carries, each sent within the window.
        self._stdin_pump.feed(stdin_pieces(data))

    def readConnectionLost(self):
        context = self._state.context
        if self._stdin and context is not None:
            self._stdin_pump.end(context.close_stdin)

    def writeConnectionLost(self):
        self.transport.loseConnection()

    def connectionLost(self, reason):
        self._sessions.discard(self)
        self._gone = True
        if self._session is not None:
            self._session.stop()
        self._state.running = False


class DetachedExec:
    """
    The consumer of an exec started with ``Detach``: its output is dropped,
    its exit code kept.  ``on_end`` is called once when it is over (it
    releases the session it holds).
    """

    def __init__(self, state, on_end=None):
        self._state = state
        self._on_end = on_end

    def _ended(self):
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end()

    def output(self, stream, data):
        return None

    def exited(self, exit_code):
        self._state.running = False
        self._state.exit_code = exit_code
        self._ended()

    def failed(self, exc):
        self._state.running = False
        self._state.exit_code = 126
        self._ended()
