"""
Docker bodies read as Go's decoder reads them and rebuilt (``engine_body``),
then judged (``docker_options``): any re-casing of an allowed body gives the
same engine config, any re-casing of a refused one is refused.
"""

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csvc import policy
from csvc.api import docker_options, engine_body
from csvc.api.schemas import BadRequest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SWAGGER = "/usr/share/gocode/src/github.com/docker/docker/api/swagger.yaml"
CREATE = "POST /containers/create"


class Member:
    is_admin = False
    project_id = "p"
    roles = ("member",)


def recase(draw, value):
    """
    ``value`` with every object key that names a schema field re-cased at
    random (map keys such as labels' are the client's and kept).
    """
    if isinstance(value, dict):
        out = {}
        for key, sub in value.items():
            if "/" in key or "." in key:
                out[key] = recase(draw, sub)
                continue
            flips = draw(st.lists(st.booleans(), min_size=len(key), max_size=len(key)))
            spelt = "".join(c.swapcase() if flip else c for c, flip in zip(key, flips))
            if "s" in spelt and draw(st.booleans()):
                spelt = spelt.replace("s", "\u017f", 1)  # Go folds the long s into s
            out[spelt] = recase(draw, sub)
        return out
    if isinstance(value, list):
        return [recase(draw, item) for item in value]
    return value


ALLOWED = {
    "Image": "csvc/busybox", "Cmd": ["sh", "-c", "true"], "Env": ["A=1"], "WorkingDir": "/tmp",
    "Labels": {"lbl.one": "1"}, "User": "1000", "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000},
    "ExposedPorts": {"80/tcp": {}},
    "HostConfig": {
        "Memory": 67108864, "NanoCpus": 500000000, "PidsLimit": 100, "ReadonlyRootfs": True,
        "Tmpfs": {"/run": "size=1m"}, "CapDrop": ["NET_RAW"], "SecurityOpt": ["no-new-privileges"],
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
        "Ulimits": [{"Name": "nofile", "Soft": 512, "Hard": 512}],
        "Mounts": [{"Type": "volume", "Source": "data", "Target": "/data", "ReadOnly": True,
                    "VolumeOptions": {"NoCopy": True}},
                   {"Type": "tmpfs", "Target": "/scratch", "TmpfsOptions": {"SizeBytes": 1048576}}],
        "Binds": ["cache:/cache:ro"], "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
    },
}

REFUSED = [
    {"HostConfig": {"Privileged": True}},
    {"HostConfig": {"CapAdd": ["SYS_ADMIN"]}},
    {"HostConfig": {"Binds": ["/:/host"]}},
    {"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/", "Target": "/host"}]}},
    {"HostConfig": {"Mounts": [{"Type": "volume", "Source": "x", "Target": "/v", "VolumeOptions": {
        "DriverConfig": {"Name": "local", "Options": {"type": "none", "o": "bind", "device": "/etc"}}}}]}},
    {"HostConfig": {"NetworkMode": "host"}},
    {"HostConfig": {"PidMode": "host"}},
    {"HostConfig": {"Devices": [{"PathOnHost": "/dev/kmsg", "PathInContainer": "/dev/kmsg",
                                 "CgroupPermissions": "rwm"}]}},
    {"HostConfig": {"SecurityOpt": ["seccomp=unconfined"]}},
    {"HostConfig": {"Sysctls": {"kernel.shm_rmid_forced": "1"}}},
    {"HostConfig": {"VolumeDriver": "convoy"}},
]


def judged(body):
    rebuilt, dropped = engine_body.canonical(CREATE, body)
    docker_options.enforce(rebuilt, Member())
    return docker_options.honoured(rebuilt)[0], dropped


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_recasing_of_an_allowed_body_gives_the_same_engine_config(data):
    spelt = recase(data.draw, ALLOWED)
    assert judged(spelt) == judged(ALLOWED)


@settings(max_examples=30, deadline=None)
@given(st.data(), st.sampled_from(REFUSED))
def test_any_recasing_of_a_refused_body_is_refused(data, refused):
    body = dict({"Image": "csvc/busybox"}, **refused)
    with pytest.raises(policy.Forbidden):
        judged(body)
    with pytest.raises(policy.Forbidden):
        judged(recase(data.draw, body))


def test_unknown_fields_are_dropped_and_named():
    rebuilt, dropped = engine_body.canonical(CREATE, {
        "Image": "i", "Bogus": 1, "HostConfig": {"Mounts": [{"Target": "/v", "Evil": {"Type": "bind"}}]}})
    assert rebuilt == {"Image": "i", "HostConfig": {"Mounts": [{"Target": "/v"}]}}
    assert dropped == ["Bogus", "HostConfig.Mounts[0].Evil"]


def test_two_spellings_of_one_field_are_refused():
    with pytest.raises(BadRequest, match="HostConfig.Privileged and HostConfig.PRIVILEGED"):
        engine_body.canonical(CREATE, {"HostConfig": {"Privileged": False, "PRIVILEGED": True}})


def test_the_same_key_twice_in_one_object_is_refused():
    with pytest.raises(BadRequest, match="given twice"):
        engine_body.decode(b'{"Image": "a", "Image": "b"}')


def test_deep_nesting_is_a_400_not_a_crash():
    with pytest.raises(BadRequest, match="nested too deeply"):
        engine_body.decode(b"[" * 200000 + b"]" * 200000)


@pytest.mark.parametrize("body, named", [
    ({"HostConfig": {"Memory": "lots"}}, "HostConfig.Memory: must be an integer"),
    ({"HostConfig": {"Privileged": "yes"}}, "HostConfig.Privileged: must be true or false"),
    ({"Cmd": [None]}, r"Cmd\[0\]: must not be null"),
    ({"HostConfig": {"Mounts": {"Target": "/"}}}, "HostConfig.Mounts: must be a list"),
    ({"Labels": {"a": 1}}, "Labels.a: must be a string"),
])
def test_wrong_types_are_a_400_naming_the_field(body, named):
    with pytest.raises(BadRequest, match=named):
        engine_body.canonical(CREATE, body)


def test_maps_keep_the_clients_keys_and_nulls():
    rebuilt, _ = engine_body.canonical(CREATE, {"ExposedPorts": {"80/tcp": {"anything": 1}},
                                                "HostConfig": {"PortBindings": {"80/tcp": None}}})
    assert rebuilt == {"ExposedPorts": {"80/tcp": {}}, "HostConfig": {"PortBindings": {"80/tcp": None}}}


def test_a_mount_keeps_only_its_types_fields():
    rebuilt, _ = engine_body.canonical(CREATE, {"HostConfig": {"Mounts": [
        {"Type": "volume", "Source": "vol", "Target": "/v", "BindOptions": {"Propagation": "rshared"}}]}})
    with pytest.raises(BadRequest, match="BindOptions does not apply to a mount of type volume"):
        docker_options.honoured(rebuilt)


@pytest.mark.skipif(not os.path.exists(SWAGGER), reason="golang-github-docker-docker-dev is not installed")
def test_the_committed_schema_is_what_the_engines_swagger_gives():
    written = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "engine_schema.py"), SWAGGER],
                             check=True, capture_output=True, text=True).stdout
    with open(os.path.join(ROOT, "csvc", "api", "engine_schema.json"), encoding="utf-8") as f:
        assert json.loads(written) == json.load(f)


def test_a_dropped_field_is_named_shortened():
    # The client chose the key: it reaches the create's answer and the log.
    _, dropped = engine_body.canonical(CREATE, {"Image": "i", "x" * 100_000: 1, "Labels": {"a": "b"}})
    assert len(dropped) == 1 and dropped[0].startswith("xxx") and dropped[0].endswith("...")
    assert len(dropped[0]) < 200
