"""
Transfers, both ends, without a network: the agent's downloads pause the
engine's stream while their window is full, the control plane holds its
answers while the HTTP client is backed up, uploads keep at most a window of
chunks unanswered.
"""

import io

import pytest
from hypothesis import given, strategies as st
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from csvc.wire import commands
from csvc.agent.transfers import Downloads, LineChunks, LineTooLong, RawChunks, UploadBody, Uploads
from csvc.agents.transfers import ResponseDownload, TransferRegistry, _send_chunks


# -- readers -----------------------------------------------------------------


@given(st.lists(st.binary(max_size=5000), max_size=20), st.integers(min_value=1, max_value=4096))
def test_raw_chunks_keep_every_byte_in_bounded_chunks(pieces, size):
    reader = RawChunks(chunk_size=size)
    out = [chunk for piece in pieces for chunk in reader.feed(piece)]
    assert b"".join(data for _stream, data, _cursor in out) == b"".join(pieces)
    assert all(0 < len(data) <= size for _stream, data, _cursor in out)


@given(st.lists(st.text(alphabet="abc{}:\" ", min_size=1, max_size=50), max_size=10), st.data())
def test_line_chunks_give_whole_lines_however_the_stream_is_cut(lines, data):
    stream = b"".join(line.encode() + b"\n" for line in lines)
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=5)))
    reader, out, start = LineChunks(), [], 0
    for cut in cuts + [len(stream)]:
        out += [chunk for _stream, chunk, _cursor in reader.feed(stream[start:cut])]
        start = cut
    assert out == [line.encode() + b"\n" for line in lines if line.strip()]


def test_a_line_longer_than_a_chunk_is_an_error():
    with pytest.raises(LineTooLong):
        LineChunks(limit=10).feed(b"x" * 11)


# -- the agent's downloads ---------------------------------------------------


class FakeEngine:
    def __init__(self):
        self.protocols = {}

    def download(self, uuid, kind, options, protocol):
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.protocols[uuid] = (protocol, transport)
        return succeed({"path_stat": "e30="} if kind == "archive" else {})


class HeldCalls:
    """
    ``call(command, **kwargs)`` whose answers the test gives.
    """

    def __init__(self):
        self.calls = []

    def __call__(self, command, **kwargs):
        d = Deferred()
        self.calls.append((command, kwargs, d))
        return d

    def of(self, command):
        return [(kwargs, d) for c, kwargs, d in self.calls if c is command]


def test_a_full_window_pauses_the_engine_stream_until_answers_come():
    engine, call = FakeEngine(), HeldCalls()
    downloads = Downloads(engine, call, window=2)
    info = []
    downloads.open("t1", "c1", "archive", {"path": "/"}).addCallback(info.append)
    assert info == [{"path_stat": "e30="}]
    protocol, transport = engine.protocols["c1"]
    protocol.dataReceived(b"a" * (commands.CHUNK_SIZE * 3))
    chunks = call.of(commands.DownloadChunk)
    assert [kwargs["seq"] for kwargs, _d in chunks] == [1, 2]
    assert transport.producerState == "paused"
    chunks[0][1].callback({})
    # The third went out: nothing waits, the stream is read again...
    assert len(call.of(commands.DownloadChunk)) == 3
    assert transport.producerState == "producing"
    # ... until a chunk's worth finds the window full: at most a window, a
    # chunk and one read are held.
    protocol.dataReceived(b"b")
    assert transport.producerState == "producing"
    protocol.dataReceived(b"c" * (commands.CHUNK_SIZE - 1))
    assert transport.producerState == "paused"
    for _kwargs, d in call.of(commands.DownloadChunk)[1:]:
        d.callback({})
    chunks = call.of(commands.DownloadChunk)
    assert len(chunks) == 4 and chunks[3][0]["data"] == b"b" + b"c" * (commands.CHUNK_SIZE - 1)
    assert transport.producerState == "producing"
    chunks[3][1].callback({})
    protocol.connectionLost(Failure(ResponseDone()))
    ends = call.of(commands.DownloadEnd)
    assert [kwargs for kwargs, _d in ends] == [{"transfer_id": "t1", "error": ""}]
    assert len(downloads) == 0


def test_a_refused_chunk_or_a_cancel_stops_the_engine_stream():
    engine, call = FakeEngine(), HeldCalls()
    downloads = Downloads(engine, call, window=4)
    downloads.open("t1", "c1", "export", {})
    downloads.open("t2", "c2", "export", {})
    protocol, transport = engine.protocols["c1"]
    protocol.dataReceived(b"x")
    call.of(commands.DownloadChunk)[0][1].errback(commands.OutputRefused("the client went away"))
    assert transport.producerState == "stopped"
    downloads.cancel("t2")
    assert engine.protocols["c2"][1].producerState == "stopped"
    assert len(downloads) == 0


def test_an_engine_stream_that_breaks_is_reported_as_an_error():
    engine, call = FakeEngine(), HeldCalls()
    downloads = Downloads(engine, call)
    downloads.open("t1", "c1", "export", {})
    protocol, _transport = engine.protocols["c1"]
    protocol.connectionLost(Failure(ConnectionError("engine connection reset")))
    [(kwargs, _d)] = call.of(commands.DownloadEnd)
    assert kwargs["error"] == "engine connection reset"


# -- the control plane's registry and HTTP consumer ---------------------------


class FakeRequest:
    def __init__(self):
        self.written = []
        self.producer = None
        self.finished = Deferred()
        self.channel = None

    def notifyFinish(self):
        return self.finished

    def write(self, data):
        self.written.append(data)

    def registerProducer(self, producer, streaming):
        assert streaming
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None


def test_the_response_holds_answers_while_the_client_is_backed_up():
    request, cancelled = FakeRequest(), []
    consumer = ResponseDownload(request, lambda: cancelled.append(True))
    early = consumer.output(b"before the headers")
    assert request.written == [] and not early.called
    consumer.begin()
    assert request.written == [b"before the headers"] and early.called
    request.producer.pauseProducing()
    held = consumer.output(b"more")
    assert request.written[-1] == b"more" and not held.called
    request.producer.resumeProducing()
    assert held.called
    consumer.ended(None)
    assert consumer.done.called and request.producer is None and cancelled == []


def test_a_client_that_goes_away_refuses_the_rest_and_cancels():
    request, cancelled = FakeRequest(), []
    consumer = ResponseDownload(request, lambda: cancelled.append(True))
    consumer.begin()
    request.producer.pauseProducing()
    held = consumer.output(b"chunk")
    request.finished.errback(ConnectionError("gone"))
    failures = []
    held.addErrback(failures.append)
    assert failures and failures[0].check(commands.OutputRefused)
    assert cancelled == [True]
    # No longer the request's producer: twisted.web may finish it.
    assert request.producer is None
    with pytest.raises(commands.OutputRefused):
        consumer.output(b"late")


def test_is_last_ends_the_response_and_cancels_the_download():
    request, cancelled = FakeRequest(), []
    consumer = ResponseDownload(request, lambda: cancelled.append(True), is_last=lambda data: data == b"end\n")
    consumer.begin()
    assert consumer.output(b"one\n").called
    last = consumer.output(b"end\n")
    failures = []
    last.addErrback(failures.append)
    assert request.written == [b"one\n", b"end\n"]
    assert failures[0].check(commands.OutputRefused)
    assert cancelled == [True] and consumer.done.called


class Recorder:
    def __init__(self):
        self.got, self.ends = [], []
        self.answer = None

    def output(self, data):
        self.got.append(data)
        return self.answer

    def ended(self, error):
        self.ends.append(error)

    def failed(self, exc):
        self.ends.append(str(exc))


def test_the_registry_checks_owner_order_window_and_size():
    registry = TransferRegistry(window=1)
    consumer = Recorder()
    transfer_id = registry.register("i1", consumer)
    with pytest.raises(commands.OutputRefused):
        registry.chunk("i2", transfer_id, 1, b"x")
    with pytest.raises(commands.OutputRefused):
        registry.chunk("i1", transfer_id, 2, b"x")
    consumer.answer = Deferred()
    registry.chunk("i1", transfer_id, 1, b"x")
    with pytest.raises(commands.OutputRefused):
        registry.chunk("i1", transfer_id, 2, b"y")  # the window is full
    consumer.answer.callback(None)
    consumer.answer = None
    with pytest.raises(commands.OutputRefused):
        registry.chunk("i1", transfer_id, 2, b"z" * (commands.CHUNK_SIZE + 1))
    registry.end("i1", transfer_id, "")
    assert consumer.ends == [None]
    with pytest.raises(commands.OutputRefused):
        registry.chunk("i1", transfer_id, 2, b"after the end")


# -- uploads -----------------------------------------------------------------


class HeldHub:
    def __init__(self):
        self.calls = []

    def call(self, instance, command, **kwargs):
        d = Deferred()
        self.calls.append((command, kwargs, d))
        return d


def test_an_upload_keeps_at_most_a_window_unanswered():
    hub = HeldHub()
    source = io.BytesIO(b"a" * 10 + b"b" * 5)
    done = _send_chunks(hub, "i1", "t1", source, 15, window=2, chunk_size=4)
    assert [kwargs["data"] for _c, kwargs, _d in hub.calls] == [b"aaaa", b"aaaa"]
    hub.calls[0][2].callback({})
    assert [kwargs["data"] for _c, kwargs, _d in hub.calls][2:] == [b"aabb"]
    for _c, _kwargs, d in list(hub.calls):
        if not d.called:
            d.callback({})
    while not done.called:
        [d.callback({}) for _c, _k, d in list(hub.calls) if not d.called]
    assert b"".join(kwargs["data"] for _c, kwargs, _d in hub.calls) == b"a" * 10 + b"b" * 5


def test_an_upload_whose_body_file_is_closed_fails():
    hub = HeldHub()
    source = io.BytesIO(b"a" * 10)
    done = _send_chunks(hub, "i1", "t1", source, 10, window=1, chunk_size=4)
    source.close()  # as twisted.web does when the client goes away
    hub.calls[0][2].callback({})
    failures = []
    done.addErrback(failures.append)
    assert failures and failures[0].check(ValueError)


def test_an_upload_shorter_than_its_length_fails():
    hub = HeldHub()
    done = _send_chunks(hub, "i1", "t1", io.BytesIO(b"abc"), 10, window=4, chunk_size=4)
    hub.calls[0][2].callback({})
    failures = []
    done.addErrback(failures.append)
    assert "ended after 3 of 10 bytes" in failures[0].getErrorMessage()


def test_the_upload_body_holds_answers_while_the_engine_connection_is_backed_up():
    body = UploadBody(8)
    consumer = StringTransport()
    body.startProducing(consumer)
    assert body.write(b"abcd").called
    body.pauseProducing()
    held = body.write(b"efgh")
    assert not held.called and consumer.value() == b"abcdefgh"
    body.resumeProducing()
    assert held.called


def test_an_upload_the_engine_refuses_before_the_body_fails_its_open():
    class Refusing:
        def upload(self, uuid, options, body):
            d = Deferred()
            d.errback(commands.NoSuchPath("Could not find the file /nope in container x"))
            return d

    uploads = Uploads(Refusing())
    failures = []
    uploads.open("t1", "c1", 10, {"path": "/nope"}).addErrback(failures.append)
    assert failures[0].check(commands.NoSuchPath)
    assert len(uploads) == 0


# -- both ends over AMP --------------------------------------------------------


class StubCore:
    """
    Just what ``AgentProtocol`` needs of an ``AgentCore`` for transfers.
    """

    def __init__(self, engine):
        self.engine = engine
        self.downloads = None
        self.uploads = None

    def connected(self, link):
        return Deferred()  # registration is not this test's

    def disconnected(self, link):
        pass


def test_a_paused_response_pauses_the_engine_stream_across_amp():
    from twisted.internet.task import Clock
    from twisted.test import iosim

    from csvc.agent.link import AgentProtocol
    from csvc.agents.hub import AgentHub, AgentLink
    from csvc.agents.transfers import Downloads as ControlDownloads

    engine = FakeEngine()
    core = StubCore(engine)
    hub = AgentHub(store=None, journal=None, clock=Clock())
    agent, link, pump = iosim.connectedServerAndClient(lambda: AgentLink(hub, None, events=None),
                                                       lambda: AgentProtocol(core, Clock()))
    link.instance_uuid = "i1"
    hub._links["i1"] = link
    core.downloads = Downloads(engine, agent.callRemote)

    request = FakeRequest()
    opened = []
    ControlDownloads(hub).open({"instance_uuid": "i1", "uuid": "c1", "project_id": "p"}, "export", {}, request).addCallback(
        opened.append)
    pump.flush()
    [(info, consumer)] = opened
    consumer.begin()
    protocol, engine_stream = engine.protocols["c1"]
    # The client's connection is backed up: twisted.web pauses its producer.
    request.producer.pauseProducing()
    protocol.dataReceived(b"t" * commands.CHUNK_SIZE * 40)
    pump.flush()
    written = sum(len(data) for data in request.written)
    # A window reached the response; the agent holds the rest and does not
    # read the engine.
    assert written == commands.TRANSFER_WINDOW * commands.CHUNK_SIZE
    assert engine_stream.producerState == "paused"
    request.producer.resumeProducing()
    pump.flush()
    assert sum(len(data) for data in request.written) == commands.CHUNK_SIZE * 40
    assert engine_stream.producerState == "producing"
    protocol.connectionLost(Failure(ResponseDone()))
    pump.flush()
    assert consumer.done.called and request.producer is None
    assert len(hub.transfers) == 0 and len(core.downloads) == 0
