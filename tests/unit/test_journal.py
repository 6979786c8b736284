"""
The output journal: group commit, acknowledgement on persistence, replay
(csvc.stdio.journal).  The store is an in-memory fake whose writes complete
when the test says so.
"""

import pytest
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from csvc.wire.commands import CHUNK_SIZE, OutputRefused
from csvc.stdio.journal import Journal
from csvc.store.output import Appended

U = "c-1"
V = "c-2"


class StoreFailed(Exception):
    pass


class FakeStore:
    """
    ``append_output`` records each batch and returns its write, which the
    test fires with ``commit()`` or ``fail()``, oldest batch first, with its
    positions (rows: in the same transaction).
    """

    def __init__(self):
        self.calls = []  # [(chunks, Deferred)]
        self.stored = []  # chunks committed, in order
        self.hastened = 0

    def append_output(self, chunks):
        d = Deferred()
        self.calls.append((list(chunks), d))
        return Appended.together(d)

    def hasten_output(self):
        self.hastened += 1

    @property
    def in_flight(self):
        return [chunks for chunks, d in self.calls if not d.called]

    def _next(self):
        for chunks, d in self.calls:
            if not d.called:
                return chunks, d
        raise AssertionError("no write in flight")

    def commit(self):
        chunks, d = self._next()
        self.stored.extend(chunks)
        d.callback(None)

    def fail(self):
        _chunks, d = self._next()
        d.errback(Failure(StoreFailed("disk full")))


class Result:
    """
    What a Deferred has done so far.
    """

    def __init__(self, d):
        self.fired = False
        self.value = None
        self.failure = None
        d.addCallbacks(self._ok, self._bad)

    def _ok(self, value):
        self.fired = True
        self.value = value

    def _bad(self, failure):
        self.fired = True
        self.failure = failure


def chunk(seq, data=None, stream=1, uuid=U):
    data = data if data is not None else f"chunk {seq}".encode()
    return (uuid, seq, stream, data, f"R|{seq}")


@pytest.fixture
def store():
    return FakeStore()


@pytest.fixture
def journal(store):
    return Journal(store, window=4)


def append(journal, seq, data=None, stream=1, uuid=U):
    data = data if data is not None else f"chunk {seq}".encode()
    return Result(journal.append(uuid, seq, stream, data, f"R|{seq}"))


# -- acknowledgement and group commit ----------------------------------------


def test_ack_only_after_persisted(journal, store):
    first = append(journal, 1)
    assert store.in_flight == [[chunk(1)]]
    assert not first.fired
    assert journal.persisted_seq(U) == 0
    store.commit()
    assert first.fired and first.failure is None
    assert journal.persisted_seq(U) == 1
    assert store.stored == [chunk(1)]


def test_group_commit(journal, store):
    first = append(journal, 1)
    second = append(journal, 2)
    third = append(journal, 3)
    other = append(journal, 1, uuid=V)
    # One write in flight; everything that arrived meanwhile waits.
    assert [c for c, _d in store.calls] == [[chunk(1)]]
    store.commit()
    assert first.fired
    assert not (second.fired or third.fired or other.fired)
    # ... and then goes in one write.
    assert [c for c, _d in store.calls] == [[chunk(1)], [chunk(2), chunk(3), chunk(1, uuid=V)]]
    store.commit()
    assert second.fired and third.fired and other.fired
    assert journal.persisted_seq(U) == 3
    assert journal.persisted_seq(V) == 1
    assert len(store.calls) == 2


def test_batch_bytes_bounded(store):
    journal = Journal(store, window=8)
    journal.max_batch_bytes = 10
    append(journal, 1, b"x")
    for seq in range(2, 6):
        append(journal, seq, b"abcd")
    store.commit()
    store.commit()
    store.commit()
    sizes = [[len(c[3]) for c in chunks] for chunks, _d in store.calls]
    assert sizes == [[1], [4, 4], [4, 4]]
    assert journal.persisted_seq(U) == 5


def test_synchronous_store():
    class Immediate:
        def __init__(self):
            self.stored = []

        def append_output(self, chunks):
            self.stored.extend(chunks)
            d = Deferred()
            d.callback(None)
            return Appended.together(d)

    store = Immediate()
    journal = Journal(store)
    assert Result(journal.append(U, 1, 1, b"a", "R|1")).fired
    assert Result(journal.append(U, 2, 1, b"b", "R|2")).fired
    assert [c[1] for c in store.stored] == [1, 2]


# -- the agent's contract ---------------------------------------------------


def test_duplicates_acknowledged_at_once_not_stored_again(journal, store):
    append(journal, 1)
    append(journal, 2)
    replay_in_flight = append(journal, 1)
    replay_queued = append(journal, 2)
    assert replay_in_flight.fired and replay_queued.fired
    store.commit()
    store.commit()
    assert store.stored == [chunk(1), chunk(2)]
    replay_persisted = append(journal, 2)
    assert replay_persisted.fired
    assert len(store.calls) == 2


def test_gap_refused(journal, store):
    append(journal, 1)
    with pytest.raises(OutputRefused, match="jumps from seq 1 to 3"):
        journal.append(U, 3, 1, b"x", "R|3")
    # The refusal queued nothing: seq 2 is still the next one.
    assert Result(journal.append(U, 2, 1, b"x", "R|2")).fired is False


def test_first_seq_must_be_one(journal):
    with pytest.raises(OutputRefused):
        journal.append(U, 2, 1, b"x", "R|2")


def test_oversized_chunk_refused(journal):
    with pytest.raises(OutputRefused):
        journal.append(U, 1, 1, b"x" * (CHUNK_SIZE + 1), "R|1")
    append(journal, 1, b"x" * CHUNK_SIZE)


@pytest.mark.parametrize("stream", [0, 3])
def test_unknown_stream_refused(journal, stream):
    with pytest.raises(OutputRefused):
        journal.append(U, 1, stream, b"x", "R|1")


def test_window_overrun_refused(journal, store):
    for seq in range(1, 5):
        append(journal, seq)
    with pytest.raises(OutputRefused, match="window of 4"):
        journal.append(U, 5, 1, b"x", "R|5")
    # Another container has its own window.
    append(journal, 1, uuid=V)
    # Acknowledgements make room again.
    store.commit()
    assert not append(journal, 5).fired
    with pytest.raises(OutputRefused):
        journal.append(U, 6, 1, b"x", "R|6")
    store.commit()
    store.commit()
    assert journal.persisted_seq(U) == 5
    assert journal.persisted_seq(V) == 1


def test_known_sets_next_seq(journal, store):
    journal.known(U, 10)
    assert journal.persisted_seq(U) == 10
    assert append(journal, 10).fired  # a replay
    with pytest.raises(OutputRefused):
        journal.append(U, 12, 1, b"x", "R|12")
    eleven = append(journal, 11)
    store.commit()
    assert eleven.fired
    assert store.stored == [chunk(11)]


def test_known_never_moves_back(journal, store):
    append(journal, 1)
    store.commit()
    journal.known(U, 0)
    assert journal.persisted_seq(U) == 1
    assert not append(journal, 2).fired


# -- failed writes ----------------------------------------------------------


def test_failed_write_errbacks_and_allows_replay(journal, store):
    append(journal, 1)
    store.commit()
    two = append(journal, 2)
    store.fail()
    assert two.fired
    assert two.failure.check(StoreFailed)
    assert journal.persisted_seq(U) == 1
    # The agent replays from what is persisted.
    again = append(journal, 2)
    assert not again.fired
    store.commit()
    assert again.fired and again.failure is None
    assert store.stored == [chunk(1), chunk(2)]


def test_failed_write_releases_the_window(journal, store):
    results = [append(journal, seq) for seq in range(1, 5)]
    store.fail()
    assert results[0].failure is not None
    # seq 1 failed: nothing after it may be stored before it is.
    while store.in_flight:
        store.commit()
    replayed = [append(journal, seq) for seq in range(1, 5)]
    while store.in_flight:
        store.commit()
    assert all(r.fired and r.failure is None for r in replayed)
    assert [c[1] for c in store.stored] == [1, 2, 3, 4]


def test_failed_write_fails_later_queued_chunks_of_that_container(journal, store):
    """
    While seq 1 is being written, seqs 2 and 3 wait for the next batch.  If
    seq 1 fails, storing 2 and 3 would leave a hole: they fail too, and the
    agent replays 1, 2, 3 in order.
    """
    one = append(journal, 1)
    two = append(journal, 2)
    three = append(journal, 3)
    other = append(journal, 1, uuid=V)
    store.fail()
    assert one.failure is not None
    assert two.failure is not None and three.failure is not None
    # The other container's chunk is unaffected and still goes out.
    assert store.in_flight == [[chunk(1, uuid=V)]]
    store.commit()
    assert other.fired and other.failure is None
    assert journal.persisted_seq(U) == 0
    with pytest.raises(OutputRefused):
        journal.append(U, 2, 1, b"x", "R|2")
    replayed = [append(journal, seq) for seq in (1, 2, 3)]
    while store.in_flight:
        store.commit()
    assert all(r.fired and r.failure is None for r in replayed)
    assert [c[1] for c in store.stored if c[0] == U] == [1, 2, 3]


# -- settling and waiting -----------------------------------------------------


def test_settled_waits_for_persistence(journal, store):
    assert Result(journal.reached(U, 0)).fired
    append(journal, 1)
    append(journal, 2)
    settled = Result(journal.reached(U, 2))
    store.commit()
    assert not settled.fired
    store.commit()
    assert settled.fired and settled.failure is None
    assert Result(journal.reached(U, 2)).fired


def test_settled_ignores_state_changes_before_persistence(journal, store):
    append(journal, 1)
    settled = Result(journal.reached(U, 1))
    journal.state_changed(U)
    assert not settled.fired
    store.commit()
    assert settled.fired


def test_settled_after_known(journal):
    journal.known(U, 5)
    assert Result(journal.reached(U, 5)).fired
    assert not Result(journal.reached(U, 6)).fired


def test_wait_for_fires_on_output_of_that_container(journal, store):
    mine = Result(journal.wait_for(U))
    theirs = Result(journal.wait_for(V))
    append(journal, 1)
    assert not mine.fired
    store.commit()
    assert mine.fired
    assert not theirs.fired


def test_wait_for_fires_once(journal, store):
    waits = []
    d = journal.wait_for(U)
    d.addCallback(lambda _: waits.append(1))
    journal.state_changed(U)
    journal.state_changed(U)
    assert waits == [1]


def test_wait_state_fires_on_state_not_output(journal, store):
    state = Result(journal.wait_state(U))
    output = Result(journal.wait_for(U))
    append(journal, 1)
    store.commit()
    assert output.fired
    assert not state.fired
    journal.state_changed(U)
    assert state.fired


def test_state_changed_wakes_output_waiters(journal):
    output = Result(journal.wait_for(U))
    journal.state_changed(U)
    assert output.fired


def test_cancel_wait(journal):
    kept = Result(journal.wait_for(U))
    dropped_d = journal.wait_for(U)
    dropped = Result(dropped_d)
    state_d = journal.wait_state(U)
    state = Result(state_d)
    journal.cancel_wait(U, dropped_d)
    journal.cancel_wait(U, state_d)
    journal.cancel_wait(U, Deferred())  # unknown: ignored
    journal.cancel_wait(V, dropped_d)
    journal.state_changed(U)
    assert kept.fired
    assert not dropped.fired
    assert not state.fired


def test_forget(journal, store):
    append(journal, 1)
    store.commit()
    waiter = Result(journal.wait_for(U))
    state = Result(journal.wait_state(U))
    journal.forget(U)
    assert waiter.fired and state.fired
    assert journal.persisted_seq(U) == 0
    # A container forgotten starts again from seq 1.
    assert not append(journal, 1).fired


def test_settled_ends_when_the_container_is_forgotten():
    """
    A viewer waiting for output of a container that is then deleted is
    released, and no waiter stays registered for it.
    """
    from csvc.stdio.journal import Journal
    from twisted.internet.defer import Deferred as _Deferred

    class Store:
        def append_output(self, chunks):
            return Appended(_Deferred(), _Deferred())  # never commits

    journal = Journal(Store())
    journal.known("gone", 0)
    journal.append("gone", 1, 1, b"x", "")
    fired = []
    journal.reached("gone", 1).addCallback(fired.append)
    assert fired == []
    journal.forget("gone")
    assert fired == [None]
    assert "gone" not in journal._waiters


class CommittingStore(FakeStore):
    """
    A store whose positions are committed after the bytes (output files):
    each append's ``committed`` waits until the test says
    ``positions_commit()``.
    """

    def __init__(self):
        super().__init__()
        self.position_waiters = []

    def append_output(self, chunks):
        d = Deferred()
        self.calls.append((list(chunks), d))
        committed = Deferred()

        def written(_):
            self.position_waiters.append(committed)

        def failed(failure):
            committed.errback(failure)
            return failure

        return Appended(d.addCallbacks(written, failed), committed)

    def positions_commit(self):
        waiters, self.position_waiters = self.position_waiters, []
        for d in waiters:
            d.callback(None)


def test_reached_committed_waits_for_the_bytes_and_then_for_their_position():
    store = CommittingStore()
    journal = Journal(store, window=4)
    journal.known(U, 0)
    append(journal, 1)
    durable = Result(journal.reached(U, 1, committed=True))
    assert store.hastened == 1  # the store is asked not to wait for its interval
    assert not durable.fired
    store.commit()  # bytes written
    assert not durable.fired  # ... their position not yet committed
    assert journal.persisted_seq(U) == 1
    store.positions_commit()
    assert durable.fired
    assert Result(journal.reached(U, 1, committed=True)).fired


def test_reached_persisted_does_not_wait_for_the_position():
    store = CommittingStore()
    journal = Journal(store, window=4)
    journal.known(U, 0)
    append(journal, 1)
    settled = Result(journal.reached(U, 1))
    store.commit()
    assert settled.fired
    assert store.hastened == 0
    assert not Result(journal.reached(U, 1, committed=True)).fired


def test_reached_everything_waits_until_nothing_is_on_its_way():
    store = CommittingStore()
    journal = Journal(store, window=4)
    journal.known(U, 0)
    append(journal, 1)
    append(journal, 2)
    drained = Result(journal.reached(U, committed=True))
    store.commit()
    assert not drained.fired
    store.fail()  # failed chunks are not on their way any more either
    assert not drained.fired
    store.positions_commit()
    assert drained.fired and drained.failure is None
    assert journal.queued_seq(U) == 1
    # Nothing pending: fires at once.
    assert Result(journal.reached(U, committed=True)).fired
    append(journal, 2)
    again = Result(journal.reached(U, committed=True))
    store.commit()
    assert not again.fired
    store.positions_commit()
    assert again.fired


def test_known_positions_count_as_committed():
    store = CommittingStore()
    journal = Journal(store, window=4)
    journal.known(U, 3)
    assert Result(journal.reached(U, 3, committed=True)).fired
    assert Result(journal.reached(U, committed=True)).fired


def test_reached_ends_when_the_container_is_forgotten():
    store = CommittingStore()
    journal = Journal(store, window=4)
    journal.known(U, 0)
    append(journal, 1)
    store.commit()
    waiting = Result(journal.reached(U, 1, committed=True))
    journal.forget(U)
    assert waiting.fired
    assert U not in journal._reach_waiters
