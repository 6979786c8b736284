"""
No tenant stalls the others, on the real engine: a stop's grace is clamped
to --stop-timeout-max and waiting for it holds none of the agent's engine
threads; running execs count against the attach sessions quota.
"""

import threading
import time

import docker
import pytest

from tests.integration.conftest import IMAGE, engine_available, running_plane

#: --stop-timeout-max of this module's control plane
STOP_MAX = 4


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    if not engine_available():
        pytest.fail("no Docker engine answers on /var/run/docker.sock: run `make bootstrap` first")
    with running_plane(tmp_path_factory.mktemp("starve"), capacity=20,
                       extra_args=["--stop-timeout-max", str(STOP_MAX)]) as plane:
        yield plane


def running(client, count):
    # PID 1 without a handler ignores SIGTERM: only the kill after the grace stops it.
    containers = [client.create(image=IMAGE, command=["sleep", "600"], run=True) for _ in range(count)]
    for container in containers:
        client.wait_status(container["uuid"], {"running"})
    return containers


def test_a_huge_stop_grace_is_clamped(plane):
    gamma = plane.client("gamma")
    [container] = running(gamma, 1)
    response = gamma.post(f"/v1.45/containers/{container['uuid']}/stop", params={"t": "100000"})
    assert response.status_code == 204, response.text
    stopped = gamma.get(f"/v1/containers/{container['uuid']}").json()
    # Killed after the clamped grace, not after 100000 s (the request would time out).
    assert stopped["status"] == "exited" and stopped["exit_code"] == 137


def test_stops_waiting_out_their_grace_hold_no_engine_thread(plane):
    delta, epsilon = plane.client("delta"), plane.client("epsilon")
    containers = running(delta, 6)
    [mine] = running(delta, 1)
    [theirs] = running(epsilon, 1)
    answers = []

    def stop(container):
        answers.append(delta.post(f"/v1.45/containers/{container['uuid']}/stop", params={"t": str(STOP_MAX)}))

    engine = docker.from_env(timeout=30)
    since = int(time.time()) - 1
    stops = [threading.Thread(target=stop, args=(c,)) for c in containers]
    for thread in stops:
        thread.start()
    try:
        # The engine has each stop's SIGTERM: all six are waiting out their grace.
        ids = {delta.get(f"/v1.45/containers/{c['uuid']}/json").json()["Id"] for c in containers}
        termed = set()
        for event in engine.events(since=since, decode=True, filters={"event": "kill", "type": "container"}):
            if event.get("id") in ids and event["Actor"]["Attributes"].get("signal") == "15":
                termed.add(event["id"])
            if termed == ids:
                break
        # Six stops in their grace (more than the agent's four threads, and
        # than a project's share of them), and the engine calls of the same
        # project and of another are answered before any of the stops ends.
        for client, container in ((delta, mine), (epsilon, theirs)):
            top = client.get(f"/v1.45/containers/{container['uuid']}/top")
            assert top.status_code == 200, top.text
            assert top.json()["Processes"]
        assert answers == [] and all(thread.is_alive() for thread in stops)
    finally:
        for thread in stops:
            thread.join(120)
    assert [a.status_code for a in answers] == [204] * 6


def test_execs_past_the_attach_sessions_quota_are_refused(plane):
    zeta = plane.client("zeta")
    admin = plane.admin
    assert admin.request("PUT", "/v1/quotas/zeta", json={"attach_sessions": 2}).status_code == 200
    [container] = running(zeta, 1)
    path = f"/v1/containers/{container['uuid']}/exec"
    results = []

    def execute():
        results.append(zeta.post(path, json={"command": ["sleep", "5"]}))

    runs = [threading.Thread(target=execute) for _ in range(2)]
    for thread in runs:
        thread.start()
    try:
        for _ in range(200):
            usage = admin.get("/v1/quotas/zeta/usage").json()
            if usage["attach_sessions"]["in_use"] == 2:
                break
            threading.Event().wait(0.05)
        else:
            raise AssertionError(f"the two execs never ran together: {usage}")
        refused = zeta.post(path, json={"command": ["true"]})
        assert refused.status_code == 403, refused.text
        assert "attach_sessions" in refused.json()["error"]["message"]
    finally:
        for thread in runs:
            thread.join(60)
    assert [r.status_code for r in results] == [200, 200]
    again = zeta.post(path, json={"command": ["echo", "room again"]})
    assert again.status_code == 200 and again.json()["output"] == "room again\n"
