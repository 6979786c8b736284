"""
The exec cores without sockets: the control plane's registry and consumers,
and the agent's exec stream.
"""

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.internet.error import ConnectionDone

from csvc.wire.commands import NoSuchExec, OutputRefused
from csvc.agent.execs import ExecStream
from csvc.agent.output import OutputFollower
from csvc.relay.exec_attach import ExecContext, ExecSession
from csvc.agents.execs import CollectedOutput, ExecClaimed, ExecOutputTooLarge, ExecRegistry
from csvc.stdio.frames import encode_frame
from csvc.stdio.reader import OutputReader


class Taker:
    def __init__(self):
        self.chunks = []
        self.exit_code = None
        self.error = None
        self.hold = None

    def output(self, stream, data):
        self.chunks.append((stream, data))
        return self.hold

    def exited(self, exit_code):
        self.exit_code = exit_code

    def failed(self, exc):
        self.error = exc


def test_registry_checks_owner_order_and_window():
    registry = ExecRegistry(window=2)
    registry.register("e1", "c1", "i1", False, False)
    taker = Taker()
    registry.claim("e1", taker)
    with pytest.raises(ExecClaimed):
        registry.claim("e1", Taker())
    with pytest.raises(NoSuchExec):
        registry.get("e1", container_uuid="c2")
    with pytest.raises(OutputRefused):
        registry.output("i2", "e1", 1, 1, b"x")  # another instance
    with pytest.raises(OutputRefused):
        registry.output("i1", "e1", 2, 1, b"x")  # a gap
    taker.hold = Deferred()
    first = registry.output("i1", "e1", 1, 1, b"a")
    registry.output("i1", "e1", 2, 2, b"b")
    with pytest.raises(OutputRefused):
        registry.output("i1", "e1", 3, 1, b"c")  # window full
    taker.hold.callback(None)
    assert first.called
    registry.output("i1", "e1", 3, 1, b"c")
    registry.exited("i1", "e1", 5)
    assert taker.chunks == [(1, b"a"), (2, b"b"), (1, b"c")]
    assert taker.exit_code == 5
    with pytest.raises(OutputRefused):
        registry.exited("i1", "e1", 5)


def test_registry_fails_consumers_of_a_lost_instance_and_bounds_unclaimed():
    registry = ExecRegistry()
    registry.max_unclaimed = 3
    taker = Taker()
    registry.register("e0", "c", "i1", False, False)
    registry.claim("e0", taker)
    for n in range(1, 6):
        registry.register(f"e{n}", "c", "i2", False, True)
    assert len(registry) == 4  # e0 (claimed) and the 3 newest unclaimed
    registry.instance_lost("i1", ConnectionError("gone"))
    assert isinstance(taker.error, ConnectionError)
    assert len(registry) == 3


def test_collected_output_decodes_and_caps():
    abandoned = []
    collected = CollectedOutput(lambda: abandoned.append(True), limit=8)
    collected.output(1, b"ab\xc3")
    collected.output(2, b"\xa9\xff")
    collected.exited(3)
    assert collected.done.result == {"output": "ab\u00e9\ufffd", "exit_code": 3}

    collected = CollectedOutput(lambda: abandoned.append(True), limit=8)
    collected.output(1, b"12345678")
    with pytest.raises(OutputRefused):
        collected.output(1, b"9")
    failure = []
    collected.done.addErrback(failure.append)
    assert failure[0].check(ExecOutputTooLarge)
    assert "8 bytes" in failure[0].getErrorMessage()
    assert abandoned == [True]


def test_collected_output_cancelled_abandons():
    abandoned = []
    collected = CollectedOutput(lambda: abandoned.append(True))
    collected.done.cancel()
    collected.done.addErrback(lambda f: None)
    assert abandoned == [True]
    with pytest.raises(OutputRefused):
        collected.output(1, b"late")


class Sink:
    def __init__(self):
        self.out = []
        self.finished_with = None

    def output(self, stream, data):
        self.out.append((stream, data))

    def finished(self, exit_code, reason):
        self.finished_with = (exit_code, reason)


class Containers:
    def __init__(self):
        self.calls = []
        self.start = Deferred()

    def exec_start(self, row, exec_id, tty):
        self.calls.append(("start", exec_id, tty))
        return self.start

    def exec_input(self, row, exec_id, data):
        self.calls.append(("input", data))
        return succeed(None)

    def exec_close_input(self, row, exec_id):
        self.calls.append(("close",))
        return succeed(None)

    def exec_resize(self, row, exec_id, rows, cols):
        self.calls.append(("resize", rows, cols))
        return succeed(None)


def test_exec_session_holds_answers_while_paused_and_waits_for_the_start():
    registry = ExecRegistry()
    registry.register("e1", "c1", "i1", True, True)
    containers = Containers()
    context = ExecContext(containers, registry, {"uuid": "c1"}, "e1", True, True, clock=Clock())
    sink = Sink()
    session = context.open_session(sink)
    assert isinstance(session, ExecSession)
    session.start()
    context.resize(10, 20)
    context.write_stdin(b"a")
    context.resize(30, 40)  # supersedes the first
    assert containers.calls == [("start", "e1", True)]
    containers.start.callback(None)
    assert containers.calls[1:] == [("input", b"a"), ("resize", 30, 40)]

    assert registry.output("i1", "e1", 1, 1, b"x").called
    session.pauseProducing()
    held = registry.output("i1", "e1", 2, 1, b"y")
    assert not held.called and sink.out == [(1, b"x"), (1, b"y")]
    session.resumeProducing()
    assert held.called
    registry.exited("i1", "e1", 0)
    assert sink.finished_with == (0, None)


def test_exec_session_client_gone_refuses_output_and_closes_stdin():
    registry = ExecRegistry()
    registry.register("e1", "c1", "i1", False, True)
    containers = Containers()
    context = ExecContext(containers, registry, {"uuid": "c1"}, "e1", False, True, clock=Clock())
    session = context.open_session(Sink())
    session.start()
    containers.start.callback(None)
    session.stop()
    assert ("close",) in containers.calls
    with pytest.raises(OutputRefused):
        registry.output("i1", "e1", 1, 1, b"x")


class HalfCloseTransport(StringTransport):
    write_closed = False

    def loseWriteConnection(self):
        self.write_closed = True


def test_exec_stream_demultiplexes_windows_and_half_closes():
    sent = []
    answers = []

    def send(seq, stream, data, cursor):
        d = Deferred()
        sent.append((seq, stream, data))
        answers.append(d)
        return d

    follower = OutputFollower(send, OutputReader(False), 0, window=1, chunk_size=6)
    stream = ExecStream(follower)
    transport = HalfCloseTransport()
    stream.makeConnection(transport)
    stream.dataReceived(encode_frame(1, b"out") + encode_frame(2, b"err"))
    assert sent == [(1, 1, b"out")]
    # The window is full, but less than a chunk waits: still read.
    assert transport.producerState == "producing"
    stream.dataReceived(encode_frame(2, b"ERR"))
    assert transport.producerState == "paused"  # a chunk's worth waits
    answers[0].callback(None)
    assert sent[-1] == (2, 2, b"errERR")
    assert transport.producerState == "producing"
    assert stream.write(b"in").called
    assert transport.value() == b"in"
    stream.close_input()
    assert transport.write_closed and stream.input_closed and transport.producer is None
    assert stream.write(b"dropped").called and transport.value() == b"in"
    answers[1].callback(None)
    stream.connectionLost(Failure(ConnectionDone()))
    assert follower.done.result == 2
    with pytest.raises(NoSuchExec):
        stream.write(b"x").result.raiseException()
