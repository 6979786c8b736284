"""
Host escape through a Docker create body, as an attacker with a member's
token writes one: every host-reaching option in several spellings (Go's
decoder matches field names case-insensitively and folds the long s and
the Kelvin sign) and nestings.  Each is refused with a 4xx naming why, and
the engine is checked directly: nothing of the member's reaches the host.
"""

import json
import uuid

import docker
import pytest

from tests.security.engine_check import escaping_member_containers, escapes

IMAGE = "csvc/busybox"
BASE = {"Image": IMAGE, "Cmd": ["true"]}

#: (what the attack is, the body's extra top-level fields)
ESCAPES = [
    ("bind mount, lower-case type and source",
     {"HostConfig": {"Mounts": [{"Target": "/host", "type": "bind", "source": "/"}]}}),
    ("bind mount, upper-case keys", {"HostConfig": {"Mounts": [{"TARGET": "/host", "TYPE": "bind", "SOURCE": "/"}]}}),
    ("bind mount, lower-case hostconfig and mounts",
     {"hostconfig": {"mounts": [{"target": "/host", "type": "bind", "source": "/"}]}}),
    ("bind mount, long s in Source", {"HostConfig": {"Mounts": [{"Target": "/h", "Type": "bind", "\u017fource": "/"}]}}),
    ("privileged, lower case", {"HostConfig": {"privileged": True}}),
    ("privileged, upper case", {"HostConfig": {"PRIVILEGED": True}}),
    ("privileged under a long-s HostConfig", {"Ho\u017ftConfig": {"Privileged": True}}),
    ("capabilities, lower case", {"HostConfig": {"capadd": ["SYS_ADMIN"]}}),
    ("binds, lower case", {"HostConfig": {"binds": ["/:/host"]}}),
    ("devices, lower case", {"HostConfig": {"devices": [{"pathonhost": "/dev/kmsg", "pathincontainer": "/dev/kmsg",
                                                          "cgrouppermissions": "rwm"}]}}),
    ("host network, lower case", {"HostConfig": {"networkmode": "host"}}),
    ("host pid, mixed case", {"HostConfig": {"pIdMoDe": "host"}}),
    ("host ipc, lower case", {"HostConfig": {"ipcmode": "host"}}),
    ("seccomp unconfined, lower case", {"HostConfig": {"securityopt": ["seccomp=unconfined"]}}),
    ("local volume driver options binding /etc, nested lower case",
     {"HostConfig": {"Mounts": [{"Target": "/v", "Source": "esc-x", "Type": "volume",
                                 "volumeoptions": {"driverconfig": {"name": "local", "options": {
                                     "type": "none", "o": "bind", "device": "/etc"}}}}]}}),
    ("volume driver, lower case", {"HostConfig": {"volumedriver": "convoy"}}),
    ("sysctls, lower case", {"HostConfig": {"sysctls": {"kernel.shm_rmid_forced": "1"}}}),
    ("cgroup parent, lower case", {"HostConfig": {"cgroupparent": "/"}}),
    # Not out of the container, but above its neighbours: real-time
    # priority, locked memory, a health check the engine runs every ms.
    ("real-time priority limit, lower case", {"hostconfig": {"ulimits": [{"name": "rtprio", "soft": 99,
                                                                            "hard": 99}]}}),
    ("locked memory limit, upper case", {"HostConfig": {"ULIMITS": [{"NAME": "memlock", "SOFT": -1, "HARD": -1}]}}),
    ("a health check every millisecond", {"healthcheck": {"test": ["CMD", "true"], "interval": 1_000_000}}),
]


def _create(client, body):
    return client.post("/v1.41/containers/create", data=json.dumps(body),
                       headers={"Content-Type": "application/json"})


def _member_ids(engine, project):
    return {c.id for c in engine.containers.list(all=True, filters={"label": f"csvc.project={project}"})}


@pytest.fixture(scope="module")
def member(control_plane):
    return control_plane.client(f"esc{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def engine():
    client = docker.from_env()
    yield client
    client.close()


@pytest.mark.parametrize("name, extra", ESCAPES, ids=[n for n, _ in ESCAPES])
def test_an_escaping_create_is_refused_in_any_spelling(member, engine, name, extra):
    before = _member_ids(engine, member.project)
    answer = _create(member, dict(BASE, **extra))
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert answer.json()["message"]
    assert _member_ids(engine, member.project) == before


def test_two_spellings_of_one_field_are_a_400_naming_both(member):
    answer = _create(member, dict(BASE, HostConfig={"Privileged": False, "privileged": True}))
    assert answer.status_code == 400
    assert "HostConfig.Privileged" in answer.json()["message"]
    assert "HostConfig.privileged" in answer.json()["message"]


def test_the_same_key_twice_is_a_400(member):
    raw = '{"Image": "csvc/busybox", "HostConfig": {"Privileged": false, "Privileged": true}}'
    answer = member.post("/v1.41/containers/create", data=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert "Privileged" in answer.json()["message"]


def test_a_recased_allowed_body_takes_effect_as_the_canonical_one(member, engine):
    answer = _create(member, {"image": IMAGE, "cmd": ["true"], "hostconfig": {
        "mounts": [{"target": "/data", "type": "volume", "source": "esc-data"}], "memory": 64 * 1024 * 1024}})
    assert answer.status_code == 201, answer.text
    engine_id = answer.json()["Id"]
    try:
        attrs = engine.api.inspect_container(engine_id)
        assert attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024
        mounts = [m for m in attrs["Mounts"] if m["Destination"] == "/data"]
        assert mounts and mounts[0]["Type"] == "volume" and mounts[0]["Name"].endswith("-esc-data")
        assert escapes(attrs) == []
    finally:
        member.delete(f"/v1.41/containers/{engine_id}?force=1&v=1")


def test_no_member_container_on_the_engine_escapes(member):
    # Last in the module: whatever the attacks above did, the engine holds
    # no container of a member project that reaches the host.
    assert escaping_member_containers(admin_projects={"admin-project"}) == {}


def test_a_flood_of_unknown_fields_is_answered_with_a_bounded_warning_list(member, engine):
    body = dict(BASE, **{f"f{i}": i for i in range(10_000)})
    answer = _create(member, body)
    assert answer.status_code == 201, answer.text
    try:
        warnings = answer.json()["Warnings"]
        assert len(warnings) == 21
        assert warnings[-1] == "9980 more fields are not supported by csvc and were ignored"
    finally:
        member.delete(f"/v1.41/containers/{answer.json()['Id']}?force=1")
