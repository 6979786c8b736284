"""
An error a responder does not declare, on either end of an agent link, is
answered with ``commands.InternalError`` naming it, logged with its
traceback, and the link goes on: the next call on it succeeds.  AMP's own
dispatch would answer ``UNKNOWN`` in a ``QuitBox`` and drop the link, and
with it every container's stream on the instance.

Both ends are the real protocols (``AgentLink``, ``AgentProtocol``),
connected in memory by ``twisted.test.iosim``; their collaborators are
fakes whose methods the tests make fail.
"""

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.logger import globalLogPublisher
from twisted.test import iosim

from csvc.wire import commands
from csvc.agent.link import AgentProtocol
from csvc.agents.hub import AgentLink


class Broken(Exception):
    pass


class Hub:
    """
    The control plane's ``AgentHub`` as ``AgentLink`` uses it here.
    """

    def __init__(self):
        self.beats = 0

    def heartbeat(self, link):
        self.beats += 1
        return succeed({})

    def check_owner(self, link, uuid):
        pass

    def lost(self, link):
        pass


class Journal:
    def __init__(self):
        self.chunks = []

    def append(self, uuid, seq, stream, data, cursor):
        self.chunks.append((uuid, seq, stream, data))
        return succeed(None)


class Core:
    """
    The agent's ``AgentCore`` as ``AgentProtocol`` uses it here.
    """

    def __init__(self):
        self.stdin = []
        self.sizes = []

    def connected(self, link):
        return Deferred()

    def disconnected(self, link):
        pass

    def write_stdin(self, uuid, data):
        self.stdin.append((uuid, data))
        return succeed(None)

    def resize(self, uuid, height, width):
        self.sizes.append((uuid, height, width))
        return succeed(None)


@pytest.fixture
def logged():
    events = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


@pytest.fixture
def link():
    """
    (hub's AgentLink, agent's AgentProtocol, pump), the link registered.
    """
    hub, journal, core = Hub(), Journal(), Core()
    control = AgentLink(hub, journal, events=None)
    agent = AgentProtocol(core, clock=None)
    pump = iosim.connect(control, iosim.makeFakeServer(control), agent, iosim.makeFakeClient(agent))
    control.instance_uuid = "i-1"
    return control, agent, pump


def call(pump, side, command, **kwargs):
    results = []
    side.callRemote(command, **kwargs).addBoth(results.append)
    pump.flush()
    assert len(results) == 1
    return results[0]


def failures(events):
    return [e for e in events if e.get("log_failure") is not None]


def assert_connected(control, agent):
    assert not control.transport.disconnecting and not agent.transport.disconnecting
    assert not control.transport.disconnected and not agent.transport.disconnected


def raising(times, error, then):
    """
    A stand-in for a method: raises ``error`` ``times`` times, then is
    ``then``.
    """
    left = [times]

    def method(*args, **kwargs):
        if left[0]:
            left[0] -= 1
            raise error
        return then(*args, **kwargs)

    return method


def test_an_agent_responder_that_raises_answers_internal_error_and_the_link_stays(link, logged, monkeypatch):
    control, agent, pump = link
    core = agent._core
    # Input: a fast command (csvc.fastpath.boxes' own dispatch, with the fast path on).
    monkeypatch.setattr(core, "write_stdin", raising(1, Broken("disk on fire"), core.write_stdin))
    failed = call(pump, control, commands.Input, uuid="c-1", data=b"first")
    assert failed.check(commands.InternalError)
    assert str(failed.value) == "Broken in the peer's responder to Input (its log has the traceback)"
    assert_connected(control, agent)
    (event,) = failures(logged)
    assert event["log_failure"].check(Broken) and event["command"] == "Input"
    assert call(pump, control, commands.Input, uuid="c-1", data=b"second") == {}
    assert core.stdin == [("c-1", b"second")]


def test_an_agent_responder_of_a_generic_command_that_fails_later(link, logged, monkeypatch):
    control, agent, pump = link
    core = agent._core
    from twisted.internet.defer import fail

    # Resize: dispatched by AMP's machinery; the error comes in a Deferred.
    monkeypatch.setattr(core, "resize", raising(0, None, lambda *a: fail(ZeroDivisionError("x"))))
    failed = call(pump, control, commands.Resize, uuid="c-1", height=24, width=80)
    assert failed.check(commands.InternalError)
    assert "ZeroDivisionError" in str(failed.value) and "Resize" in str(failed.value)
    assert_connected(control, agent)
    assert len(failures(logged)) == 1
    monkeypatch.setattr(core, "resize", Core.resize.__get__(core))
    assert call(pump, control, commands.Resize, uuid="c-1", height=25, width=81) == {}
    assert core.sizes == [("c-1", 25, 81)]


def test_a_hub_responder_that_raises_answers_internal_error_and_the_link_stays(link, logged, monkeypatch):
    control, agent, pump = link
    hub, journal = control._hub, control._journal
    # Output: fast; Heartbeat: AMP's machinery.
    monkeypatch.setattr(journal, "append", raising(1, KeyError("seq"), journal.append))
    monkeypatch.setattr(hub, "heartbeat", raising(1, AttributeError("store"), hub.heartbeat))
    failed = call(pump, agent, commands.Output, uuid="c-1", seq=1, stream=1, data=b"x" * 70000, cursor="")
    assert failed.check(commands.InternalError) and "KeyError" in str(failed.value)
    failed = call(pump, agent, commands.Heartbeat)
    assert failed.check(commands.InternalError) and "AttributeError" in str(failed.value)
    assert_connected(control, agent)
    assert [e["command"] for e in failures(logged)] == ["Output", "Heartbeat"]
    assert call(pump, agent, commands.Output, uuid="c-1", seq=1, stream=1, data=b"y" * 70000, cursor="") == {}
    assert call(pump, agent, commands.Heartbeat) == {}
    assert journal.chunks == [("c-1", 1, 1, b"y" * 70000)] and hub.beats == 1


def test_a_declared_error_is_still_itself(link, monkeypatch):
    control, agent, pump = link
    core = agent._core
    monkeypatch.setattr(core, "write_stdin", raising(1, commands.NoSuchContainer("c-9"), core.write_stdin))
    failed = call(pump, control, commands.Input, uuid="c-9", data=b"x")
    assert failed.check(commands.NoSuchContainer) and str(failed.value) == "c-9"
    assert_connected(control, agent)


def test_an_answer_that_cannot_be_written_is_an_internal_error(link, logged, monkeypatch):
    control, agent, pump = link
    engine = type("Engine", (), {})()
    agent._core.engine = engine
    # A JSON answer longer than one AMP value: sendBox raises TooLong.
    engine.health = lambda uuid: succeed({"log": "x" * 70000})
    failed = call(pump, control, commands.ContainerHealth, uuid="c-1")
    assert failed.check(commands.InternalError) and "TooLong" in str(failed.value)
    assert_connected(control, agent)
    engine.health = lambda uuid: succeed({"status": "healthy"})
    assert call(pump, control, commands.ContainerHealth, uuid="c-1") == {"health": {"status": "healthy"}}
