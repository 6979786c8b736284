"""
Stdin of any size reaches the process: a WebSocket message or a TCP read
longer than one AMP value (65,535 bytes) goes to the agent as several Input
(or ExecInput) calls of at most ``STDIN_PIECE`` bytes, in order, each sent
within the stdin window, the client paused while the window is full.

The relays' protocols are the real ones; their stdin goes through a real
``FastBoxes`` AMP caller onto a ``StringTransport``, whose boxes are read
back with AMP's own parser and answered one by one.
"""

import os

from hypothesis import given, settings, strategies as st
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols import amp

from csvc.wire import commands
from csvc.wire.commands import STDIN_PIECE, STDIN_WINDOW, stdin_pieces
from csvc.fastpath.boxes import FastBoxes
from csvc.relay.dockerexec import DockerExecStream, ExecState
from csvc.relay.dockerstream import DockerAttachStream
from tests.unit.test_ws_frames import frame, opened

MIB = 1024 * 1024


@settings(max_examples=200, deadline=None)
@given(data=st.one_of(st.binary(max_size=100), st.integers(min_value=0, max_value=5 * STDIN_PIECE).map(os.urandom)))
def test_pieces_are_the_data_in_order_each_within_one_value(data):
    pieces = stdin_pieces(data)
    assert b"".join(pieces) == data
    assert all(len(piece) <= STDIN_PIECE <= commands.AMP_VALUE_MAX for piece in pieces)
    # As few as can be: only the last is short, and none is empty unless
    # the data is.
    assert len(pieces) == max(1, -(-len(data) // STDIN_PIECE))
    assert all(len(piece) == STDIN_PIECE for piece in pieces[:-1])


class Caller(FastBoxes, amp.AMP):
    """
    The control plane's end of an agent link, as far as calls go.
    """

    fast_commands = commands.STREAM_COMMANDS


class Agent:
    """
    The wire to an agent: the Input/ExecInput boxes sent, answered on demand.
    """

    def __init__(self):
        self.link = Caller()
        self.transport = StringTransport()
        self.link.makeConnection(self.transport)
        self.boxes = []

    def sent(self):
        """
        The boxes written since last asked.
        """
        boxes = amp.parseString(self.transport.value())
        self.transport.clear()
        self.boxes.extend(boxes)
        return boxes

    def answer(self, box):
        self.link.dataReceived(amp.AmpBox({b"_answer": box[b"_ask"]}).serialize())


class Containers:
    """
    ``ContainerService``'s stdin calls, each an AMP call on ``agent``'s link.
    """

    def __init__(self, agent):
        self.agent = agent
        self.execs = self

    def write_stdin(self, row, data):
        return self.agent.link.callRemote(commands.Input, uuid=row["uuid"], data=data)

    def close_stdin(self, row):
        return succeed(None)

    def exec_input(self, row, exec_id, data):
        return self.agent.link.callRemote(commands.ExecInput, exec_id=exec_id, data=data)

    def exec_close_input(self, row, exec_id):
        return succeed(None)

    def exec_start(self, row, exec_id, tty):
        return succeed(None)

    # the exec registry
    def claim(self, exec_id, consumer, container_uuid):
        pass

    def discard(self, exec_id):
        pass


def drain(agent, transport, command, data):
    """
    Answer the agent's boxes one at a time until ``data`` has arrived,
    checking the window and the client's pause on the way.
    """
    received = []
    while True:
        boxes = agent.sent()
        outstanding = [b for b in agent.boxes if b.get(b"_answered") is None]
        assert 0 < len(outstanding) <= STDIN_WINDOW or b"".join(received) == data
        # The client is read from only while the window has room.
        if len(outstanding) == STDIN_WINDOW:
            assert transport.producerState == "paused"
        for box in boxes:
            assert box[b"_command"] == command.commandName
            assert 0 < len(box[b"data"]) <= STDIN_PIECE
            received.append(box[b"data"])
        if not outstanding:
            break
        first = outstanding[0]
        first[b"_answered"] = b"1"
        agent.answer(first)
    assert b"".join(received) == data
    assert transport.producerState == "producing"
    return received


def test_a_1_mib_websocket_message_becomes_inputs_in_order_within_the_window():
    protocol, transport, context = opened()
    agent = Agent()
    containers = Containers(agent)
    context.write_stdin = lambda data: containers.write_stdin({"uuid": "c1"}, data)
    data = os.urandom(MIB)
    protocol.dataReceived(frame(b"\x00" + data))
    assert protocol.state == protocol.STATE_OPEN
    received = drain(agent, transport, commands.Input, data)
    assert len(received) == MIB // STDIN_PIECE
    assert all(box[b"uuid"] == b"c1" for box in agent.boxes)


def test_a_raw_websocket_message_of_64_kib_is_two_inputs():
    # Without the channel byte a 65,536-byte message was one value too long.
    protocol, transport, context = opened()
    protocol._channels = False
    agent = Agent()
    containers = Containers(agent)
    context.write_stdin = lambda data: containers.write_stdin({"uuid": "c1"}, data)
    data = os.urandom(65536)
    protocol.dataReceived(frame(data))
    assert drain(agent, transport, commands.Input, data) == [data[:STDIN_PIECE], data[STDIN_PIECE:]]


def attach_stream(agent):
    row = {"uuid": "c1", "interactive": True, "tty": False, "status": "running", "project_id": "p1"}
    stream = DockerAttachStream(Containers(agent), None, None, row, (1, 2), True, 1, Clock())
    transport = StringTransport()
    stream.makeConnection(transport)
    return stream, transport


def test_a_1_mib_tcp_read_of_docker_attach_becomes_inputs_in_order_within_the_window():
    agent = Agent()
    stream, transport = attach_stream(agent)
    data = os.urandom(MIB)
    stream.dataReceived(data)
    drain(agent, transport, commands.Input, data)


def test_docker_attach_reads_of_64_kib_each_in_order():
    agent = Agent()
    stream, transport = attach_stream(agent)
    reads = [os.urandom(65536) for _ in range(6)]
    for read in reads:
        stream.dataReceived(read)
    drain(agent, transport, commands.Input, b"".join(reads))


def test_a_1_mib_tcp_read_of_docker_exec_becomes_exec_inputs_in_order_within_the_window():
    agent = Agent()
    clock = Clock()
    state = ExecState("e1", {"uuid": "c1", "project_id": "p1"}, "p1", {"tty": False, "interactive": True})
    stream = DockerExecStream(Containers(agent), state, clock)
    transport = StringTransport()
    stream.makeConnection(transport)
    clock.advance(1)  # the exec starts
    data = os.urandom(MIB)
    stream.dataReceived(data)
    drain(agent, transport, commands.ExecInput, data)
    assert all(box[b"exec_id"] == b"e1" for box in agent.boxes)
