"""
The attach session's core: bounded queue, falling behind to the store and
rejoining the live tail without gap or duplicate, ending after the exit.
"""

from twisted.internet.defer import Deferred, succeed

from csvc.relay.session import AttachSession
from csvc.stdio.journal import Journal
from csvc.store.output import Appended


class MemoryStore:
    """
    The store's output and container row, in memory, answering at once or
    when ``hold`` is set, only when released.
    """

    def __init__(self):
        self.chunks = {}
        self.row = {"uuid": "c", "status": "running", "last_seq": 0, "exit_code": None, "status_reason": None}
        self.reads = 0

    def append_output(self, chunks):
        for u, seq, stream, data, _cursor in chunks:
            self.chunks[seq] = (seq, stream, data)
        self.row["last_seq"] = max(self.chunks)
        return Appended.together(succeed(None))

    def read_output(self, uuid, after_seq=0, limit=64, **_):
        self.reads += 1
        return succeed([self.chunks[s] for s in sorted(self.chunks) if s > after_seq][:limit])

    def get_container(self, uuid, project_id=None):
        return succeed(dict(self.row))


class Sink:
    def __init__(self):
        self.data = {1: b"", 2: b""}
        self.finished_with = None

    def output(self, stream, data):
        self.data[stream] += data

    def finished(self, exit_code, reason):
        self.finished_with = (exit_code, reason)


def setup(limit=64 * 1024):
    store = MemoryStore()
    journal = Journal(store)
    journal.known("c", 0)
    sink = Sink()
    session = AttachSession(journal, store, "c", {1, 2}, 1, sink, queue_limit=limit)
    return store, journal, sink, session


def test_live_tail_passes_straight_through():
    store, journal, sink, session = setup()
    session.start()
    journal.append("c", 1, 1, b"hello ", "C|6|0")
    journal.append("c", 2, 2, b"err", "C|6|3")
    assert sink.data == {1: b"hello ", 2: b"err"}
    assert not session.behind


def test_a_paused_client_never_queues_more_than_the_limit_and_misses_nothing():
    store, journal, sink, session = setup(limit=64 * 1024)
    session.start()
    session.pauseProducing()
    expected = b""
    for seq in range(1, 201):
        data = bytes([seq % 256]) * 32 * 1024
        expected += data
        journal.append("c", seq, 1, data, "")
        assert session.queued_bytes <= 64 * 1024
    assert session.behind
    reads_before = store.reads
    session.resumeProducing()
    assert sink.data[1] == expected
    assert store.reads > reads_before  # it caught up from the store
    assert not session.behind  # ... and rejoined the live tail
    journal.append("c", 201, 1, b"live again", "")
    assert sink.data[1] == expected + b"live again"


def test_ends_after_the_exit_once_every_chunk_is_delivered():
    store, journal, sink, session = setup()
    session.start()
    session.pauseProducing()
    journal.append("c", 1, 1, b"last words", "")
    store.row.update(status="exited", exit_code=3)
    journal.state_changed("c")
    assert sink.finished_with is None  # paused: output first
    session.resumeProducing()
    assert sink.data[1] == b"last words"
    assert sink.finished_with == (3, None)


def test_a_chunk_not_yet_persisted_is_waited_for_while_behind():
    store, journal, sink, session = setup(limit=10)
    held = Deferred()
    store.append_output = lambda chunks: Appended.together(held.addCallback(lambda _: [
        store.chunks.__setitem__(seq, (seq, stream, data)) for u, seq, stream, data, c in chunks
    ]))
    session.start()
    journal.append("c", 1, 1, b"more than ten bytes", "")
    assert session.behind and sink.data[1] == b""
    held.callback(None)
    assert sink.data[1] == b"more than ten bytes"


def test_stopped_session_leaves_the_journal():
    store, journal, sink, session = setup()
    session.start()
    session.stop()
    journal.append("c", 1, 1, b"unseen", "")
    assert sink.data[1] == b""


def test_an_unlimited_throttle_is_not_asked_for_each_chunk():
    from twisted.internet.task import Clock

    from csvc.relay.throttle import Throttle

    for throttle, registered in ((Throttle(Clock()), False), (Throttle(Clock(), session_rate=10**9), True)):
        store = MemoryStore()
        journal = Journal(store)
        journal.known("c", 0)
        sink = Sink()
        requests = []
        original = throttle.request
        throttle.request = lambda share, n: (requests.append(n), original(share, n))
        session = AttachSession(journal, store, "c", {1, 2}, 1, sink, throttle=throttle)
        session.start()
        journal.append("c", 1, 1, b"x" * 1000, "")
        assert sink.data[1] == b"x" * 1000
        assert (session._share is not None) == registered
        assert requests == ([1000] if registered else [])
