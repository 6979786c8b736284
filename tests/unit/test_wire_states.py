"""
The one lifecycle table helper (``csvc.wire.states.StateTable``) that the
follower, the agent link and the attach session step through.
"""

import pytest

from csvc.wire.states import InvalidEvent, StateTable


class Broken(InvalidEvent):
    pass


TABLE = StateTable(
    "door", {("shut", "open"): "open", ("open", "shut"): "shut", ("open", "break"): "gone"},
    absorbing=["gone"], invalid=Broken)


def test_steps_through_the_table():
    assert TABLE.step("shut", "open") == "open"
    assert TABLE.step("open", "shut") == "shut"
    assert TABLE.step("open", "break") == "gone"


def test_events_are_those_of_the_table():
    assert TABLE.events == {"open", "shut", "break"}


def test_an_absorbing_state_ignores_every_event():
    assert TABLE.step("gone", "open") == "gone"
    assert TABLE.step("gone", "anything") == "gone"


def test_a_pair_not_in_the_table_raises_the_subjects_error():
    with pytest.raises(Broken, match="a door shut takes no 'shut'"):
        TABLE.step("shut", "shut")


def test_without_absorbing_states_every_unknown_pair_raises():
    table = StateTable("gate", {("a", "go"): "b"})
    with pytest.raises(InvalidEvent):
        table.step("b", "go")
