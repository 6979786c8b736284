"""
csvc/agents/hub.py: a connection to the agent port that has not
registered within its deadline, or that sends more than a Register box's
worth before registering, is dropped; a registered one is left alone.
Driven with StringTransport and task.Clock.
"""

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols import amp
from twisted.python.failure import Failure

from csvc.wire import commands
from csvc.agents.hub import PREREGISTER_BYTES, AgentLink


class Hub:
    def __init__(self):
        self.registered = []
        self.lost_links = []

    def register(self, link, *args):
        self.registered.append(args)
        link.instance_uuid = "i-1"
        return {"instance_uuid": "i-1", "resume": {}, "heartbeat_interval": 5.0}

    def lost(self, link):
        self.lost_links.append(link)


PARTIAL_BOX = b"\x00\x04_ask\xff\xff"


def connect(timeout=10.0, limit=PREREGISTER_BYTES):
    clock = Clock()
    hub = Hub()
    link = AgentLink(hub, journal=None, events=None, clock=clock, register_timeout=timeout, preregister_bytes=limit)
    transport = StringTransport()
    link.makeConnection(transport)
    return clock, hub, link, transport


def register_box():
    agent = amp.AMP()
    agent_transport = StringTransport()
    agent.makeConnection(agent_transport)
    agent.callRemote(commands.Register, enroll_token="t", engine="docker", capacity=1, hostname="h",
                     containers=[], protocol=commands.PROTOCOL)
    return agent_transport.value()


def test_a_silent_connection_is_dropped_at_its_deadline():
    clock, _, _, transport = connect(timeout=10)
    clock.advance(9.9)
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.disconnecting
    assert not clock.getDelayedCalls()


def test_a_registered_connection_stays_past_the_deadline():
    clock, hub, link, transport = connect(timeout=10)
    link.dataReceived(register_box())
    assert len(hub.registered) == 1 and link.instance_uuid == "i-1"
    clock.advance(60)
    assert not transport.disconnecting


def test_more_than_the_bound_before_registering_is_dropped_unread():
    clock, hub, link, transport = connect(limit=1000)
    # A box whose one value is announced at 65,535 bytes, sent slowly.
    link.dataReceived(PARTIAL_BOX + b"x" * 492)
    assert not transport.disconnecting
    link.dataReceived(b"x" * 501)
    assert transport.disconnecting
    # Nothing more is parsed, a Register included.
    link.dataReceived(register_box())
    assert hub.registered == []


def test_a_register_box_fits_the_default_bound():
    clock, hub, link, transport = connect()
    containers = [{"uuid": f"{i:032x}", "engine_id": "e" * 64, "state": "running"} for i in range(400)]
    agent = amp.AMP()
    agent_transport = StringTransport()
    agent.makeConnection(agent_transport)
    agent.callRemote(commands.Register, enroll_token="t", engine="docker", capacity=400, hostname="h",
                     containers=containers, facts={"NCPU": 2}, protocol=commands.PROTOCOL)
    link.dataReceived(agent_transport.value())
    assert len(hub.registered) == 1 and not transport.disconnecting


def test_the_bound_ends_with_registration():
    clock, hub, link, transport = connect(limit=len(register_box()) + 10)
    link.dataReceived(register_box())
    # Registered: heartbeats and more flow without a byte bound of this kind.
    link.dataReceived(PARTIAL_BOX + b"x" * 2000)
    assert not transport.disconnecting


def test_a_lost_connection_cancels_its_deadline():
    clock, hub, link, transport = connect()
    link.connectionLost(Failure(ConnectionDone()))
    assert not clock.getDelayedCalls()
    assert hub.lost_links == [link]
