"""
The three stdin relays (WebSocket attach, Docker's hijacked attach and exec)
on the one ``Pump``: stdin held until the container runs, the client paused
beyond ``STDIN_HOLD``, the close only after every piece has been answered,
nothing sent after an exec is over.
"""

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from csvc.relay.dockerexec import DockerExecStream, ExecState
from csvc.relay.dockerstream import STDIN_HOLD, DockerAttachStream
from csvc.wire.commands import STDIN_PIECE, STDIN_WINDOW
from tests.unit.test_ws_frames import frame, opened


class Journal:
    def __init__(self):
        self.waiters = []

    def wait_state(self, uuid):
        d = Deferred()
        self.waiters.append(d)
        return d

    def cancel_wait(self, uuid, d):
        if d in self.waiters:
            self.waiters.remove(d)


class Store:
    def __init__(self, status):
        self.status = status

    def get_container(self, uuid):
        return succeed({"uuid": uuid, "status": self.status})


class Containers:
    """
    Stdin calls answered when told.
    """

    def __init__(self):
        self.calls = []
        self.pending = []

    def write_stdin(self, row, data):
        self.calls.append(data)
        d = Deferred()
        self.pending.append(d)
        return d

    def close_stdin(self, row):
        self.calls.append(None)
        return succeed(None)

    def answer_all(self):
        while self.pending:
            self.pending.pop(0).callback(None)


def attach(status, containers, store):
    row = {"uuid": "c1", "interactive": True, "tty": False, "status": status, "project_id": "p1"}
    stream = DockerAttachStream(containers, Journal(), store, row, (1, 2), True, 1, Clock())
    transport = StringTransport()
    stream.makeConnection(transport)
    return stream, transport


def test_docker_attach_holds_stdin_until_the_container_runs_pausing_beyond_the_hold():
    containers, store = Containers(), Store("created")
    stream, transport = attach("created", containers, store)
    piece = b"x" * STDIN_PIECE
    reads = STDIN_HOLD // STDIN_PIECE
    for _ in range(reads):
        stream.dataReceived(piece)
    # Up to the hold, waiting and still reading the client.
    assert containers.calls == [] and transport.producerState == "producing"
    stream.dataReceived(b"y")
    assert transport.producerState == "paused"
    stream.readConnectionLost()
    # It runs: the window's worth goes, the rest in order as answered, then
    # the close, once every piece has been answered.
    store.status = "running"
    stream._journal.waiters[0].callback(None)
    assert len(containers.calls) == STDIN_WINDOW
    while containers.pending:
        containers.pending.pop(0).callback(None)
    assert containers.calls == [piece] * reads + [b"y", None]
    assert transport.producerState == "producing"


def test_docker_attach_drops_held_stdin_of_a_container_that_is_gone():
    containers, store = Containers(), Store("created")
    stream, transport = attach("created", containers, store)
    stream.dataReceived(b"x" * (STDIN_HOLD + 1))
    assert transport.producerState == "paused"
    store.status = "deleting"
    stream._journal.waiters[0].callback(None)
    assert containers.calls == [] and transport.producerState == "producing"


def test_docker_attach_closes_stdin_after_the_last_answer():
    containers = Containers()
    stream, transport = attach("running", containers, Store("running"))
    stream.dataReceived(b"abc")
    stream.readConnectionLost()
    assert containers.calls == [b"abc"]
    containers.answer_all()
    assert containers.calls == [b"abc", None]


def test_websocket_close_channel_closes_after_the_writes_and_drops_later_stdin():
    protocol, transport, context = opened()
    pending = []

    def write_stdin(data):
        context.writes.append(data)
        d = Deferred()
        pending.append(d)
        return d

    context.write_stdin = write_stdin
    protocol.dataReceived(frame(b"\x00abc"))
    protocol.dataReceived(frame(b"\xff"))
    protocol.dataReceived(frame(b"\x00late"))
    assert context.writes == [b"abc"]
    pending.pop().callback(None)
    assert context.writes == [b"abc", None]


class ExecContainers(Containers):
    """
    ``ContainerService``'s exec calls and the exec registry.
    """

    def __init__(self):
        super().__init__()
        self.execs = self

    def exec_input(self, row, exec_id, data):
        return self.write_stdin(row, data)

    def exec_close_input(self, row, exec_id):
        return self.close_stdin(row)

    def exec_start(self, row, exec_id, tty):
        return succeed(None)

    def claim(self, exec_id, consumer, container_uuid):
        pass

    def discard(self, exec_id):
        pass


def exec_stream(containers):
    clock = Clock()
    state = ExecState("e1", {"uuid": "c1", "project_id": "p1"}, "p1", {"tty": False, "interactive": True})
    stream = DockerExecStream(containers, state, clock)
    transport = StringTransport()
    stream.makeConnection(transport)
    clock.advance(1)  # the exec starts
    return stream, state, transport


def test_docker_exec_closes_stdin_after_the_last_answer():
    containers = ExecContainers()
    stream, state, transport = exec_stream(containers)
    for _ in range(STDIN_WINDOW):
        stream.dataReceived(b"a")
    assert transport.producerState == "paused"
    stream.readConnectionLost()
    assert None not in containers.calls
    containers.answer_all()
    assert containers.calls == [b"a"] * STDIN_WINDOW + [None]
    assert transport.producerState == "producing"


def test_docker_exec_sends_nothing_once_the_exec_is_over():
    containers = ExecContainers()
    stream, state, transport = exec_stream(containers)
    for _ in range(STDIN_WINDOW + 2):
        stream.dataReceived(b"a")
    stream.finished(0, None)
    containers.answer_all()
    stream.readConnectionLost()
    assert containers.calls == [b"a"] * STDIN_WINDOW
    assert state.exit_code == 0 and not state.running
