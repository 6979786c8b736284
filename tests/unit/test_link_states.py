"""
An agent link's states: the table (``link_step``) and a link driven by any
sequence of what can reach it (bytes, a Register box, time, the end).
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from csvc.agents.link_states import (
    CLOSED, DROPPED, LINK_EVENTS, LINK_STATES, LINK_TRANSITIONS, REGISTERED, UNREGISTERED, InvalidLinkEvent,
    link_step,
)
from twisted.internet.testing import StringTransport
from twisted.protocols import amp

from csvc.wire import commands
from tests.unit.test_agent_register_deadline import connect, register_box

def heartbeat_box():
    agent = amp.AMP()
    agent_transport = StringTransport()
    agent.makeConnection(agent_transport)
    agent.callRemote(commands.Heartbeat)
    return agent_transport.value()


events = st.sampled_from(sorted(LINK_EVENTS) + ["heartbeat"])


def test_the_table_names_only_the_links_states():
    for (state, _), target in LINK_TRANSITIONS.items():
        assert state in LINK_STATES and target in LINK_STATES


@given(st.lists(events, max_size=30))
def test_no_sequence_of_events_leaves_the_states(sequence):
    state = UNREGISTERED
    for event in sequence:
        try:
            after = link_step(state, event)
        except InvalidLinkEvent:
            assert state != CLOSED and (state, event) not in LINK_TRANSITIONS
            continue
        assert after in LINK_STATES
        if state == CLOSED:
            assert after == CLOSED
        if state != UNREGISTERED:
            # Only an unregistered link is dropped or becomes registered.
            assert after in (state, CLOSED)
        state = after
    assert link_step(state, "lost") == CLOSED


def test_a_registered_link_is_not_dropped():
    with pytest.raises(InvalidLinkEvent):
        link_step(REGISTERED, "drop")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["heartbeat", "register", "late", "lost"]), max_size=12))
def test_a_link_stays_in_its_states(ops):
    clock, hub, link, transport = connect(timeout=10, limit=len(register_box()) + 2 * len(heartbeat_box()))
    hub.heartbeat = lambda link: {}
    lost = False
    for op in ops:
        before = link.link_state
        if op == "heartbeat":
            link.dataReceived(heartbeat_box())
        elif op == "register":
            link.dataReceived(register_box())
        elif op == "late":
            clock.advance(10)
        elif op == "lost" and not lost:
            lost = True
            link.connectionLost(Failure(ConnectionDone()))
        assert link.link_state in LINK_STATES
        if before == CLOSED:
            assert link.link_state == CLOSED
        if link.link_state == DROPPED:
            assert transport.disconnecting and hub.registered == []
        if link.link_state == REGISTERED:
            assert hub.registered and link.instance_uuid == "i-1" and not transport.disconnecting
    assert (link.link_state == CLOSED) == lost
    assert hub.lost_links == ([link] if lost else [])
