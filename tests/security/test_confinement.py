"""
The safe defaults on the real engine: a member's container, created with
nothing said, has a pids limit, no NET_RAW, no-new-privileges and a memory
limit that its project's quota counts; inspect through csvc shows them; a
member asking for more gets the default.
"""

import json
import uuid

import docker
import pytest

IMAGE = "csvc/busybox"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def member(control_plane):
    return control_plane.client(f"conf{uuid.uuid4().hex[:8]}")


def _create(client, body):
    answer = client.post("/v1.41/containers/create", data=json.dumps(body),
                         headers={"Content-Type": "application/json"})
    assert answer.status_code == 201, answer.text
    return answer.json()["Id"]


def test_a_bare_members_container_is_confined(member):
    engine_id = _create(member, {"Image": IMAGE, "Cmd": ["sh", "-c", "ping -c1 -W1 127.0.0.1; echo ping=$?; "
                                                         "grep NoNewPrivs /proc/self/status"]})
    engine = docker.from_env()
    try:
        host = engine.api.inspect_container(engine_id)["HostConfig"]
        assert host["PidsLimit"] == 4096
        assert "NET_RAW" in host["CapDrop"]
        assert "no-new-privileges" in host["SecurityOpt"]
        assert host["Memory"] == 512 * MiB
        shown = member.get(f"/v1.41/containers/{engine_id}/json").json()["HostConfig"]
        assert (shown["PidsLimit"], shown["Memory"]) == (4096, 512 * MiB)
        assert "NET_RAW" in shown["CapDrop"] and "no-new-privileges" in shown["SecurityOpt"]
        usage = member.get(f"/v1/quotas/{member.project}/usage").json()
        assert usage["memory"]["in_use"] == 512
        assert member.post(f"/v1.41/containers/{engine_id}/start").status_code == 204
        assert member.post(f"/v1.41/containers/{engine_id}/wait", timeout=60).json()["StatusCode"] == 0
        logs = member.get(f"/v1.41/containers/{engine_id}/logs?stdout=1&stderr=1").content
        assert b"ping=1" in logs  # no raw sockets
        assert b"NoNewPrivs:\t1" in logs
    finally:
        member.delete(f"/v1.41/containers/{engine_id}?force=1")
        engine.close()


def test_a_member_asking_for_more_pids_gets_the_default(member):
    engine_id = _create(member, {"Image": IMAGE, "Cmd": ["true"], "HostConfig": {"PidsLimit": -1}})
    engine = docker.from_env()
    try:
        assert engine.api.inspect_container(engine_id)["HostConfig"]["PidsLimit"] == 4096
        answer = member.post(f"/v1.41/containers/{engine_id}/update", json={"PidsLimit": 100000})
        assert answer.status_code == 200, answer.text
        assert engine.api.inspect_container(engine_id)["HostConfig"]["PidsLimit"] == 4096
        answer = member.post(f"/v1.41/containers/{engine_id}/update", json={"PidsLimit": 50})
        assert engine.api.inspect_container(engine_id)["HostConfig"]["PidsLimit"] == 50
    finally:
        member.delete(f"/v1.41/containers/{engine_id}?force=1")
        engine.close()
