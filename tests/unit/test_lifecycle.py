"""
The container life-cycle machine: the table (``csvc.compute.states``) and
its one writer (``csvc.compute.lifecycle.Lifecycle``).
"""

import pytest
from hypothesis import given, settings, strategies as st
from twisted.internet.defer import succeed

from csvc.compute import states
from csvc.compute.lifecycle import NOTICES, Lifecycle, marked_down
from csvc.notify import events as notices


# -- the table ---------------------------------------------------------------


def test_every_transition_leaves_and_reaches_a_state_of_the_table():
    for (state, event), target in states.TRANSITIONS.items():
        assert state in states.STATES, (state, event)
        assert target in states.STATES, (state, event)
    assert states.INITIAL in states.STATES


def test_each_event_leads_to_one_state():
    # The store's conditional update moves every source of an event to one
    # target in one statement: that is sound only if the target is unique.
    for event in states.EVENTS:
        targets = {states.TRANSITIONS[(s, event)] for s in states.sources(event)}
        assert targets == {states.target(event)}, event


def test_every_state_is_reachable_from_the_initial_one():
    reached, frontier = {states.INITIAL}, [states.INITIAL]
    while frontier:
        state = frontier.pop()
        for (source, _event), target in states.TRANSITIONS.items():
            if source == state and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(states.STATES)


def test_the_actions_name_only_states_of_the_table():
    for action, allowed in states.ALLOWED.items():
        assert allowed and set(allowed) <= set(states.STATES), action
    # The actions that are transitions are allowed exactly where they happen.
    assert states.ALLOWED["start"] == states.sources("start_requested")
    assert states.ALLOWED["force_delete"] == states.sources("delete_deferred")


def test_an_unknown_event_or_a_transition_outside_the_table_is_refused():
    with pytest.raises(states.InvalidTransition):
        states.next_state("exited", "exited")
    with pytest.raises(states.InvalidTransition):
        states.next_state("running", "no_such_event")
    with pytest.raises(states.InvalidTransition):
        states.sources("no_such_event")
    assert states.next_state("running", "exited") == "exited"
    assert states.next_state("running", states.start_failed("exited")) == "exited"
    assert states.next_state("running", states.start_failed("created")) == "created"


def test_check_names_the_action_and_where_it_is_allowed():
    with pytest.raises(states.InvalidState) as caught:
        states.check("stop", "exited")
    assert str(caught.value) == "cannot stop a container in status 'exited' (stop is allowed in: running)"
    assert states.may("stop", "running") and not states.may("stop", "created")


events = st.sampled_from(states.EVENTS) | st.text(max_size=12)


@settings(max_examples=300)
@given(start=st.sampled_from(states.STATES), sequence=st.lists(events, max_size=40))
def test_no_sequence_of_events_leads_outside_the_table(start, sequence):
    state = start
    for event in sequence:
        try:
            after = states.next_state(state, event)
        except states.InvalidTransition:
            assert (state, event) not in states.TRANSITIONS
            assert not states.happens(event, state)
            continue
        assert states.happens(event, state)
        assert after == states.TRANSITIONS[(state, event)]
        state = after
        assert state in states.STATES


# -- the writer --------------------------------------------------------------


class Store:
    """
    The store's container rows and its conditional update, in memory.
    """

    def __init__(self):
        self.rows = {}
        self.down = []

    def update_container(self, container_uuid, expect_status=None, **values):
        row = self.rows.get(container_uuid)
        if isinstance(expect_status, str):
            expect_status = (expect_status,)
        if row is None or (expect_status is not None and row["status"] not in expect_status):
            return succeed(None)
        row.update(values)
        return succeed(dict(row))

    def mark_instance_down(self, instance_uuid, reason, from_states, to_state):
        self.down.append(instance_uuid)
        moved = [u for u, r in sorted(self.rows.items())
                 if r["instance_uuid"] == instance_uuid and r["status"] in from_states]
        for u in moved:
            self.rows[u].update(status=to_state, status_reason=reason)
        return succeed(moved)


class Told:
    """
    The journal's and the notifier's side, in the order they were told.
    """

    def __init__(self):
        self.said = []

    def state_changed(self, container_uuid):
        self.said.append(("journal", container_uuid))

    def container(self, notice, row, **extra):
        self.said.append((notice, row["uuid"], row["status"]))


def lifecycle(*rows):
    store, told = Store(), Told()
    for row in rows:
        store.rows[row["uuid"]] = dict(row)
    return store, told, Lifecycle(store, told, told)


def row(uuid, status, instance="i1", **more):
    return dict(dict(uuid=uuid, status=status, instance_uuid=instance, status_reason=None), **more)


def test_a_transition_writes_the_target_with_its_values_then_tells():
    store, told, machine = lifecycle(row("c1", "running"))
    d = machine.transition("c1", "exited", exit_code=3)
    written = []
    d.addCallback(written.append)
    assert written[0]["status"] == "exited" and written[0]["exit_code"] == 3
    assert store.rows["c1"]["status"] == "exited"
    # The exit is told before the journal's waiters wake.
    assert told.said == [(notices.CONTAINER_EXIT, "c1", "exited"), ("journal", "c1")]


def test_a_transition_from_a_state_it_cannot_leave_writes_and_tells_nothing():
    store, told, machine = lifecycle(row("c1", "exited"))
    written = []
    machine.transition("c1", "exited", exit_code=3).addCallback(written.append)
    assert written == [None]
    assert store.rows["c1"] == row("c1", "exited")
    assert told.said == []
    machine.transition("gone", "exited").addCallback(written.append)
    assert written == [None, None]


def test_a_transition_left_unannounced_is_told_later():
    store, told, machine = lifecycle(row("c1", "created"))
    written = []
    machine.transition("c1", "start_requested", announce=False).addCallback(written.append)
    assert store.rows["c1"]["status"] == "running"
    assert told.said == []
    machine.announce("start_requested", written[0])
    assert told.said == [(notices.CONTAINER_START, "c1", "running"), ("journal", "c1")]


def test_an_event_without_a_notice_only_wakes_the_journal():
    store, told, machine = lifecycle(row("c1", "running"))
    machine.transition("c1", "vanished", status_reason="gone")
    assert "vanished" not in NOTICES
    assert told.said == [("journal", "c1")]
    assert store.rows["c1"]["status"] == "error"


def test_instance_down_moves_the_table_s_sources_only_and_wakes_each():
    rows = [row("a", "creating"), row("b", "created"), row("c", "running"), row("d", "exited"),
            row("e", "deleting"), row("f", "running", instance="i2")]
    store, told, machine = lifecycle(*rows)
    errored = []
    machine.instance_down("i1", "instance one is down: silent").addCallback(errored.append)
    assert errored == [["a", "b", "c"]]
    assert {u: r["status"] for u, r in store.rows.items()} == {
        "a": "error", "b": "error", "c": "error", "d": "exited", "e": "deleting", "f": "running",
    }
    assert told.said == [("journal", "a"), ("journal", "b"), ("journal", "c")]


def test_marked_down_is_an_error_from_instance_down_only():
    assert marked_down(row("a", "error", status_reason="instance one is down: its agent missed heartbeats"))
    assert not marked_down(row("a", "error", status_reason="the container vanished from the engine"))
    assert not marked_down(row("a", "running", status_reason="instance one is down: its agent missed heartbeats"))


@settings(max_examples=200)
@given(start=st.sampled_from(states.STATES), sequence=st.lists(st.sampled_from(states.EVENTS), max_size=30))
def test_the_writer_follows_the_table_for_any_sequence(start, sequence):
    store, told, machine = lifecycle(row("c1", start))
    model = start
    for event in sequence:
        written = []
        machine.transition("c1", event).addCallback(written.append)
        if states.happens(event, model):
            model = states.next_state(model, event)
            assert written[0]["status"] == model
            assert told.said[-1] == ("journal", "c1")
        else:
            assert written == [None]
        assert store.rows["c1"]["status"] == model
        assert model in states.STATES
