"""
The one registry of streams agents send (``csvc.agents.streams``), through
both of its kinds, the exec registry and the transfer registry: a box is
taken only from the stream's own instance, in order, within the window,
and its consumer's answer returns the credit.
"""

import pytest
from twisted.internet.defer import Deferred

from csvc.agents.execs import ExecRegistry
from csvc.agents.transfers import TransferRegistry
from csvc.wire.commands import OutputRefused


class Consumer:
    def __init__(self):
        self.taken = []
        self.pending = []
        self.lost = []

    def output(self, *args):
        self.taken.append(args[-1])
        d = Deferred()
        self.pending.append(d)
        return d

    def failed(self, exc):
        self.lost.append(exc)


def exec_kind(window):
    registry = ExecRegistry(window=window)
    consumer = Consumer()
    registry.register("e1", "c1", "i1", False, True, "p1")
    registry.claim("e1", consumer)

    def send(instance, seq, data):
        return registry.output(instance, "e1", seq, 1, data)

    return registry, consumer, send


def transfer_kind(window):
    registry = TransferRegistry(window=window)
    consumer = Consumer()
    transfer_id = registry.register("i1", consumer, "p1")

    def send(instance, seq, data):
        return registry.chunk(instance, transfer_id, seq, data)

    return registry, consumer, send


@pytest.mark.parametrize("kind", [exec_kind, transfer_kind])
def test_boxes_in_order_from_their_instance_within_the_window(kind):
    registry, consumer, send = kind(2)
    with pytest.raises(OutputRefused, match="not on this agent's instance"):
        send("i2", 1, b"x")
    with pytest.raises(OutputRefused, match="chunk 2 after 0"):
        send("i1", 2, b"x")
    send("i1", 1, b"a")
    send("i1", 2, b"b")
    with pytest.raises(OutputRefused, match="more than 2 chunks unanswered"):
        send("i1", 3, b"c")
    consumer.pending.pop(0).callback(None)
    send("i1", 3, b"c")
    assert consumer.taken == [b"a", b"b", b"c"]


@pytest.mark.parametrize("kind", [exec_kind, transfer_kind])
def test_a_failed_answer_returns_the_credit_too(kind):
    registry, consumer, send = kind(1)
    send("i1", 1, b"a").addErrback(lambda f: None)
    consumer.pending.pop().errback(RuntimeError("x"))
    send("i1", 2, b"b")
    assert consumer.taken == [b"a", b"b"]


@pytest.mark.parametrize("kind", [exec_kind, transfer_kind])
def test_an_instance_lost_fails_its_streams_and_forgets_them(kind):
    registry, consumer, send = kind(2)
    gone = RuntimeError("agent gone")
    registry.instance_lost("i2", gone)
    assert consumer.lost == [] and len(registry) == 1
    registry.instance_lost("i1", gone)
    assert consumer.lost == [gone] and len(registry) == 0
    with pytest.raises(OutputRefused, match="unknown or no longer wanted"):
        send("i1", 1, b"a")
