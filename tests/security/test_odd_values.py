"""
Values a member chooses that reach the engine as strings: NUL bytes, new
lines, relative and odd paths, huge numbers.  Each create is answered with
201 or a 4xx naming what was wrong, never a 5xx, and nothing of the
member's reaches the host.
"""

import json
import uuid

import pytest

from tests.security.engine_check import escaping_member_containers

IMAGE = "csvc/busybox"

#: (what, extra fields of the create body)
ODD = [
    ("NUL in an environment value", {"Env": ["A=\u0000b"]}),
    ("NUL in a command", {"Cmd": ["echo", "a\u0000b"]}),
    ("NUL in the working directory", {"WorkingDir": "/tmp\u0000x"}),
    ("relative working directory", {"WorkingDir": "tmp/../.."}),
    ("NUL in a label key", {"Labels": {"a\u0000b": "c"}}),
    ("new line in a label value", {"Labels": {"a": "b\nc"}}),
    ("NUL in the user", {"User": "0\u0000"}),
    ("new line in the hostname", {"Hostname": "a\nb"}),
    ("NUL in an image name", {"Image": "csvc/busybox\u0000"}),
    ("an environment entry without a name", {"Env": ["=x"]}),
    ("a relative mount target", {"HostConfig": {"Mounts": [{"Type": "tmpfs", "Target": "rel"}]}}),
    ("a tmpfs over /proc", {"HostConfig": {"Tmpfs": {"/proc": "rw"}}}),
    ("a volume over /", {"HostConfig": {"Binds": ["vol:/"]}}),
    ("a memory limit of 2**63", {"HostConfig": {"Memory": 2 ** 63}}),
    ("a negative memory limit", {"HostConfig": {"Memory": -5}}),
    ("a cpu share of 2**40", {"HostConfig": {"CpuShares": 2 ** 40}}),
    ("a shm of 2**62", {"HostConfig": {"ShmSize": 2 ** 62}}),
    ("an exposed port that is not one", {"ExposedPorts": {"http": {}}}),
    ("a stop signal that is not one", {"StopSignal": "SIGNOPE"}),
    ("a dns server that is not an address", {"HostConfig": {"Dns": ["not an address"]}}),
    ("an extra host without an address", {"HostConfig": {"ExtraHosts": ["db"]}}),
    ("a cpuset beyond the machine", {"HostConfig": {"CpusetCpus": "0-4095"}}),
    ("a restart count of -1", {"HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}}}),
]


@pytest.fixture(scope="module")
def member(control_plane):
    return control_plane.client(f"odd{uuid.uuid4().hex[:8]}")


@pytest.mark.parametrize("name, extra", ODD, ids=[n for n, _ in ODD])
def test_an_odd_value_is_a_4xx_or_taken_never_a_5xx(member, name, extra):
    body = dict({"Image": IMAGE, "Cmd": ["true"]}, **extra)
    answer = member.post("/v1.41/containers/create", data=json.dumps(body),
                         headers={"Content-Type": "application/json"})
    try:
        assert answer.status_code < 500, (answer.status_code, answer.text)
        if answer.status_code >= 400:
            assert answer.json()["message"]
        else:
            started = member.post(f"/v1.41/containers/{answer.json()['Id']}/start")
            assert started.status_code < 500, (started.status_code, started.text)
    finally:
        if answer.status_code == 201:
            member.delete(f"/v1.41/containers/{answer.json()['Id']}?force=1&v=1")


def test_no_member_container_escapes_after_the_odd_values():
    assert escaping_member_containers(admin_projects={"admin-project"}) == {}


@pytest.mark.parametrize("field, value", [
    ("environment", {"A": "x\u0000y"}),
    ("environment", {"A\u0000": "y"}),
    ("command", ["echo", "a\u0000b"]),
    ("labels", {"k": "\u0000"}),
])
def test_a_nul_through_the_native_api_is_a_400_naming_the_field(member, field, value):
    answer = member.post("/v1/containers", json={"image": IMAGE, "command": ["true"], field: value, "run": True})
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["error"]["message"]


@pytest.fixture(scope="module")
def running(member):
    answer = member.post("/v1.41/containers/create", json={"Image": IMAGE, "Cmd": ["sleep", "300"]})
    assert answer.status_code == 201, answer.text
    ident = answer.json()["Id"]
    assert member.post(f"/v1.41/containers/{ident}/start").status_code == 204
    yield ident
    member.delete(f"/v1.41/containers/{ident}?force=1")


#: (method, path after /v1.41/containers/ID, query) a member sends
ODD_QUERIES = [
    ("GET", "/archive", {"path": "/etc/\u0000passwd"}),
    ("HEAD", "/archive", {"path": "\u0000"}),
    ("GET", "/archive", {"path": "../../../../../../proc/1/root/etc/shadow"}),
    ("GET", "/archive", {"path": "/" + "x" * 5000}),
    ("PUT", "/archive", {"path": "/tmp/\u0000"}),
    ("GET", "/logs", {"stdout": "1", "since": "yesterday"}),
    ("GET", "/logs", {"stdout": "1", "tail": "-5"}),
    ("GET", "/top", {"ps_args": "aux\u0000"}),
    ("POST", "/kill", {"signal": "SIGKILL\u0000"}),
    ("POST", "/kill", {"signal": "99999"}),
    ("POST", "/resize", {"h": "-1", "w": "99999999"}),
    ("POST", "/rename", {"name": "a\u0000b"}),
    ("POST", "/wait", {"condition": "\u0000"}),
    ("GET", "/stats", {"stream": "0", "one-shot": "\u0000"}),
    ("GET", "/export", {"\u0000": "\u0000"}),
]


@pytest.mark.parametrize("method, path, query", ODD_QUERIES, ids=[f"{m} {p} {sorted(q)}" for m, p, q in ODD_QUERIES])
def test_an_odd_query_is_a_4xx_or_taken_never_a_5xx(member, running, method, path, query):
    answer = member.request(method, f"/v1.41/containers/{running}{path}", params=query, data=b"", timeout=30,
                            stream=True)
    try:
        assert answer.status_code < 500, (answer.status_code, answer.raw.read(300))
    finally:
        answer.close()
