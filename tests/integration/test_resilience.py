"""
Nothing lost, nothing duplicated: the agent or the whole service dies while a
container writes, and comes back.
"""

import os
import signal
import time

import pytest

from tests.integration.conftest import running_plane

LINES = 3000
# Numbered lines on stdout and stderr, for about three seconds.
SCRIPT = (
    f"i=1; while [ $i -le {LINES} ]; do echo out$i; echo err$i >&2; "
    "if [ $((i % 100)) -eq 0 ]; then sleep 0.1; fi; i=$((i+1)); done; exit 7"
)
EXPECTED_OUT = b"".join(b"out%d\n" % i for i in range(1, LINES + 1))
EXPECTED_ERR = b"".join(b"err%d\n" % i for i in range(1, LINES + 1))


def _wait_for_output(client, uuid, minimum, timeout=20):
    deadline = time.monotonic() + timeout
    while len(client.logs(uuid, stderr="false")) < minimum:
        assert time.monotonic() < deadline, "the container produced too little output"
        time.sleep(0.05)


def _check_complete(client, uuid):
    assert client.post(f"/v1/containers/{uuid}/wait").json()["exit_code"] == 7
    assert client.logs(uuid, stderr="false") == EXPECTED_OUT
    assert client.logs(uuid, stdout="false") == EXPECTED_ERR
    both = client.logs(uuid)
    assert len(both) == len(EXPECTED_OUT) + len(EXPECTED_ERR)


def test_agent_killed_mid_output_loses_and_duplicates_nothing(control_plane, alpha):
    (pid,) = control_plane.agent_pids()
    container = alpha.create(command=["sh", "-c", SCRIPT], run=True)
    uuid = container["uuid"]
    _wait_for_output(alpha, uuid, 2000)
    os.kill(pid, signal.SIGKILL)
    # The service's process monitor starts a new agent, which resumes the
    # output from where the store has it.
    deadline = time.monotonic() + 30
    while True:
        pids = control_plane.agent_pids()
        if pids and pids != [pid]:
            break
        assert time.monotonic() < deadline, "no new agent was started"
        time.sleep(0.1)
    _check_complete(alpha, uuid)
    control_plane.wait_active(control_plane.admin)


@pytest.fixture
def own_plane(tmp_path):
    with running_plane(tmp_path) as plane:
        yield plane


def test_service_restart_mid_output_loses_and_duplicates_nothing(own_plane):
    client = own_plane.client("gamma")
    container = client.create(command=["sh", "-c", SCRIPT], run=True)
    uuid = container["uuid"]
    _wait_for_output(client, uuid, 2000)
    own_plane.stop()
    time.sleep(0.5)
    own_plane.start()
    own_plane.wait_active(own_plane.admin)
    _check_complete(client, uuid)
    # And output of a finished container survives a restart too; asked for
    # as soon as the API answers, before the agent has registered again.
    own_plane.stop()
    own_plane.start()
    _wait_for_api(client)
    assert client.logs(uuid, stderr="false") == EXPECTED_OUT
    assert client.show(uuid)["exit_code"] == 7
    # The delete waits for the agent: the engine's container goes too.
    assert client.delete(f"/v1/containers/{uuid}").status_code == 204
    import docker

    assert docker.from_env().containers.list(all=True, filters={"label": f"csvc.uuid={uuid}"}) == []


def _wait_for_api(client, timeout=30):
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            client.get("/v1/containers", timeout=2)
            return
        except requests.ConnectionError:
            assert time.monotonic() < deadline, "the API did not come back"
            time.sleep(0.05)


def test_the_map_reconciles_after_a_restart(own_plane):
    """
    On restart the service keeps what the engines still run and marks
    containers that vanished from their engine meanwhile as error.
    """
    import docker

    client = own_plane.client("delta")
    kept = client.create(command=["sleep", "300"], run=True)
    gone = client.create(command=["sleep", "300"], run=True)
    client.wait_status(kept["uuid"], {"running"})
    client.wait_status(gone["uuid"], {"running"})
    own_plane.stop()
    docker.from_env().api.remove_container(f"csvc-{gone['uuid']}", force=True)
    own_plane.start()
    own_plane.wait_active(own_plane.admin)
    vanished = client.wait_status(gone["uuid"], {"error"})
    assert "vanished from the engine" in vanished["status_reason"]
    assert client.show(kept["uuid"])["status"] == "running"
    assert client.post(f"/v1/containers/{kept['uuid']}/kill").json()["exit_code"] == 137
    for c in (kept, gone):
        assert client.delete(f"/v1/containers/{c['uuid']}").status_code == 204


def test_a_container_removed_behind_our_back_is_error_with_a_reason(control_plane, alpha):
    """
    ``docker rm -f`` straight on the engine while the agent runs: the agent
    sees the engine's destroy event for a container the service did not
    delete, and the service marks it ``error`` saying what happened, with
    the exit the engine told (137: SIGKILL).
    """
    import subprocess

    import docker

    from tests.integration.conftest import IMAGE

    view = alpha.create(image=IMAGE, command=["sh", "-c", "echo up; sleep 300"], run=True)
    alpha.wait_status(view["uuid"], ("running",))
    engine_id = docker.from_env().containers.get(f"csvc-{view['uuid']}").id
    removed = subprocess.run(["docker", "rm", "-f", engine_id], capture_output=True, text=True)
    assert removed.returncode == 0, removed.stderr
    shown = alpha.wait_status(view["uuid"], ("error",), timeout=30)
    (instance,) = control_plane.admin.get("/v1/instances").json()["instances"]
    assert shown["status_reason"] == (
        f"the container was removed from the engine of instance {instance['name']} by something other than csvc "
        "(the engine's destroy event); its process had exited with 137"
    ) or shown["status_reason"] == (
        # The output stream may end, and the engine be asked, before the
        # destroy event arrives: then the engine no longer knows it.
        f"the container was removed from the engine of instance {instance['name']} by something other than csvc "
        "(the engine no longer knows it); its process had exited with 137"
    )
    assert shown["exit_code"] == 137
    # What it wrote is kept.
    assert alpha.logs(view["uuid"]) == b"up\n"


def test_a_start_asked_before_the_agent_is_back_waits_for_it_and_keeps_all_output(own_plane):
    """
    Right after a restart the API answers before the agent has registered
    again: the start waits for the agent instead of a 503, and the output
    is all there.  (That the call goes only after the registration's answer
    is tests/unit/test_agenthub_wait.py's: here the agent's own I/O hides
    the order.)
    """
    client = own_plane.client("epsilon")
    container = client.create(command=["sh", "-c", "echo one; echo two >&2; echo three"])
    uuid = container["uuid"]
    own_plane.stop()
    own_plane.start()
    _wait_for_api(client)
    started = client.post(f"/v1/containers/{uuid}/start")
    assert started.status_code == 202, started.text
    assert client.post(f"/v1/containers/{uuid}/wait").json()["exit_code"] == 0
    assert client.logs(uuid, stderr="false") == b"one\nthree\n"
    assert client.logs(uuid, stdout="false") == b"two\n"
    assert client.delete(f"/v1/containers/{uuid}").status_code == 204


def test_an_orphan_on_the_engine_is_removed_when_its_agent_registers(tmp_path):
    """
    With ``orphan-action = remove``, an engine container made for the
    instance whose row is gone (here deleted behind the service's back while
    it was stopped, as a restored backup would) is removed at the agent's
    registration; one the store knows stays.
    """
    import sqlite3

    import docker

    with running_plane(tmp_path, extra_args=["--orphan-action", "remove"]) as plane:
        client = plane.client("gamma")
        orphan = client.create(command=["true"])["uuid"]
        kept = client.create(command=["true"])["uuid"]
        plane.stop()
        db = sqlite3.connect(os.path.join(plane.data_dir, "csvc.sqlite"))
        with db:
            assert db.execute("DELETE FROM containers WHERE uuid = ?", (orphan,)).rowcount == 1
        db.close()
        plane.start()
        plane.wait_active(plane.admin)
        engine = docker.from_env()
        deadline = time.monotonic() + 20
        while engine.containers.list(all=True, filters={"label": f"csvc.uuid={orphan}"}):
            assert time.monotonic() < deadline, "the orphan was not removed"
            time.sleep(0.1)
        assert len(engine.containers.list(all=True, filters={"label": f"csvc.uuid={kept}"})) == 1
        assert client.get(f"/v1/containers/{kept}").json()["status"] == "created"
        with open(plane.log_path) as f:
            assert f"removing 1 container(s) made for it that csvc has no record of: {orphan}" in f.read()
        assert client.delete(f"/v1/containers/{kept}").status_code == 204

