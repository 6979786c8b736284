"""
The control plane's side of the agent's wall: a create says whether an
admin made it (``spec["admin"]``), and a refusal by the agent is a 403
naming the rule, logged, with nothing left in the store.
"""

from twisted.internet.defer import fail
from twisted.logger import globalLogPublisher

from csvc.agent import commands


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
