"""
csvc/relay/ampwire.py reads the same boxes as AMP's own parser, however the
bytes are split, and enforces AMP's key length limit the same way.
"""

from hypothesis import given, settings, strategies as st
from twisted.internet.testing import StringTransport
from twisted.protocols import amp

from csvc.agent import commands
from csvc.relay.ampwire import FastBoxReceiver


class Recorder:
    def __init__(self):
        self.boxes = []

    def startReceivingBoxes(self, sender):
        pass

    def ampBoxReceived(self, box):
        self.boxes.append(dict(box))

    def stopReceivingBoxes(self, reason):
        pass


class FastBinary(FastBoxReceiver, amp.BinaryBoxProtocol):
    pass


def feed(protocol_class, pieces):
    recorder = Recorder()
    protocol = protocol_class(recorder)
    transport = StringTransport()
    protocol.makeConnection(transport)
    for piece in pieces:
        protocol.dataReceived(piece)
    return recorder.boxes, protocol, transport


keys = st.binary(min_size=1, max_size=255)
values = st.one_of(st.binary(max_size=64), st.integers(min_value=60000, max_value=65535).map(lambda n: b"v" * n))
boxes = st.lists(st.dictionaries(keys, values, max_size=6), min_size=1, max_size=6)


@settings(max_examples=100, deadline=None)
@given(boxes=boxes, cuts=st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12))
def test_same_boxes_as_amp_however_split(boxes, cuts):
    wire = b"".join(amp.AmpBox(box).serialize() for box in boxes)
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    pieces = [wire[a:b] for a, b in zip(points, points[1:])]
    fast, fast_protocol, _ = feed(FastBinary, pieces)
    stock, _, _ = feed(amp.BinaryBoxProtocol, pieces)
    assert fast == stock == boxes
    assert fast_protocol._rx == b""


def test_a_partial_box_waits_for_the_rest():
    wire = amp.AmpBox({b"a": b"1", b"b": b"x" * 1000}).serialize()
    got, protocol, _ = feed(FastBinary, [wire[:-1]])
    assert got == []
    protocol.dataReceived(wire[-1:] + wire[:3])
    assert got == [{b"a": b"1", b"b": b"x" * 1000}]
    assert protocol._rx == wire[:3]


def test_a_key_too_long_drops_the_connection():
    got, protocol, transport = feed(FastBinary, [b"\x01\x00" + b"k" * 256 + b"\x00\x01v\x00\x00"])
    assert got == []
    assert transport.disconnecting
    assert protocol._keyLengthLimitExceeded


class Server(FastBoxReceiver, amp.AMP):
    @commands.Output.responder
    def output(self, uuid, seq, stream, data, cursor):
        self.got = (uuid, seq, stream, data, cursor)
        return {}


def test_commands_are_dispatched_and_answered():
    server, client = Server(), amp.AMP()
    server_transport, client_transport = StringTransport(), StringTransport()
    server.makeConnection(server_transport)
    client.makeConnection(client_transport)
    answers = []
    client.callRemote(commands.Output, uuid="u", seq=7, stream=2, data=b"\0" * 32768, cursor="C|1|2").addCallback(
        answers.append
    )
    wire = client_transport.value()
    # Fed in odd pieces, as TCP may deliver them.
    for i in range(0, len(wire), 4093):
        server.dataReceived(wire[i:i + 4093])
    assert server.got == ("u", 7, 2, b"\0" * 32768, "C|1|2")
    client.dataReceived(server_transport.value())
    assert answers == [{}]
