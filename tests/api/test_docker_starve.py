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

from csvc.agent import commands
from csvc.api.docker import DockerAPI
from csvc.api.root import APIRoot
from csvc.compute.registries import RegistryPolicy
from csvc.relay.attach import Relay
from tests.api.conftest import result_of
from tests.resolvers import TableResolver

BASE = "http://csvc.test/v1.45"


class Docker:
    def __init__(self, env, registries):
        relay = Relay(env.containers, env.journal, env.store)
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
