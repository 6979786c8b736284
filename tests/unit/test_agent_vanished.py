"""
The agent notices a container removed from its engine behind the service's
back (the engine's ``destroy`` event, or an engine that no longer knows it
when its output ends) and reports it once; a removal the service asked for
is not reported.
"""

import json

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from csvc.wire import commands
from csvc.agent.core import AgentCore
from csvc.agent.events import EngineEvents, EventLines

from tests.unit.agentlinks import RecordingLink


class Engine:
    def __init__(self):
        self.gone = set()
        self.removed = []

    def create(self, spec):
        return succeed("e-" + spec["uuid"])

    def inspect(self, uuid):
        if uuid in self.gone:
            return fail(commands.NoSuchContainer(uuid))
        return succeed({"running": False, "state": "exited", "exit_code": 0, "finished_at": ""})

    def remove_container(self, uuid, force, volumes=False):
        self.removed.append(uuid)
        return succeed(None)


def core_with(*uuids):
    engine = Engine()
    core = AgentCore(engine, "token", 10, "host", follower_factory=None, clock=Clock())
    core.link = RecordingLink()
    for uuid in uuids:
        core.create({"uuid": uuid})
    return core, engine


def vanished(core):
    return [kwargs for command, kwargs in core.link.calls if command is commands.Vanished]


def test_a_destroy_after_a_die_is_reported_once_with_the_exit_code():
    core, _engine = core_with("c1")
    core.engine_died("c1", 137)
    core.engine_destroyed("c1")
    core.engine_destroyed("c1")
    assert vanished(core) == [{"uuid": "c1", "seen": "destroy", "exit_code": 137, "last_seq": 0}]


def test_a_removal_the_service_asked_for_is_not_reported():
    core, engine = core_with("c1")
    core.remove("c1", True)
    core.engine_destroyed("c1")
    assert engine.removed == ["c1"] and vanished(core) == []
    # Nor is a container the agent never followed.
    core.engine_died("other", 1)
    core.engine_destroyed("other")
    assert vanished(core) == []


def test_a_destroy_waits_for_the_output_stream_to_drain():
    core, _engine = core_with("c1")
    watch = core._watches["c1"]
    follower = watch.follower = type("Follower", (), {"done": Deferred(), "seq": 7, "cursor": "x"})()
    follower.done.addCallback(core._follow_ended, watch, follower)
    core.engine_destroyed("c1")
    assert vanished(core) == []
    follower.done.callback(7)
    assert vanished(core) == [{"uuid": "c1", "seen": "destroy", "exit_code": -1, "last_seq": 7}]
    # The drained stream's own end reported nothing more (no Exited).
    assert [c for c, _ in core.link.calls] == [commands.Vanished]


def test_an_engine_that_no_longer_knows_it_when_its_output_ends_is_reported():
    core, engine = core_with("c1")
    watch = core._watches["c1"]
    follower = type("Follower", (), {"seq": 4, "cursor": "x"})()
    engine.gone.add("c1")
    core._follow_ended(4, watch, follower)
    # The destroy event usually follows, with the die event's exit before it.
    assert vanished(core) == []
    core._clock.advance(core.destroy_grace)
    assert vanished(core) == [{"uuid": "c1", "seen": "missing", "exit_code": -1, "last_seq": 4}]
    assert "c1" not in core._watches


def test_a_destroy_event_in_the_grace_period_reports_it_with_the_exit():
    core, engine = core_with("c1")
    watch = core._watches["c1"]
    follower = type("Follower", (), {"seq": 2, "cursor": "x"})()
    engine.gone.add("c1")
    core._follow_ended(2, watch, follower)
    core.engine_died("c1", 137)
    core.engine_destroyed("c1")
    core._clock.advance(core.destroy_grace)
    assert vanished(core) == [{"uuid": "c1", "seen": "destroy", "exit_code": 137, "last_seq": 2}]


class Core:
    def __init__(self):
        self.calls = []

    def engine_started(self, uuid, at):
        self.calls.append(("started", uuid))

    def engine_died(self, uuid, exit_code, finished_at):
        self.calls.append(("died", uuid, exit_code, finished_at))

    def engine_destroyed(self, uuid):
        self.calls.append(("destroyed", uuid))


def event(action, **attributes):
    return json.dumps({"Type": "container", "Action": action, "Actor": {"Attributes": attributes},
                       "timeNano": 1}).encode() + b"\n"


def test_engine_events_become_calls_on_the_core():
    core = Core()
    events = EngineEvents(engine=None, core=core, clock=Clock())
    lines = EventLines(events._event, lambda: None)
    lines.dataReceived(event("start", **{"csvc.uuid": "c1"}) + event("kill", **{"csvc.uuid": "c1"}))
    lines.dataReceived(event("die", exitCode="137", **{"csvc.uuid": "c1"}) + event("destroy", **{"csvc.uuid": "c1"}))
    lines.dataReceived(event("destroy", name="not-ours") + event("die", exitCode="x", **{"csvc.uuid": "c2"}))
    assert core.calls == [
        ("started", "c1"), ("died", "c1", 137, "1970-01-01T00:00:00.000000001Z"), ("destroyed", "c1"),
    ]
