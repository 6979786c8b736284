"""
``docker container prune`` through the Docker API on the fake agent: what
it removes, and that it does not wait for an agent that is away.
"""

import json

import pytest
from treq.testing import StubTreq

from csvc.api.docker import DockerAPI
from csvc.api.root import APIRoot
from csvc.relay.attach import Relay
from tests.api.conftest import result_of

BASE = "http://csvc.test"


@pytest.fixture
def prune(env):
    relay = Relay(env.containers, env.journal, env.store, env.clock)
    docker_api = DockerAPI(env.api.auth, env.containers, env.store, env.journal, env.hub, relay, env.clock)
    http = StubTreq(APIRoot(env.api.resource(), docker_api.resource()))

    def call(client):
        d = http.post(BASE + "/v1.45/containers/prune", headers=client.headers())
        env.settle()
        http.flush()
        response = result_of(d)
        body = result_of(http.content(response))
        assert response.code == 200, body
        return json.loads(body)

    return call


def test_prune_removes_the_callers_stopped_containers_only(env, prune):
    created = env.alice.create()
    running = env.alice.create(run=True)
    exited = env.alice.create(run=True)
    env.exit(exited["uuid"], 0)
    theirs = env.bob.create()
    ids = {c["uuid"]: env.row(c["uuid"])["engine_id"] or c["uuid"] for c in (created, exited)}
    report = prune(env.alice)
    assert sorted(report["ContainersDeleted"]) == sorted(ids.values())
    assert env.row(created["uuid"]) is None and env.row(exited["uuid"]) is None
    assert env.row(running["uuid"])["status"] == "running"
    assert env.row(theirs["uuid"])["status"] == "created"


def test_prune_leaves_containers_whose_agent_is_away_without_waiting(env, prune):
    created = env.alice.create()
    env.hub.connected.discard(env.instance)
    assert prune(env.alice) == {"ContainersDeleted": [], "SpaceReclaimed": 0}
    # Answered at once (no wait on the clock), and the container is as it was.
    assert env.row(created["uuid"])["status"] == "created"
    assert env.hub.calls_of("RemoveContainer") == []
    env.hub.connected.add(env.instance)
    assert len(prune(env.alice)["ContainersDeleted"]) == 1
    assert env.row(created["uuid"]) is None
