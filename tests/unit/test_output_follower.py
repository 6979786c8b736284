"""
The agent's OutputFollower merges chunks that waited for the window, one
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
