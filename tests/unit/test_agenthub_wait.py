"""
csvc/agents/hub.py AgentHub.call after a control-plane start: a call
to an instance whose agent has not registered again waits for it, for as
long as the heartbeat monitor gives agents to come back, then fails with
InstanceUnavailable; after that window calls fail at once, as before.
``call_waiting`` (a delete's) waits its own patience, or the window if that
is longer, and calls once the agent has its registration's answer.
"""

from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from csvc.wire import commands
from csvc.agents.hub import AgentHub, InstanceUnavailable
from csvc.scheduler.health import HeartbeatMonitor


class Link:
    def __init__(self):
        self.calls = []

    def callRemote(self, command, **kwargs):
        self.calls.append((command, kwargs))
        return succeed({"ok": True})


def outcome(d):
    seen = []
    d.addBoth(seen.append)
    return seen


def started_hub():
    clock = Clock()
    hub = AgentHub(store=None, journal=None, clock=clock)
    hub.expect_agents(HeartbeatMonitor.startup_for(1.0))
    return hub, clock


def test_a_call_waits_for_an_agent_that_registers_in_time():
    hub, clock = started_hub()
    seen = outcome(hub.call("i-1", commands.RemoveContainer, uuid="c", force=True))
    clock.advance(9)
    assert seen == []
    link = Link()
    hub._links["i-1"] = link
    hub.notify_registered("i-1")
    # Not within the registration itself: its answer goes to the agent first.
    assert seen == [] and link.calls == []
    clock.advance(0)
    assert seen == [{"ok": True}]
    assert link.calls == [(commands.RemoveContainer, {"uuid": "c", "force": True})]


def test_a_call_to_an_agent_that_does_not_come_back_fails_at_the_end_of_the_window():
    hub, clock = started_hub()
    clock.advance(4)
    seen = outcome(hub.call("i-1", commands.StartContainer, uuid="c"))
    clock.advance(5.9)
    assert seen == []
    clock.advance(0.1)
    assert seen[0].check(InstanceUnavailable)
    assert "has not registered since the control plane started" in str(seen[0].value)
    # The wait was cancelled: a registration later wakes nobody.
    assert hub._registering.get("i-1", []) == []


def test_after_the_window_calls_fail_at_once():
    hub, clock = started_hub()
    clock.advance(10)
    seen = outcome(hub.call("i-1", commands.StartContainer, uuid="c"))
    assert seen[0].check(InstanceUnavailable)
    assert str(seen[0].value) == "instance i-1 is not connected"


def test_without_a_start_window_calls_fail_at_once():
    hub = AgentHub(store=None, journal=None, clock=Clock())
    seen = outcome(hub.call("i-1", commands.StartContainer, uuid="c"))
    assert seen[0].check(InstanceUnavailable)


def test_call_waiting_waits_its_patience_outside_the_start_window():
    clock = Clock()
    hub = AgentHub(store=None, journal=None, clock=clock)
    seen = outcome(hub.call_waiting("i-1", 5, commands.RemoveContainer, uuid="c", force=True))
    clock.advance(4.9)
    assert seen == []
    clock.advance(0.1)
    assert seen[0].check(InstanceUnavailable)
    assert str(seen[0].value) == "instance i-1 is not connected: its agent did not register within 5 s"
    assert hub._registering.get("i-1", []) == []


def test_call_waiting_goes_once_the_agent_registers_and_after_its_answer():
    clock = Clock()
    hub = AgentHub(store=None, journal=None, clock=clock)
    seen = outcome(hub.call_waiting("i-1", 5, commands.RemoveContainer, uuid="c", force=True))
    clock.advance(2)
    link = Link()
    hub._links["i-1"] = link
    hub.notify_registered("i-1")
    assert link.calls == []
    clock.advance(0)
    assert seen == [{"ok": True}]
    assert link.calls == [(commands.RemoveContainer, {"uuid": "c", "force": True})]


def test_call_waiting_within_the_start_window_waits_for_the_longer_of_the_two():
    hub, clock = started_hub()
    seen = outcome(hub.call_waiting("i-1", 5, commands.RemoveContainer, uuid="c", force=True))
    clock.advance(9.9)
    assert seen == []
    clock.advance(0.1)
    assert "has not registered since the control plane started" in str(seen[0].value)


def test_call_waiting_to_a_connected_agent_calls_at_once():
    hub = AgentHub(store=None, journal=None, clock=Clock())
    link = Link()
    hub._links["i-1"] = link
    seen = outcome(hub.call_waiting("i-1", 5, commands.StartContainer, uuid="c"))
    assert seen == [{"ok": True}]
