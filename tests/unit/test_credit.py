"""
The credit window (``csvc.wire.credit``) and its pump (``csvc.wire.pump``):
never more than the window unacknowledged, items in the order fed, the
source paused exactly while the window is full or too much waits and
resumed exactly when credit returns, the close after the last answer.
"""

from hypothesis import given, settings, strategies as st
import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure

from csvc.wire.pump import HeldAnswers, Pump
from csvc.wire.credit import CreditWindow, WindowedQueue, WindowExceeded


# -- CreditWindow --------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 8), ops=st.lists(st.sampled_from(["send", "ack"]), max_size=80))
def test_credit_window_counts_and_signals_pause_and_resume(size, ops):
    window = CreditWindow(size)
    outstanding = 0
    for op in ops:
        if op == "send":
            if outstanding == size:
                with pytest.raises(WindowExceeded):
                    window.sent()
                continue
            pause = window.sent()
            outstanding += 1
            # Pause exactly when the last credit is used.
            assert pause == (outstanding == size)
        else:
            if outstanding == 0:
                with pytest.raises(WindowExceeded):
                    window.acked()
                continue
            resume = window.acked()
            # Resume exactly when credit returns to a full window.
            assert resume == (outstanding == size)
            outstanding -= 1
        assert window.outstanding == outstanding <= size
        assert window.credit == size - outstanding
        assert window.can_send == (outstanding < size)
        assert window.full == (outstanding == size)


def test_credit_window_takes_several_at_once():
    window = CreditWindow(4)
    assert not window.sent(3)
    assert window.sent(1)
    with pytest.raises(WindowExceeded):
        window.sent(1)
    assert window.acked(2)
    assert not window.acked(2)
    with pytest.raises(WindowExceeded):
        window.acked(1)


def test_a_window_holds_at_least_one():
    with pytest.raises(ValueError):
        CreditWindow(0)


# -- WindowedQueue -------------------------------------------------------

queue_ops = st.lists(
    st.one_of(
        st.lists(st.binary(min_size=1, max_size=20), min_size=1, max_size=5).map(lambda items: ("push", items)),
        st.just(("pop", None)),
        st.just(("ack", None)),
        st.just(("open", None)),
    ),
    max_size=100,
)


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 6), hold=st.integers(0, 50), ready=st.booleans(), ops=queue_ops)
def test_windowed_queue_keeps_order_bounds_and_pauses(size, hold, ready, ops):
    queue = WindowedQueue(size, hold=hold, ready=ready)
    pushed, popped = [], []
    outstanding = 0
    for op, arg in ops:
        if op == "push":
            queue.push(arg)
            pushed.extend(arg)
        elif op == "pop":
            if queue.sendable:
                popped.append(queue.pop())
                outstanding += 1
            else:
                with pytest.raises(WindowExceeded):
                    queue.pop()
        elif op == "ack" and outstanding:
            queue.acked()
            outstanding -= 1
        elif op == "open":
            queue.ready = True
            ready = True
        waiting = pushed[len(popped):]
        assert popped == pushed[:len(popped)]
        assert queue.window.outstanding == outstanding <= size
        assert queue.waiting_bytes == sum(map(len, waiting))
        assert len(queue) == len(waiting)
        assert queue.sendable == (bool(waiting) and ready and outstanding < size)
        assert queue.paused == (outstanding == size or queue.waiting_bytes > hold)
        assert queue.idle == (not waiting and outstanding == 0)


def test_windowed_queue_clear_keeps_outstanding():
    queue = WindowedQueue(2)
    queue.push([b"a", b"b", b"c"])
    queue.pop()
    queue.clear()
    assert len(queue) == 0 and queue.waiting_bytes == 0 and not queue.idle
    queue.acked()
    assert queue.idle


# -- Pump ----------------------------------------------------------------

class Source:
    def __init__(self):
        self.state = "producing"
        self.changes = 0

    def pauseProducing(self):
        assert self.state == "producing"
        self.state = "paused"
        self.changes += 1

    def resumeProducing(self):
        assert self.state == "paused"
        self.state = "producing"
        self.changes += 1


class Receiver:
    """
    Takes items, answering each when told.
    """

    def __init__(self):
        self.received = []
        self.pending = []
        self.closed = 0

    def send(self, item):
        d = Deferred()
        self.received.append(item)
        self.pending.append(d)
        return d

    def close(self):
        self.closed += 1
        return succeed(None)

    def answer(self, index=0):
        self.pending.pop(index).callback(None)


pump_ops = st.lists(
    st.one_of(
        st.lists(st.binary(min_size=1, max_size=30), min_size=1, max_size=4).map(lambda items: ("feed", items)),
        st.integers(0, 7).map(lambda i: ("answer", i)),
        st.just(("open", None)),
        st.just(("end", None)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(window=st.integers(1, 5), hold=st.integers(0, 60), ready=st.booleans(), ops=pump_ops)
def test_pump_sends_in_order_within_the_window_and_pauses_its_source(window, hold, ready, ops):
    source, receiver = Source(), Receiver()
    pump = Pump(receiver.send, source, window, hold=hold, ready=ready)
    fed = []
    ended = False
    for op, arg in ops:
        if op == "feed":
            pump.feed(arg)
            if not ended:
                fed.extend(arg)
        elif op == "answer" and receiver.pending:
            # Answers may come in any order; each returns one credit.
            receiver.answer(arg % len(receiver.pending))
        elif op == "open":
            pump.open()
            ready = True
        elif op == "end":
            pump.end(receiver.close)
            ended = True
        assert len(receiver.pending) <= window
        assert receiver.received == fed[:len(receiver.received)]
        if not ready:
            assert receiver.received == []
        waiting = fed[len(receiver.received):]
        if ready:
            # Nothing waits that the window has room for.
            assert not waiting or len(receiver.pending) == window
        should_pause = len(receiver.pending) == window or sum(map(len, waiting)) > hold
        assert (source.state == "paused") == should_pause
        assert receiver.closed == int(ended and ready and not waiting and not receiver.pending)
    # Everything answered: everything fed arrives, the source runs.
    pump.open()
    while receiver.pending:
        receiver.answer()
    assert receiver.received == fed
    assert source.state == "producing"


def test_pump_with_answers_at_once_keeps_order():
    received = []
    source = Source()

    def send(item):
        received.append(item)
        return succeed(None)

    pump = Pump(send, source, 2)
    pump.feed([b"a", b"b", b"c", b"d"])
    pump.feed([b"e"])
    assert received == [b"a", b"b", b"c", b"d", b"e"]
    assert source.changes == 0


def test_pump_failures_are_reported_and_count_as_answered():
    failures = []
    source = Source()
    calls = []

    def send(item):
        calls.append(item)
        return fail(Failure(RuntimeError(f"no {item!r}")))

    closes = []

    def close():
        closes.append(1)
        return fail(Failure(RuntimeError("no close")))

    pump = Pump(send, source, 1, failed=failures.append)
    pump.feed([b"a", b"b"])
    pump.end(close)
    assert calls == [b"a", b"b"] and closes == [1]
    assert [f.getErrorMessage() for f in failures] == ["no b'a'", "no b'b'", "no close"]
    assert source.state == "producing"


def test_pump_discard_and_stop():
    source, receiver = Source(), Receiver()
    pump = Pump(receiver.send, source, 1, ready=False)
    pump.feed([b"x" * 10])
    assert source.state == "paused"  # more than hold=0 waits
    pump.discard()
    assert source.state == "producing" and receiver.received == []
    pump.open()
    pump.feed([b"a", b"b"])
    pump.stop()
    receiver.answer()
    pump.end(receiver.close)
    assert receiver.received == [b"a"] and receiver.closed == 0


# -- HeldAnswers ---------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.sampled_from(["take", "pause", "resume"]), max_size=60))
def test_held_answers_fire_exactly_while_not_paused_in_order(ops):
    answers = HeldAnswers()
    paused = False
    fired = []
    taken = 0
    for op in ops:
        if op == "take":
            n = taken
            answers.answer().addCallback(lambda _, n=n: fired.append(n))
            taken += 1
        elif op == "pause":
            answers.pause()
            paused = True
        else:
            answers.resume()
            paused = False
        # Every answer taken while running, or before the last resume, has
        # fired, in order; the rest are held.
        assert fired == list(range(len(fired)))
        assert len(answers) == taken - len(fired)
        if not paused:
            assert len(answers) == 0


def test_held_answers_released_with_a_failure():
    answers = HeldAnswers()
    answers.pause()
    d = answers.answer()
    answers.release(Failure(RuntimeError("gone")))
    assert len(answers) == 0
    assert d.result.getErrorMessage() == "gone"
    d.addErrback(lambda f: None)
