"""
The attach session's states: the table (``session_step``) and a session
driven by any sequence of what can happen to it.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import succeed

from csvc.relay.session import (
    BEHIND, CLOSED, LIVE, SESSION_EVENTS, SESSION_STATES, SESSION_TRANSITIONS, AttachSession,
    InvalidSessionEvent, session_step,
)
from csvc.stdio.journal import Journal
from tests.unit.test_session import MemoryStore, Sink

events = st.sampled_from(sorted(SESSION_EVENTS) + ["resume", "finish"])


def test_the_table_names_only_the_sessions_states():
    for (state, _), target in SESSION_TRANSITIONS.items():
        assert state in SESSION_STATES and target in SESSION_STATES


@given(st.lists(events, max_size=30))
def test_no_sequence_of_events_leaves_the_states(sequence):
    state = BEHIND
    for event in sequence:
        try:
            after = session_step(state, event)
        except InvalidSessionEvent:
            assert state != CLOSED and (state, event) not in SESSION_TRANSITIONS
            continue
        assert after in SESSION_STATES
        if state == CLOSED:
            assert after == CLOSED
        state = after
    assert session_step(state, "stop") == CLOSED


def test_an_event_the_state_does_not_take_is_refused():
    with pytest.raises(InvalidSessionEvent):
        session_step(BEHIND, "missed")
    with pytest.raises(InvalidSessionEvent):
        session_step(LIVE, "resume")
    assert session_step(CLOSED, "missed") == CLOSED


class DeletableStore(MemoryStore):
    def get_container(self, uuid, project_id=None):
        return succeed(None if self.row is None else dict(self.row))


operations = st.lists(
    st.one_of(
        st.tuples(st.just("chunk"), st.integers(1, 40)),
        st.tuples(st.sampled_from(["pause", "resume", "exit", "delete", "stop", "gap"]), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_a_session_stays_in_its_states_and_delivers_every_byte_once(ops):
    store = DeletableStore()
    journal = Journal(store)
    journal.known("c", 0)
    sink = Sink()
    session = AttachSession(journal, store, "c", {1}, 1, sink, queue_limit=64)
    session.start()
    sent, seq, ended, gone = b"", 0, False, False
    for op, size in ops:
        if op == "chunk" and not ended:
            seq += 1
            data = bytes([seq % 251]) * size
            sent += data
            journal.append("c", seq, 1, data, "")
        elif op == "gap" and not ended:
            # A chunk the live tail never shows (the journal's own drop).
            seq += 1
            data = bytes([seq % 251]) * 3
            sent += data
            store.append_output([("c", seq, 1, data, "")])
            journal.known("c", seq)
        elif op == "pause":
            session.pauseProducing()
        elif op == "resume":
            session.resumeProducing()
        elif op == "exit" and not ended:
            ended = True
            store.row.update(status="exited", exit_code=0, last_seq=seq)
            journal.state_changed("c")
        elif op == "delete" and not ended:
            ended = gone = True
            store.row = None
            journal.state_changed("c")
        elif op == "stop":
            session.stop()
        assert session.state in SESSION_STATES
        assert sent.startswith(sink.data[1])
    if session.state == CLOSED and sink.finished_with is None:
        return  # stopped by the client
    session.resumeProducing()
    if not ended:
        store.row.update(status="exited", exit_code=0, last_seq=seq)
        journal.state_changed("c")
    assert session.state == CLOSED
    if gone:
        assert sink.finished_with == (None, "the container was deleted")
        assert sent.startswith(sink.data[1])
    else:
        assert sink.finished_with == (0, None)
        assert sink.data[1] == sent
