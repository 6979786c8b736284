"""
The markers csvc/api/logs.py writes where the retention policy dropped
output: once at the start of a read that begins in the dropped range, and
where chunks went under a follower's feet; never anywhere else.
"""

from twisted.internet.defer import Deferred, succeed

from csvc.api.logs import OVERTAKEN_MARKER, LogStream, dropped_marker


class Request:
    def __init__(self):
        self.written = []
        self.finished = False
        self.producer = None

    def registerProducer(self, producer, streaming):
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def notifyFinish(self):
        return Deferred()

    def write(self, data):
        self.written.append(data)

    def finish(self):
        self.finished = True


class Store:
    """
    Chunks kept from ``first`` on; ``output`` maps seq -> (stream, data).
    """

    def __init__(self, first, dropped, output):
        self.first, self.dropped, self.output = first, dropped, output

    def output_start(self, uuid):
        return succeed((self.first, self.dropped))

    def read_output(self, uuid, after_seq=0, limit=64, before_seq=None, descending=False, with_time=False):
        seqs = sorted(s for s in self.output if s > after_seq and s >= self.first)[:limit]
        return succeed([(s, *self.output[s], 0.0) if with_time else (s, *self.output[s]) for s in seqs])

    def get_container(self, uuid):
        return succeed({"status": "exited"})


def serve(store, after=0, streams=(1, 2), encode=None):
    request = Request()
    LogStream(request, store, None, "u", after, set(streams), False, encode=encode).start()
    assert request.finished
    return b"".join(request.written)


def test_a_read_from_the_start_of_trimmed_output_says_how_much_went_once():
    store = Store(3, 1234, {3: (1, b"c"), 4: (2, b"d")})
    assert serve(store) == dropped_marker(1234) + b"cd"
    assert dropped_marker(1234) == b"[csvc: 1234 bytes of older output dropped by the retention policy]\n"


def test_a_read_from_the_first_kept_chunk_has_no_marker():
    store = Store(3, 1234, {3: (1, b"c"), 4: (2, b"d")})
    assert serve(store, after=2) == b"cd"
    assert serve(Store(1, 0, {1: (1, b"a")})) == b"a"


def test_chunks_dropped_under_a_reader_are_marked_where_they_were():
    # The store lost chunks 5 and 6 between two reads of a follower: the
    # read after 4 comes back with 7.
    store = Store(1, 0, {seq: (1, bytes([96 + seq])) for seq in (1, 2, 3, 4, 7)})
    stream = LogStream(Request(), store, None, "u", 4, {1}, False)
    request = stream._request
    stream.start()
    assert b"".join(request.written) == OVERTAKEN_MARKER + b"g"


def test_docker_frames_the_marker_on_stderr():
    frames = []

    def encode(stream, data, at):
        frames.append((stream, data, at))
        return b"<%d>" % stream + data

    store = Store(2, 7, {2: (1, b"b")})
    assert serve(store, encode=encode) == b"<2>" + dropped_marker(7) + b"<1>b"
    assert frames[0] == (2, dropped_marker(7), None)
