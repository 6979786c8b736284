"""
The agent's output follower's states: the table (``follower_step``) and a
follower driven by any sequence of reads, acknowledgements, failures and
the stream's end.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from csvc.agent.output import (
    DONE, ENDED, FAILED, FAILING, FOLLOWER_EVENTS, FOLLOWER_STATES, FOLLOWER_TRANSITIONS, FOLLOWING,
    InvalidFollowerEvent, OutputFollower, follower_step,
)
from csvc.stdio.reader import OutputReader

events = st.sampled_from(sorted(FOLLOWER_EVENTS) + ["resume"])


def test_the_table_names_only_the_followers_states():
    for (state, _), target in FOLLOWER_TRANSITIONS.items():
        assert state in FOLLOWER_STATES and target in FOLLOWER_STATES


@given(st.lists(events, max_size=30))
def test_no_sequence_of_events_leaves_the_states(sequence):
    state = FOLLOWING
    for event in sequence:
        try:
            after = follower_step(state, event)
        except InvalidFollowerEvent:
            assert (state, event) not in FOLLOWER_TRANSITIONS
            continue
        assert after in FOLLOWER_STATES
        # Its outcome, once known, stays: done stays done, failed failed.
        if state == DONE:
            assert after == DONE
        if state in (FAILING, FAILED):
            assert after in (FAILING, FAILED)
        state = after


def test_a_follower_done_takes_no_failure_of_a_send():
    with pytest.raises(InvalidFollowerEvent):
        follower_step(DONE, "send_failed")
    with pytest.raises(InvalidFollowerEvent):
        follower_step(FOLLOWING, "acked_all")


operations = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(1, 30)),
        st.tuples(st.sampled_from(["ack", "refuse", "end", "open_failed", "stop"]), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_a_follower_stays_in_its_states_and_its_outcome_is_told_once(ops):
    sent = []

    def send(seq, stream, data, cursor):
        d = Deferred()
        sent.append((data, d))
        return d

    follower = OutputFollower(send, OutputReader(True), 0, window=2, chunk_size=16)
    transport = StringTransport()
    follower.makeConnection(transport)
    outcomes = []
    follower.done.addCallbacks(lambda seq: outcomes.append(("done", seq)), lambda f: outcomes.append(("failed",)))
    read, acked, lost = b"", b"", False
    for op, size in ops:
        if op == "read" and not lost and follower.state == FOLLOWING:
            data = bytes([97 + len(read) % 26]) * size
            read += data
            follower.dataReceived(data)
        elif op in ("ack", "refuse") and sent:
            data, d = sent.pop(0)
            if op == "ack":
                acked += data
                d.callback(None)
            else:
                d.errback(Failure(ConnectionError("the link is gone")))
        elif op == "end" and not lost:
            lost = True
            follower.connectionLost(Failure(ConnectionError("end")))
        elif op == "open_failed":
            follower.fail(Failure(ConnectionError("no stream")))
        elif op == "stop":
            follower.stop()
        if transport.producerState == "stopped" and not lost:
            # The engine's stream, stopped, ends.
            lost = True
            follower.connectionLost(Failure(ConnectionError("stopped")))
        assert follower.state in FOLLOWER_STATES
        assert len(outcomes) <= 1
        assert (follower.state in (FAILING, FAILED)) == (outcomes == [("failed",)])
        assert (follower.state == DONE) == (outcomes[:1] == [("done", follower.seq)])
        if follower.state in (ENDED, DONE, FAILED):
            assert lost or ("open_failed", 0) in ops
    if follower.state == FOLLOWING:
        follower.connectionLost(Failure(ConnectionError("end")))
    while sent and follower.state == ENDED:
        data, d = sent.pop(0)
        acked += data
        d.callback(None)
    if outcomes == [("failed",)]:
        assert follower.state in (FAILING, FAILED)
    else:
        # Every byte read went out once, in order, and was acknowledged.
        assert follower.state == DONE and acked == read
