"""
An agent's container reports reach the ``IContainerEvents`` its link was
given when made (the container service, in ``csvc.server.build``), and
only once the agent has registered and owns the container.
"""

from twisted.internet.defer import succeed
from twisted.internet.testing import StringTransport
from twisted.protocols import amp
from zope.interface.verify import verifyClass

from csvc.agents.events import IContainerEvents
from csvc.agents.hub import AgentLink
from csvc.compute.service import ContainerService
from csvc.wire import commands


class Hub:
    """
    What the link asks of the hub: registration, ownership, names.
    """

    def __init__(self):
        self.owned = {"c-1"}

    def register(self, link, *args):
        link.instance_uuid = "i-1"
        return {"instance_uuid": "i-1", "resume": {}, "heartbeat_interval": 5.0}

    def check_owner(self, link, uuid):
        if uuid not in self.owned:
            raise commands.OutputRefused(f"container {uuid} is not on this agent's instance")

    def name_of(self, instance_uuid):
        return {"i-1": "local-1"}[instance_uuid]

    def lost(self, link):
        pass


class Events:
    def __init__(self):
        self.heard = []

    def on_started(self, uuid):
        self.heard.append(("started", uuid))
        return succeed(None)

    def on_exited(self, uuid, exit_code, last_seq, finished_at):
        self.heard.append(("exited", uuid, exit_code, last_seq, finished_at))
        return succeed(None)

    def on_vanished(self, uuid, instance_name, seen, exit_code, last_seq):
        self.heard.append(("vanished", uuid, instance_name, seen, exit_code, last_seq))
        return succeed(None)


class Pair:
    """
    The hub's link and an agent's AMP end, boxes moved by ``call``.
    """

    def __init__(self, events):
        self.link = AgentLink(Hub(), journal=None, events=events)
        self.agent = amp.AMP()
        self.link_transport, self.agent_transport = StringTransport(), StringTransport()
        self.link.makeConnection(self.link_transport)
        self.agent.makeConnection(self.agent_transport)

    def call(self, command, **kwargs):
        results = []
        self.agent.callRemote(command, **kwargs).addBoth(results.append)
        self.link.dataReceived(self.agent_transport.value())
        self.agent_transport.clear()
        self.agent.dataReceived(self.link_transport.value())
        self.link_transport.clear()
        return results[0]

    def register(self):
        return self.call(commands.Register, enroll_token="t", engine="docker", capacity=1, hostname="h",
                         containers=[], protocol=commands.PROTOCOL)


def test_the_container_service_hears_agents_reports():
    verifyClass(IContainerEvents, ContainerService)


def test_reports_reach_the_links_listener_in_order():
    events = Events()
    pair = Pair(events)
    assert pair.register()["instance_uuid"] == "i-1"
    assert pair.call(commands.Started, uuid="c-1", started_at="2023-11-14T22:13:20Z") == {}
    assert pair.call(commands.Exited, uuid="c-1", exit_code=3, last_seq=7, finished_at="2023-11-14T22:14:00Z",
                     removed=False) == {}
    assert pair.call(commands.Vanished, uuid="c-1", seen="destroy", exit_code=-1, last_seq=7) == {}
    assert events.heard == [
        ("started", "c-1"),
        ("exited", "c-1", 3, 7, "2023-11-14T22:14:00Z"),
        ("vanished", "c-1", "local-1", "destroy", -1, 7),
    ]


def test_reports_before_registration_or_on_anothers_container_are_not_heard():
    events = Events()
    pair = Pair(events)
    refused = pair.call(commands.Started, uuid="c-1", started_at="2023-11-14T22:13:20Z")
    assert refused.check(commands.NotEnrolled)
    pair.register()
    refused = pair.call(commands.Exited, uuid="c-2", exit_code=0, last_seq=0, finished_at="", removed=False)
    assert refused.check(commands.OutputRefused)
    assert events.heard == []
