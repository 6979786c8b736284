"""
What fuzzing the Docker API with its own document (tests/security/
test_docker_fuzz.py) found answered wrongly, each now a 4xx naming what was
wrong: driven through the Docker API on the fake agent.
"""

import json

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import succeed

from csvc.wire import commands
from csvc.api.docker import DockerAPI
from csvc.api.root import APIRoot
from tests.api.conftest import result_of

BASE = "http://csvc.test"


@pytest.fixture
def docker(env):
    # No relay: none of these routes reaches one (attach/ws refuses first).
    docker_api = DockerAPI(env.api.auth, env.containers, env.store, env.journal, env.hub, None, env.clock)
    http = StubTreq(APIRoot(env.api.resource(), docker_api.resource()))

    def call(method, path, client, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = client.headers(None if body is None else {"Content-Type": "application/json"})
        d = http.request(method, BASE + "/v1.41" + path, headers=headers, data=data)
        env.settle()
        http.flush()
        response = result_of(d)
        return response.code, result_of(http.content(response))

    return call


@pytest.fixture
def engine_pauses(env):
    """
    The fake agent answers pauses and whether a container is paused, as the
    engine would.
    """
    paused = set()
    answer = env.hub.call

    def call(instance_uuid, command, **kwargs):
        if command is commands.ContainerPaused:
            env.hub.calls.append((instance_uuid, command, kwargs))
            return succeed({"paused": kwargs["uuid"] in paused})
        if command is commands.PauseContainer:
            env.hub.calls.append((instance_uuid, command, kwargs))
            (paused.add if kwargs["paused"] else paused.discard)(kwargs["uuid"])
            return succeed({})
        return answer(instance_uuid, command, **kwargs)

    env.hub.call = call
    return paused


def test_unpausing_a_running_container_that_is_not_paused_is_a_409(env, docker, engine_pauses):
    # The engine's own answer to this is a 500.
    running = env.alice.create(run=True)
    code, body = docker("POST", f"/containers/{running['uuid']}/unpause", env.alice)
    assert code == 409, body
    assert "is not paused" in json.loads(body)["message"]
    assert [kwargs for kwargs in env.hub.calls_of(commands.PauseContainer)] == []


def test_unpausing_a_paused_container_thaws_it(env, docker, engine_pauses):
    running = env.alice.create(run=True)
    assert docker("POST", f"/containers/{running['uuid']}/pause", env.alice)[0] == 204
    assert engine_pauses == {running["uuid"]}
    code, body = docker("POST", f"/containers/{running['uuid']}/unpause", env.alice)
    assert code == 204, body
    assert engine_pauses == set()


def test_attach_ws_without_a_websocket_upgrade_is_a_400_saying_so(env, docker):
    running = env.alice.create(run=True)
    code, body = docker("GET", f"/containers/{running['uuid']}/attach/ws?stdout=1", env.alice)
    assert code == 400, body
    assert "Upgrade: websocket" in json.loads(body)["message"]


def test_attach_ws_of_no_such_container_is_still_a_404(env, docker):
    code, body = docker("GET", "/containers/nothing-here/attach/ws", env.alice)
    assert code == 404, body


def test_an_update_of_swap_below_the_containers_memory_is_a_400_before_the_engine(env, docker):
    container = env.alice.create(memory=512)
    code, body = docker("POST", f"/containers/{container['uuid']}/update", env.alice, {"MemorySwap": 9175346})
    assert code == 400, body
    assert json.loads(body)["message"].startswith("MemorySwap: 9175346 is lower than the memory limit (536870912)")
    assert env.hub.calls_of(commands.UpdateContainer) == []
    assert env.row(container["uuid"])["memory"] == 512
