"""
How the agent reports the end of a container's run (the engine's die event,
or inspect when that has not come) and writes its stdin (at once when the
stream is open and idle, in order otherwise).
"""

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from csvc.wire import commands
from csvc.agent.core import AgentCore, ContainerWatch

from tests.unit.agentlinks import RecordingLink


class SlowEngine:
    """An engine whose inspect answers only when told (as Docker's does
    while it closes a large log)."""

    def __init__(self):
        self.inspects = []
        self.started = []

    def inspect(self, uuid):
        d = Deferred()
        self.inspects.append(d)
        return d

    def attach(self, engine_id, follower, **kwargs):
        return succeed(None)

    def start_container(self, uuid):
        self.started.append(uuid)
        return succeed(None)


def slow_core(uuid):
    engine = SlowEngine()
    core = AgentCore(engine, "token", 10, "host", follower_factory=None, clock=Clock())
    core.link = RecordingLink()
    core._watches[uuid] = ContainerWatch(uuid, "e-" + uuid, tty=False)

    def new_follower(watch, skip):
        watch.follower = type("Follower", (), {"seq": 3, "cursor": "k", "stop": lambda self: None})()
        return watch.follower

    core._new_follower = new_follower
    return core, engine


def exits(core):
    return [kwargs for command, kwargs in core.link.calls if command is commands.Exited]


def test_the_die_event_reports_the_exit_without_waiting_for_inspect():
    core, engine = slow_core("c1")
    core.start("c1")
    watch = core._watches["c1"]
    core.engine_started("c1", "1")
    core._follow_ended(3, watch, watch.follower)
    assert exits(core) == [] and len(engine.inspects) == 1
    core.engine_died("c1", 7, "2026-11-26T06:51:02.000000001Z")
    assert exits(core) == [{"uuid": "c1", "exit_code": 7, "last_seq": 3,
                            "finished_at": "2026-11-26T06:51:02.000000001Z", "removed": False}]
    # The inspect answering later changes nothing.
    engine.inspects[0].callback({"running": False, "state": "exited", "exit_code": 7, "finished_at": ""})
    assert len(exits(core)) == 1


def test_a_die_event_that_came_first_is_used_at_once():
    core, engine = slow_core("c1")
    core.start("c1")
    core.engine_started("c1", "1")
    core.engine_died("c1", 0, "")
    core._follow_ended(3, core._watches["c1"], core._watches["c1"].follower)
    assert [e["exit_code"] for e in exits(core)] == [0]


def test_the_previous_runs_late_die_event_is_not_this_runs_exit():
    core, engine = slow_core("c1")
    core.start("c1")
    # The previous run's die arrives after this start, before its start event.
    core.engine_died("c1", 9, "")
    watch = core._watches["c1"]
    core._follow_ended(3, watch, watch.follower)
    assert exits(core) == []
    # Without this run's die (event stream down), inspect decides.
    engine.inspects[0].callback({"running": False, "state": "exited", "exit_code": 4, "finished_at": ""})
    assert [e["exit_code"] for e in exits(core)] == [4]


def test_a_restart_clears_the_previous_die():
    core, engine = slow_core("c1")
    core.start("c1")
    core.engine_started("c1", "1")
    core.engine_died("c1", 1, "")
    core.engine_started("c1", "2")
    assert core._watches["c1"].died is None


class StdinEngine(SlowEngine):
    """An engine whose stdin attach opens when told."""

    def __init__(self):
        super().__init__()
        self.attaching = []

    def attach(self, engine_id, protocol, stdin=False, output=True):
        if not stdin:
            return succeed(None)
        d = Deferred()
        self.attaching.append((protocol, d))
        return d


def test_stdin_writes_reach_the_engine_in_order_while_its_stream_opens():
    engine = StdinEngine()
    core = AgentCore(engine, "token", 10, "host", follower_factory=None, clock=Clock())
    core._watches["c1"] = ContainerWatch("c1", "e-c1", tty=True)
    done = []
    core.write_stdin("c1", b"a").addCallback(done.append)
    core.write_stdin("c1", b"b").addCallback(done.append)
    assert len(engine.attaching) == 1 and done == []
    stream, opened = engine.attaching[0]
    transport = StringTransport()
    stream.makeConnection(transport)
    opened.callback(None)
    assert transport.value() == b"ab" and len(done) == 2
    # Open and idle: the next write goes at once, not through the lock.
    lock = core._watches["c1"].stdin_lock
    assert not lock.locked
    core.write_stdin("c1", b"c").addCallback(done.append)
    assert transport.value() == b"abc" and len(done) == 3
    # A close in progress holds the lock: a write after it waits its turn.
    lock.acquire()
    core.write_stdin("c1", b"d")
    assert transport.value() == b"abc"
    lock.release()
    assert transport.value() == b"abcd"
