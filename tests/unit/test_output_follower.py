"""
The agent's OutputFollower merges chunks that waited, one
stream at a time and up to the chunk size, and keeps every byte in order.
"""

from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport

from csvc.agent.output import OutputFollower
from csvc.stdio.reader import OutputReader


def frame(stream, data):
    return bytes((stream, 0, 0, 0)) + len(data).to_bytes(4, "big") + data


def test_chunks_that_waited_are_merged_per_stream():
    sent = []

    def send(seq, stream, data, cursor):
        d = Deferred()
        sent.append((seq, stream, data, cursor, d))
        return d

    follower = OutputFollower(send, OutputReader(False), 0, window=1, chunk_size=10)
    transport = StringTransport()
    follower.makeConnection(transport)
    follower.dataReceived(frame(1, b"aaa"))
    # The window is full from here: these wait, and the stream is paused.
    for data in (b"bbb", b"ccc", b"dddd", b"e"):
        follower.dataReceived(frame(1, data))
    follower.dataReceived(frame(2, b"ERR"))
    follower.dataReceived(frame(1, b"fff"))
    assert transport.producerState == "paused"
    got = []
    while sent:
        seq, stream, data, cursor, d = sent.pop(0)
        got.append((seq, stream, data, cursor))
        d.callback(None)
    assert got == [
        (1, 1, b"aaa", "C|3|0"),
        # bbb+ccc+dddd would be 10: the limit, so e starts the next one.
        (2, 1, b"bbbcccdddd", "C|13|0"),
        (3, 1, b"e", "C|14|0"),
        (4, 2, b"ERR", "C|14|3"),
        (5, 1, b"fff", "C|17|3"),
    ]
    assert transport.producerState == "producing"


def two_in_flight(window, chunk_size):
    sent = []

    def send(seq, stream, data, cursor):
        d = Deferred()
        sent.append((seq, stream, data, d))
        return d

    follower = OutputFollower(send, OutputReader(True), 0, window=window, chunk_size=chunk_size)
    transport = StringTransport()
    follower.makeConnection(transport)
    # Two reads, each sent at once: two chunks in flight (``eager``).
    follower.dataReceived(b"a")
    follower.dataReceived(b"b")
    assert [s[2] for s in sent] == [b"a", b"b"]
    return follower, transport, sent


def test_a_partial_chunk_goes_at_once_while_little_is_in_flight():
    follower, _transport, sent = two_in_flight(8, 10)
    # Two in flight (eager): the third read waits for more.
    follower.dataReceived(b"c")
    follower.dataReceived(b"dd")
    assert [s[2] for s in sent] == [b"a", b"b"]
    # An acknowledgement brings the count below two: what waited goes.
    sent[0][3].callback(None)
    assert [s[2] for s in sent] == [b"a", b"b", b"cdd"]


def test_a_full_chunk_goes_while_the_window_has_room():
    follower, transport, sent = two_in_flight(8, 10)
    follower.dataReceived(b"0123")
    assert transport.producerState == "producing"
    follower.dataReceived(b"456789")
    assert [s[2] for s in sent] == [b"a", b"b", b"0123456789"]
    assert transport.producerState == "producing"
    follower.dataReceived(b"xy")
    follower.dataReceived(b"z")
    # What is left waits (3 in flight), and nothing is lost at the end.
    assert len(sent) == 3
    follower.connectionLost(None)
    assert [s[2] for s in sent] == [b"a", b"b", b"0123456789", b"xyz"]
    for s in sent:
        s[3].callback(None)
    assert follower.done.called and follower.done.result == 4


def test_the_stream_is_paused_once_a_full_chunk_waits_for_the_window():
    follower, transport, sent = two_in_flight(2, 10)
    # The window is full; less than a chunk waits: reading goes on.
    follower.dataReceived(b"012345")
    assert transport.producerState == "producing"
    follower.dataReceived(b"6789")
    assert transport.producerState == "paused"
    sent[0][3].callback(None)
    assert [s[2] for s in sent] == [b"a", b"b", b"0123456789"]
    assert transport.producerState == "producing"
