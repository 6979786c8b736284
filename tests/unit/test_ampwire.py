"""
csvc/fastpath/boxes.py (the fast path on) reads the same boxes as AMP's own
parser, however the bytes are split, and enforces AMP's key length limit the
same way; its fast commands answer as AMP, and undeclared errors as
csvc/wire/responders.py (the public path) does.
"""

import pytest
from hypothesis import given, settings, strategies as st
from twisted.internet.testing import StringTransport
from twisted.protocols import amp

from csvc.wire import commands
from csvc.fastpath import SWITCH
from csvc.fastpath.boxes import FastBoxes
from csvc.wire.responders import SafeResponders


@pytest.fixture(autouse=True)
def fast_path(monkeypatch):
    # FastBoxes made here are fast; PublicProbeServer is the switch off.
    monkeypatch.setattr(SWITCH, "on", True)


class Recorder:
    def __init__(self):
        self.boxes = []

    def startReceivingBoxes(self, sender):
        pass

    def ampBoxReceived(self, box):
        self.boxes.append(dict(box))

    def stopReceivingBoxes(self, reason):
        pass


class FastBinary(FastBoxes, amp.BinaryBoxProtocol):
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


def _entry(key, value):
    return len(key).to_bytes(2, "big") + key + len(value).to_bytes(2, "big") + value


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("kind", ["bytes", "keys", "one key again"])
def test_a_box_past_its_bounds_drops_the_link_and_is_never_dispatched(monkeypatch, fast, kind):
    # A peer (an agent on a host a tenant broke into) sends a box that never
    # ends: AMP bounds each value, not a box; both paths bound the box.
    monkeypatch.setattr(SWITCH, "on", fast)
    if kind == "bytes":
        entries = [_entry(b"k%d" % i, b"v" * 65535) for i in range(commands.BOX_MAX // 65535 + 1)]
    elif kind == "keys":
        entries = [_entry(b"k%d" % i, b"") for i in range(commands.BOX_KEYS + 1)]
    else:
        entries = [_entry(b"k", b"v" * 65535)] * (commands.BOX_MAX // 65535 + 1)
    box_end = b"\x00\x00"
    later = amp.AmpBox({b"after": b"1"}).serialize()
    wire = b"".join(entries) + box_end + later
    got, protocol, transport = feed(FastBinary, [wire[i:i + 40000] for i in range(0, len(wire), 40000)])
    assert got == []
    assert transport.disconnecting
    assert protocol._box_over
    # Nothing read after it is kept.
    protocol.dataReceived(later)
    assert got == []
    assert protocol._rx == b"" and protocol._box is None


@pytest.mark.parametrize("fast", [True, False])
def test_the_largest_boxes_of_the_contract_pass_the_bound(monkeypatch, fast):
    monkeypatch.setattr(SWITCH, "on", fast)
    # Register's every value at AMP's limit, and a full Output chunk.
    register = {key: b"x" * 65535 for key, _argument in commands.Register.arguments}
    register[b"_command"], register[b"_ask"] = b"Register", b"1"
    output = amp.AmpBox({b"_command": b"Output", b"_ask": b"2", b"uuid": b"u" * 36, b"seq": b"1",
                         b"stream": b"1", b"cursor": b"c" * 200})
    for key, piece in commands.Bytes(commands.CHUNK_SIZE).pieces(b"data", b"d" * commands.CHUNK_SIZE):
        output[key] = bytes(piece)
    wire = amp.AmpBox(register).serialize() + output.serialize()
    got, protocol, transport = feed(FastBinary, [wire[i:i + 65536] for i in range(0, len(wire), 65536)])
    assert [box[b"_command"] for box in got] == [b"Register", b"Output"]
    assert not transport.disconnecting


class Server(FastBoxes, amp.AMP):
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


def exchange(sender, receiver, command, **kwargs):
    """``sender`` calls ``command`` on ``receiver`` through StringTransports; returns the answers."""
    sender_transport, receiver_transport = StringTransport(), StringTransport()
    sender.makeConnection(sender_transport)
    receiver.makeConnection(receiver_transport)
    answers = []
    sender.callRemote(command, **kwargs).addBoth(answers.append)
    wire = sender_transport.value()
    for i in range(0, len(wire), 10007):
        receiver.dataReceived(wire[i:i + 10007])
    sender.dataReceived(receiver_transport.value())
    return wire, answers


class FastClient(FastBoxes, amp.AMP):
    pass


class FastServer(FastBoxes, amp.AMP):
    @commands.Output.responder
    def output(self, uuid, seq, stream, data, cursor):
        self.got = data
        return {}


class StockServer(amp.AMP):
    @commands.Output.responder
    def output(self, uuid, seq, stream, data, cursor):
        self.got = data
        return {}


@settings(max_examples=60, deadline=None)
@given(
    size=st.one_of(
        st.integers(min_value=0, max_value=commands.CHUNK_SIZE),
        st.sampled_from([0, 1, 65534, 65535, 65536, 2 * 65535, 3 * 65535 + 1, commands.CHUNK_SIZE]),
    ),
    fast_sender=st.booleans(),
    fast_receiver=st.booleans(),
)
def test_bytes_of_any_size_up_to_the_chunk_arrive_whole(size, fast_sender, fast_receiver):
    data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    sender = FastClient() if fast_sender else amp.AMP()
    receiver = FastServer() if fast_receiver else StockServer()
    wire, answers = exchange(sender, receiver, commands.Output, uuid="u", seq=1, stream=1, data=data, cursor="")
    assert answers == [{}]
    assert type(receiver.got) is bytes
    assert receiver.got == data
    # Every piece within AMP's value limit, the whole within the chunk.
    assert len(wire) < size + 1024


def test_more_than_the_chunk_is_refused_by_the_sender():
    sender = amp.AMP()
    transport = StringTransport()
    sender.makeConnection(transport)
    with pytest.raises(ValueError, match="data: 262145 bytes, more than 262144"):
        sender.callRemote(commands.Output, uuid="u", seq=1, stream=1, data=b"x" * (commands.CHUNK_SIZE + 1), cursor="")
    assert transport.value() == b""


def test_more_than_the_chunk_is_refused_by_the_receiver():
    # A sender that does not check: five full pieces (327,675 bytes).
    box = amp.AmpBox({b"_ask": b"1", b"_command": b"Output", b"uuid": b"u", b"seq": b"1", b"stream": b"1", b"cursor": b""})
    for i in range(1, 6):
        box[b"data.%d" % i] = b"x" * 65535
    receiver, transport = FastServer(), StringTransport()
    receiver.makeConnection(transport)
    receiver.dataReceived(box.serialize())
    assert not hasattr(receiver, "got")
    answers, _, _ = feed(amp.BinaryBoxProtocol, [transport.value()])
    assert answers[0][b"_error"] == b"1"


keys_and_values = st.dictionaries(
    st.binary(min_size=1, max_size=40).filter(lambda k: not k.startswith(b"_")),
    st.one_of(st.binary(max_size=100), st.integers(min_value=4000, max_value=65535).map(lambda n: b"v" * n)),
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(box=keys_and_values)
def test_sent_boxes_read_back_by_amp_as_sent(box):
    sender = FastClient()
    transport = StringTransport()
    sender.makeConnection(transport)
    sender.sendBox(amp.AmpBox(box))
    stock, _, _ = feed(amp.BinaryBoxProtocol, [transport.value()])
    assert stock == [box]


def test_sent_boxes_keep_amps_limits():
    sender = FastClient()
    sender.makeConnection(StringTransport())
    with pytest.raises(amp.TooLong):
        sender.sendBox(amp.AmpBox({b"k": b"v" * 65536}))
    with pytest.raises(amp.TooLong):
        sender.sendBox(amp.AmpBox({b"k" * 256: b"v"}))
    with pytest.raises(TypeError):
        sender.sendBox(amp.AmpBox({b"k": "v"}))


# -- the fast commands: the same wire and outcomes as AMP's own dispatch ----------


class ProbeRefused(Exception):
    pass


class ProbeFatal(Exception):
    pass


class Probe(amp.Command):
    arguments = [
        (b"name", amp.Unicode()),
        (b"n", amp.Integer()),
        (b"maybe", amp.Integer(optional=True)),
        (b"data", commands.Bytes(1 << 20)),
        (b"doc", commands.JSON()),
        (b"with-dash", amp.Unicode(optional=True)),
        # Read and written as they are by the fast path (Input's bytes).
        (b"raw", amp.String(optional=True)),
    ]
    response = [(b"echo", amp.Unicode()), (b"total", amp.Integer())]
    errors = {ProbeRefused: b"REFUSED", commands.InternalError: commands.INTERNAL_ERROR}
    fatalErrors = {ProbeFatal: b"FATAL"}


class Quiet(amp.Command):
    arguments = [(b"n", amp.Integer())]
    requiresAnswer = False


class ProbeResponder(amp.CommandLocator):
    @Probe.responder
    def probe(self, name, n, maybe, data, doc, with_dash, raw):
        from twisted.internet.defer import fail, succeed

        self.got = (name, n, maybe, data, doc, with_dash, raw)
        kind = name.split("-", 1)[0]
        answer = {"echo": f"{name}/{with_dash}", "total": n + (maybe or 0) + len(data)}
        if kind == "ok":
            return answer
        if kind == "later":
            return succeed(answer)
        if kind == "known":
            raise ProbeRefused(f"refused {name}")
        if kind == "laterknown":
            return fail(ProbeRefused(f"refused later {name}"))
        if kind == "fatal":
            raise ProbeFatal("fatal")
        if kind == "badanswer":
            return {"echo": name}
        raise RuntimeError("unexpected")

    @Quiet.responder
    def quiet(self, n):
        self.got = n
        return {}


class StockProbeServer(ProbeResponder, amp.AMP):
    pass


class FastProbeServer(ProbeResponder, FastBoxes, amp.AMP):
    fast_commands = (Probe, Quiet)


class FastProbeClient(FastBoxes, amp.AMP):
    fast_commands = (Probe, Quiet)


class SlowProbeServer(ProbeResponder, FastBoxes, amp.AMP):
    """
    Probe dispatched by AMP's own machinery, errors answered by FastBoxes.
    """


class PublicProbeServer(ProbeResponder, SafeResponders, amp.AMP):
    """
    The fast path off: AMP's dispatch, errors answered by SafeResponders.
    """


def probe_exchange(sender, receiver, **kwargs):
    sender_transport, receiver_transport = StringTransport(), StringTransport()
    sender.makeConnection(sender_transport)
    receiver.makeConnection(receiver_transport)
    outcome = []
    sender.callRemote(Probe, **kwargs).addCallbacks(
        outcome.append, lambda f: outcome.append((type(f.value).__name__, str(f.value)))
    )
    wire = sender_transport.value()
    for i in range(0, len(wire), 3001):
        receiver.dataReceived(wire[i:i + 3001])
    answer = receiver_transport.value()
    sender.dataReceived(answer)
    boxes, _, _ = feed(amp.BinaryBoxProtocol, [wire])
    answers, _, _ = feed(amp.BinaryBoxProtocol, [answer])
    return boxes, answers, receiver_transport.disconnecting, getattr(receiver, "got", None), outcome


@settings(max_examples=80, deadline=None)
@given(
    kind=st.sampled_from(["ok", "later", "known", "laterknown", "fatal", "badanswer", "boom"]),
    name=st.text(max_size=20),
    n=st.integers(min_value=-(2**70), max_value=2**70),
    maybe=st.one_of(st.none(), st.integers(min_value=0, max_value=1000)),
    data=st.binary(max_size=70000),
    doc=st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    with_dash=st.one_of(st.none(), st.text(max_size=10)),
    raw=st.one_of(st.none(), st.binary(max_size=300)),
)
def test_fast_commands_answer_and_fail_exactly_as_amp(kind, name, n, maybe, data, doc, with_dash, raw):
    kwargs = dict(name=f"{kind}-{name}", n=n, data=data, doc=doc)
    if maybe is not None:
        kwargs["maybe"] = maybe
    if with_dash is not None:
        kwargs["with_dash"] = with_dash
    if raw is not None:
        kwargs["raw"] = raw
    results = {
        (sender.__name__, receiver.__name__): probe_exchange(sender(), receiver(), **kwargs)
        for sender in (amp.AMP, FastProbeClient)
        for receiver in (StockProbeServer, FastProbeServer, SlowProbeServer, PublicProbeServer)
    }
    stock = results["AMP", "StockProbeServer"]
    undeclared = kind in ("badanswer", "boom")
    for (sender, receiver), other in results.items():
        if undeclared and receiver != "StockProbeServer":
            # Not AMP's: answered with InternalError, the link kept.
            assert other == results["AMP", "FastProbeServer"]
        else:
            assert other == stock
    boxes, answers, closed, got, outcome = stock
    assert got == (kwargs["name"], n, maybe, data, doc, with_dash, raw)
    if kind in ("ok", "later"):
        assert outcome == [{"echo": f"{kwargs['name']}/{with_dash}", "total": n + (maybe or 0) + len(data)}]
    elif kind in ("known", "laterknown"):
        assert outcome[0][0] == "ProbeRefused" and not closed
    elif kind == "fatal":
        assert outcome[0][0] == "ProbeFatal" and closed
    else:
        # AMP's own: an unknown error, and the link dropped.
        assert outcome[0][0] == "UnknownRemoteError" and closed
        _, answers, closed, _, outcome = results["AMP", "FastProbeServer"]
        cause = "RuntimeError" if kind == "boom" else "KeyError"
        assert answers[0][b"_error_code"] == commands.INTERNAL_ERROR and not closed
        assert outcome == [("InternalError", f"{cause} in the peer's responder to Probe (its log has the traceback)")]


def test_a_command_missing_an_argument_is_an_internal_error_and_the_link_stays():
    box = amp.AmpBox({b"_ask": b"9", b"_command": b"Probe", b"name": b"ok", b"data.1": b"", b"doc": b"{}"})
    wires = []
    for receiver in (StockProbeServer(), FastProbeServer(), SlowProbeServer(), PublicProbeServer()):
        transport = StringTransport()
        receiver.makeConnection(transport)
        receiver.dataReceived(box.serialize())
        (answer,), _, _ = feed(amp.BinaryBoxProtocol, [transport.value()])
        error = (answer[b"_error"], answer[b"_error_code"], answer[b"_error_description"])
        wires.append(error + (transport.disconnecting,))
    # AMP's own drops the link; both of csvc's ways answer and keep it.
    assert wires[0] == (b"9", amp.UNKNOWN_ERROR_CODE, b"Unknown Error", True)
    assert wires[1] == wires[2] == wires[3] == (
        b"9", commands.INTERNAL_ERROR, b"KeyError in the peer's responder to Probe (its log has the traceback)", False
    )


def test_a_fast_call_checks_its_arguments_as_amp_does():
    seen = []
    for sender in (amp.AMP(), FastProbeClient()):
        transport = StringTransport()
        sender.makeConnection(transport)
        # A missing argument: a failed Deferred; one too many: raised.
        failed = []
        sender.callRemote(Probe, name="x", data=b"", other=2).addErrback(failed.append)
        with pytest.raises(amp.InvalidSignature) as raised:
            sender.callRemote(Probe, name="x", n=1, data=b"", doc={}, other=2)
        assert transport.value() == b""
        seen.append((str(failed[0].value), str(raised.value)))
    assert seen[0] == seen[1] == ("forgot n, doc for b'Probe'", "other is not a valid argument")


def test_a_fast_call_without_answer_and_a_lost_link():
    sender, receiver = FastProbeClient(), FastProbeServer()
    transport = StringTransport()
    sender.makeConnection(transport)
    receiver.makeConnection(StringTransport())
    assert sender.callRemote(Quiet, n=3) is None
    receiver.dataReceived(transport.value())
    assert receiver.got == 3
    outcome = []
    sender.callRemote(Probe, name="ok", n=1, data=b"", doc={}).addErrback(outcome.append)
    from twisted.internet.error import ConnectionLost
    from twisted.python.failure import Failure

    sender.connectionLost(Failure(ConnectionLost("gone")))
    assert outcome[0].check(ConnectionLost)
    # After the loss a call fails at once, as AMP's does.
    later = []
    sender.callRemote(Probe, name="ok", n=1, data=b"", doc={}).addErrback(later.append)
    assert later[0].check(ConnectionLost)
