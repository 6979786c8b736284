"""
No tenant stalls or starves the others, through the Docker API on the fake
agent: name filters in linear time (an invalid one a 400), ``ps_args``
allow-listed, pulls from the instances' own networks refused, stop's grace
clamped.
"""

import ipaddress
import json

import pytest
from treq.testing import StubTreq

from csvc.wire import commands
from csvc.api.docker import DockerAPI
from csvc.api.root import APIRoot
from csvc.compute.registries import RegistryPolicy
from csvc.relay.attach import Relay
from tests.api.conftest import result_of
from tests.resolvers import TableResolver

BASE = "http://csvc.test/v1.45"


class Docker:
    def __init__(self, env, registries):
        relay = Relay(env.containers, env.journal, env.store, env.clock)
        api = DockerAPI(env.api.auth, env.containers, env.store, env.journal, env.hub, relay, env.clock,
                        registries=registries)
        self.http = StubTreq(APIRoot(env.api.resource(), api.resource()))
        self.env = env

    def request(self, client, method, path, **kwargs):
        d = self.http.request(method, BASE + path, headers=client.headers(), **kwargs)
        self.env.settle()
        self.http.flush()
        response = result_of(d)
        body = result_of(self.http.content(response))
        return response.code, body


@pytest.fixture
def resolver():
    return TableResolver({"registry.internal.example": ["10.1.2.3"], "mixed.example": ["93.184.215.14", "::1"]})


@pytest.fixture
def docker(env, resolver):
    return Docker(env, RegistryPolicy(resolver, env.clock))


def test_catastrophic_name_filter_answers_and_an_invalid_one_is_400(env, docker):
    env.alice.create(name="a" * 200)
    filters = json.dumps({"name": ["(a+)+$"]})
    code, body = docker.request(env.alice, "GET", "/containers/json", params={"all": "1", "filters": filters})
    assert code == 200, body
    assert [c["Names"] for c in json.loads(body)] == [["/" + "a" * 200]]
    filters = json.dumps({"name": ["(a+)+!$"]})
    code, body = docker.request(env.alice, "GET", "/containers/json", params={"all": "1", "filters": filters})
    assert (code, json.loads(body)) == (200, [])
    code, body = docker.request(env.alice, "GET", "/containers/json", params={"filters": '{"name": ["(a"]}'})
    assert code == 400 and "filter name" in json.loads(body)["message"]


@pytest.mark.parametrize("ps_args", ["aux; rm -rf /", "-o pid,comm /etc/passwd", "$(id)", "a\tb", "'aux'",
                                     " ".join(["a"] * 9), "-" + "x" * 80])
def test_top_refuses_what_is_no_ps_option(env, docker, ps_args):
    view = env.alice.create(run=True)
    code, body = docker.request(env.alice, "GET", f"/containers/{view['uuid']}/top", params={"ps_args": ps_args})
    assert code == 400, body
    assert "ps_args" in json.loads(body)["message"]
    assert commands.ContainerTop not in env.hub.commands_called()


@pytest.mark.parametrize("image, why", [
    ("127.0.0.1:5000/busybox", "loopback"),
    ("localhost/busybox", "loopback"),
    ("localhost:5000/busybox:1", "loopback"),
    ("[::1]:5000/busybox", "loopback"),
    ("169.254.169.254/latest", "link-local"),
    ("192.168.1.10:5000/x", "private"),
    ("registry.internal.example/team/app", "resolves to 10.1.2.3"),
    ("mixed.example/app", "resolves to ::1"),
])
def test_pulls_from_the_instances_own_networks_are_403(env, docker, image, why):
    code, body = docker.request(env.alice, "POST", "/images/create", params={"fromImage": image})
    assert code == 403, body
    message = json.loads(body)["message"]
    assert why in message and "--registry-allow-private" in message


@pytest.mark.parametrize("image", ["busybox", "library/busybox:1.36", "quay.io/team/app", "user/repo:tag"])
def test_pulls_from_public_registries_go_on(env, docker, resolver, image):
    code, body = docker.request(env.alice, "POST", "/images/create", params={"fromImage": image})
    # No agent is linked: the pull itself fails, in the stream, after the 200.
    assert code == 200, body
    assert b"no instance is connected" in body


def test_the_operator_may_allow_a_private_registry(env, resolver):
    allowed = RegistryPolicy(resolver, env.clock, allow=[ipaddress.ip_network("127.0.0.0/8"),
                                                          ipaddress.ip_network("::1/128")])
    docker = Docker(env, allowed)
    for image in ("127.0.0.1:5000/busybox", "localhost:5000/busybox"):
        code, body = docker.request(env.alice, "POST", "/images/create", params={"fromImage": image})
        assert code == 200, body
    code, _ = docker.request(env.alice, "POST", "/images/create", params={"fromImage": "10.0.0.1/x"})
    assert code == 403


def test_stop_and_restart_grace_is_clamped(env, docker):
    env.containers.stop_timeout_max = 30
    view = env.alice.create(run=True)
    code, body = docker.request(env.alice, "POST", f"/containers/{view['uuid']}/stop", params={"t": "100000"})
    assert code == 204, body
    assert env.hub.calls_of(commands.StopContainer)[-1] == {"uuid": view["uuid"], "timeout": 30}
    code, body = docker.request(env.alice, "POST", f"/containers/{view['uuid']}/start")
    assert code == 204, body
    code, body = docker.request(env.alice, "POST", f"/containers/{view['uuid']}/restart", params={"t": "7"})
    assert code == 204, body
    assert env.hub.calls_of(commands.StopContainer)[-1] == {"uuid": view["uuid"], "timeout": 7}


class ExecAgent:
    """
    The fake agent answering exec commands too: each exec runs until the
    test reports its exit.
    """

    def __init__(self, env):
        self.env = env
        self.count = 0
        self._call = env.hub.call
        env.hub.call = self.call

    def call(self, instance_uuid, command, **kwargs):
        from twisted.internet.defer import succeed

        if command is commands.ExecCreate:
            self.count += 1
            return succeed({"exec_id": f"x{self.count:063d}"})
        if command is commands.ExecStart:
            self.env.hub.calls.append((instance_uuid, command, kwargs))
            return succeed({})
        return self._call(instance_uuid, command, **kwargs)

    def exit(self, exec_id, code=0):
        self.env.hub.execs.exited(self.env.instance, exec_id, code)
        self.env.settle()


def native_exec(env, client, uuid):
    return client.start("POST", f"/v1/containers/{uuid}/exec", body={"command": ["sleep", "9"]})


@pytest.fixture
def native_relay(env):
    relay = Relay(env.containers, env.journal, env.store, env.clock)
    env.api.relay = relay
    return relay


def test_running_native_execs_hold_attach_sessions(env, native_relay):
    agent = ExecAgent(env)
    view = env.alice.create(run=True)
    theirs = env.bob.create(run=True)
    env.admin.request("PUT", "/v1/quotas/project-a", body={"attach_sessions": 2})
    first, second = native_exec(env, env.alice, view["uuid"]), native_exec(env, env.alice, view["uuid"])
    assert native_relay.project_sessions("project-a") == 2
    refused = env.alice.finish(native_exec(env, env.alice, view["uuid"]))
    assert "attach_sessions" in refused.error(403)["message"]
    assert agent.count == 2
    # Another project is not refused.
    bobs = native_exec(env, env.bob, theirs["uuid"])
    assert native_relay.project_sessions("project-b") == 1
    agent.exit(f"x{1:063d}", 0)
    reply = env.alice.finish(first)
    assert reply.code == 200 and reply.json()["exit_code"] == 0
    assert native_relay.project_sessions("project-a") == 1
    third = native_exec(env, env.alice, view["uuid"])
    assert native_relay.project_sessions("project-a") == 2
    for n in (2, 3, 4):
        agent.exit(f"x{n:063d}", 0)
    assert [env.alice.finish(d).code for d in (second,)] == [200]
    assert env.bob.finish(bobs).code == 200 and env.alice.finish(third).code == 200
    assert native_relay.project_sessions("project-a") == native_relay.project_sessions("project-b") == 0


def test_detached_docker_execs_hold_attach_sessions(env, docker):
    agent = ExecAgent(env)
    view = env.alice.create(run=True)
    env.admin.request("PUT", "/v1/quotas/project-a", body={"attach_sessions": 1})
    ids = []
    for _ in range(2):
        code, body = docker.request(env.alice, "POST", f"/containers/{view['uuid']}/exec",
                                    json={"Cmd": ["sleep", "9"]})
        assert code == 201, body
        ids.append(json.loads(body)["Id"])
    code, body = docker.request(env.alice, "POST", f"/exec/{ids[0]}/start", json={"Detach": True})
    assert code == 200, body
    code, body = docker.request(env.alice, "POST", f"/exec/{ids[1]}/start", json={"Detach": True})
    assert code == 403 and "attach_sessions" in json.loads(body)["message"]
    agent.exit(ids[0], 3)
    code, body = docker.request(env.alice, "GET", f"/exec/{ids[0]}/json")
    assert json.loads(body)["ExitCode"] == 3
    code, body = docker.request(env.alice, "POST", f"/exec/{ids[1]}/start", json={"Detach": True})
    assert code == 200, body
    # Another project's exec id is not found.
    code, body = docker.request(env.bob, "GET", f"/exec/{ids[1]}/json")
    assert code == 404


def test_an_agent_busy_with_the_projects_calls_is_503_with_retry_after(env, docker):
    from twisted.internet.defer import fail

    view = env.alice.create(run=True)
    call = env.hub.call

    def busy(instance_uuid, command, **kwargs):
        if command is commands.ContainerTop:
            return fail(commands.EngineBusy("this instance's engine is busy with the project's calls"))
        return call(instance_uuid, command, **kwargs)

    env.hub.call = busy
    d = docker.http.request("GET", BASE + f"/containers/{view['uuid']}/top", headers=env.alice.headers())
    env.settle()
    docker.http.flush()
    response = result_of(d)
    assert response.code == 503
    assert response.headers.getRawHeaders(b"Retry-After") == [b"1"]
    assert b"busy" in result_of(docker.http.content(response))
