"""
The control plane's side of the agent's wall: a create says whether an
admin made it (``spec["admin"]``), and a refusal by the agent (of a create,
a network connect) is a 403 naming the rule, logged, with nothing left in
the store.
"""

from twisted.internet.defer import fail, succeed
from twisted.logger import Logger, globalLogPublisher

from csvc.wire import commands
from csvc.agent.docker_config import engine_network
from csvc.compute.networks import ProjectNetworks
from csvc.policy import Forbidden


def test_the_spec_says_whether_an_admin_made_the_container(env):
    env.alice.create()
    env.admin.create()
    assert [kwargs["spec"]["admin"] for kwargs in env.hub.calls_of(commands.CreateContainer)] == [False, True]


def test_a_create_the_agent_refuses_is_a_403_naming_the_rule_and_is_logged(env):
    answer = env.hub.call

    def refusing(instance_uuid, command, **kwargs):
        if command is commands.CreateContainer:
            env.hub.calls.append((instance_uuid, command, kwargs))
            return fail(commands.Refused("HostConfig.Privileged (privileged)"))
        return answer(instance_uuid, command, **kwargs)

    env.hub.call = refusing
    logged = []
    globalLogPublisher.addObserver(logged.append)
    try:
        error = env.alice.post("/v1/containers", {"image": "busybox", "name": "x"}).error(403)
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert error["message"] == "the instance's agent refused the create: HostConfig.Privileged (privileged)"
    assert env.all_rows() == []
    [event] = [e for e in logged if e.get("action") == "create" and "refused" in e.get("log_format", "")]
    assert event["why"] == "HostConfig.Privileged (privileged)" and event["instance"] == env.instance
    # The name is free again.
    env.hub.call = answer
    assert env.alice.create(name="x")["name"] == "x"


class RefusingHub:
    """
    An instance whose agent lists the project's network ``back`` and
    refuses every connect (as its wall would a network not the project's).
    """

    def __init__(self):
        self.calls = []

    def call(self, instance, command, **kwargs):
        self.calls.append(command)
        if command is commands.ListNetworks:
            return succeed({"networks": [{"Name": engine_network("p1", "back"), "Id": "k" * 64}]})
        return fail(commands.Refused("network 'csvc-p1-back' is not the project's (network)"))


def test_a_connect_the_agent_refuses_is_a_403_and_is_logged():
    networks = ProjectNetworks(None, RefusingHub())
    networks.instance = lambda project_id: succeed("i1")
    logged = []
    networks.log = Logger(observer=logged.append)
    failures = []
    networks.connect("p1", "back", {"uuid": "u1", "name": "web", "instance_uuid": "i1"}, []).addErrback(
        failures.append)
    [failure] = failures
    assert failure.check(Forbidden)
    assert str(failure.value) == ("the instance's agent refused the network connect: "
                                  "network 'csvc-p1-back' is not the project's (network)")
    [event] = logged
    assert event["uuid"] == "u1" and event["instance"] == "i1"
