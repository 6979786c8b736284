"""
An agent of another version of the AMP contract (commands.PROTOCOL) is
refused at registration with an error that says so, before the control
plane looks at its token.
"""

from twisted.internet.testing import StringTransport
from twisted.protocols import amp

from csvc.wire import commands
from csvc.agents.hub import AgentLink


class Hub:
    def __init__(self):
        self.registered = []

    def register(self, link, *args):
        self.registered.append(args)
        return {"instance_uuid": "i-1", "resume": {}, "heartbeat_interval": 5.0}

    def lost(self, link):
        pass


def register(**extra):
    hub = Hub()
    link = AgentLink(hub, journal=None, events=None)
    agent = amp.AMP()
    link_transport, agent_transport = StringTransport(), StringTransport()
    link.makeConnection(link_transport)
    agent.makeConnection(agent_transport)
    results = []
    agent.callRemote(
        commands.Register, enroll_token="t", engine="docker", capacity=1, hostname="h", containers=[], **extra
    ).addBoth(results.append)
    link.dataReceived(agent_transport.value())
    agent.dataReceived(link_transport.value())
    return hub, results[0]


def test_an_agent_of_this_version_registers():
    hub, result = register(protocol=commands.PROTOCOL)
    assert result["instance_uuid"] == "i-1"
    assert len(hub.registered) == 1


def test_an_agent_without_a_version_is_refused_naming_both():
    hub, result = register()
    assert result.check(commands.ProtocolMismatch)
    assert str(result.value) == (
        f"the agent speaks protocol 1, the control plane {commands.PROTOCOL}: run the same csvc version on both"
    )
    assert hub.registered == []


def test_an_agent_of_a_newer_version_is_refused():
    hub, result = register(protocol=commands.PROTOCOL + 1)
    assert result.check(commands.ProtocolMismatch)
    assert f"protocol {commands.PROTOCOL + 1}" in str(result.value)
    assert hub.registered == []
