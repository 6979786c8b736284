"""
The container state table (csvc.compute.states).
"""

import pytest

from csvc.compute.states import ALLOWED, STATES, InvalidState, check

CASES = [(action, status) for action in sorted(ALLOWED) for status in STATES]


def test_table_names_only_known_states():
    assert {"start", "stop", "kill", "restart", "delete", "force_delete", "attach"} <= set(ALLOWED)
    for states in ALLOWED.values():
        assert set(states) <= set(STATES)


@pytest.mark.parametrize("action,status", [c for c in CASES if c[1] in ALLOWED[c[0]]])
def test_allowed(action, status):
    assert check(action, status) is None


@pytest.mark.parametrize("action,status", [c for c in CASES if c[1] not in ALLOWED[c[0]]])
def test_refused_names_action_and_status(action, status):
    with pytest.raises(InvalidState) as caught:
        check(action, status)
    assert caught.value.action == action
    assert caught.value.status == status
    message = str(caught.value)
    assert action.replace("_", " ") in message
    assert f"'{status}'" in message
    for allowed in ALLOWED[action]:
        assert allowed in message


def test_some_expected_decisions():
    # Spot checks that do not merely restate the table.
    check("start", "exited")
    check("force_delete", "running")
    with pytest.raises(InvalidState):
        check("start", "running")
    with pytest.raises(InvalidState):
        check("delete", "running")
    with pytest.raises(InvalidState):
        check("stop", "exited")


def test_detail_is_appended():
    with pytest.raises(InvalidState, match="; still pulling the image$"):
        check("stop", "creating", "still pulling the image")


def test_unknown_status_refused():
    with pytest.raises(InvalidState, match="'vanished'"):
        check("start", "vanished")
