"""
Networking options on csvc: published ports at the instance's address, and
a container joining another's network, pid or ipc namespace, allowed for a
member only when the other container is its project's.
"""

import json
import os
import subprocess
import uuid

import docker
import pytest
import requests

from tests.integration.conftest import docker_sdk as _client
from tests.integration.test_docker_more import IMAGE, _running

#: The namespaces a process is in.
#: The namespaces a process is in, one line each (busybox's readlink takes
#: one file at a time).
NAMESPACES = "for n in net pid ipc; do readlink /proc/{pid}/ns/$n; done"


def _tenant(control_plane, prefix):
    """
    A project of its own: other runs on the same engine clean up the
    shared test projects' containers by label.
    """
    tenant = control_plane.client(f"{prefix}-{uuid.uuid4().hex[:8]}")
    client = _client(control_plane, tenant)
    client.tenant = tenant
    return client


def _clean(client):
    for c in client.tenant.get("/v1/containers").json()["containers"]:
        client.tenant.delete(f"/v1/containers/{c['uuid']}", params={"force": "true"})
    client.close()


@pytest.fixture(scope="module")
def sdk(control_plane):
    client = _tenant(control_plane, "net")
    yield client
    _clean(client)


@pytest.fixture(scope="module")
def other(control_plane):
    client = _tenant(control_plane, "net-other")
    yield client
    _clean(client)


@pytest.fixture(scope="module")
def engine():
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture(scope="module")
def cli(control_plane, sdk, tmp_path_factory):
    config = tmp_path_factory.mktemp("docker-config")
    headers = {k: v for k, v in sdk.tenant.session.headers.items() if k.startswith("X-Auth")}
    (config / "config.json").write_text(json.dumps({"HttpHeaders": headers}))
    env = dict(os.environ, DOCKER_HOST=control_plane.base.replace("http://", "tcp://"), DOCKER_CONFIG=str(config))

    def run(*args, timeout=120):
        return subprocess.run(["/usr/bin/docker", *args], env=env, capture_output=True, timeout=timeout)

    return run


def _engine_ids(engine, client):
    """
    The engine's containers of the client's project.
    """
    found = engine.containers.list(all=True, filters={"label": f"csvc.project={client.tenant.project}"})
    return {c.id for c in found}


# -- published ports ----------------------------------------------------------


def _web(sdk, **options):
    script = "mkdir -p /www && echo served-by-csvc > /www/index.html && exec httpd -f -p 8080 -h /www"
    return _running(sdk.containers.run(IMAGE, ["sh", "-c", script], detach=True, **options))


def test_published_ports_at_the_instances_address(sdk, cli):
    container = _web(sdk, ports={"8080/tcp": None})
    container.reload()
    bindings = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"]
    assert bindings and all(b["HostIp"] not in ("", "0.0.0.0", "::") for b in bindings)
    # The instance's address: here the loopback the local agent connects from.
    assert bindings[0]["HostIp"] == "127.0.0.1"
    answer = requests.get(f"http://{bindings[0]['HostIp']}:{bindings[0]['HostPort']}/index.html", timeout=10)
    assert answer.text == "served-by-csvc\n"
    listed = sdk.api.containers(filters={"id": container.id})
    assert listed[0]["Ports"] == [{"PrivatePort": 8080, "Type": "tcp", "IP": "127.0.0.1",
                                   "PublicPort": int(bindings[0]["HostPort"])}]
    shown = cli("ps", "--filter", f"id={container.id}", "--format", "{{.Ports}}")
    assert shown.stdout.decode().strip() == f"127.0.0.1:{bindings[0]['HostPort']}->8080/tcp"
    port = cli("port", container.id, "8080/tcp")
    assert port.stdout.decode().split() == [f"127.0.0.1:{bindings[0]['HostPort']}"]


def test_publish_all_ports(sdk):
    script = "mkdir -p /www && echo all > /www/index.html && exec httpd -f -p 8080 -h /www"
    created = sdk.api.create_container(IMAGE, ["sh", "-c", script], ports=[8080],
                                       host_config=sdk.api.create_host_config(publish_all_ports=True))
    container = sdk.containers.get(created["Id"])
    assert "PortBindings" not in container.attrs["HostConfig"] or not container.attrs["HostConfig"]["PortBindings"]
    container.start()
    _running(container)
    [binding] = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"]
    assert binding["HostIp"] == "127.0.0.1"
    assert requests.get(f"http://{binding['HostIp']}:{binding['HostPort']}/index.html", timeout=10).text == "all\n"


# -- container:<id> namespaces ------------------------------------------------


def test_joining_namespaces_of_a_container_of_the_project(sdk, engine):
    target = _running(sdk.containers.run(IMAGE, ["sleep", "300"], detach=True, ipc_mode="shareable",
                                         name=f"target-{uuid.uuid4().hex[:6]}"))
    shared = target.exec_run(["sh", "-c", NAMESPACES.format(pid=1)]).output
    assert shared.count(b"\n") == 3 and b"net:[" in shared, shared
    joiner = sdk.containers.run(IMAGE, ["sh", "-c", NAMESPACES.format(pid="self") + "; ps -o args"], detach=True,
                                network_mode=f"container:{target.name}", pid_mode=f"container:{target.id[:12]}",
                                ipc_mode=f"container:{target.name}")
    assert joiner.wait()["StatusCode"] == 0
    output = joiner.logs()
    assert output.startswith(shared)
    assert b"sleep 300" in output  # the target's process, seen from the joiner
    joiner.reload()
    host = joiner.attrs["HostConfig"]
    assert host["NetworkMode"] == f"container:{target.id}"
    on_engine = engine.containers.get(joiner.id).attrs["HostConfig"]
    assert on_engine["NetworkMode"] == on_engine["PidMode"] == on_engine["IpcMode"] == f"container:{target.id}"


def test_joining_with_the_cli(sdk, cli):
    target = _running(sdk.containers.run(IMAGE, ["sleep", "300"], detach=True))
    mac = target.exec_run(["cat", "/sys/class/net/eth0/address"]).output
    result = cli("run", "--rm", "--network", f"container:{target.id[:12]}", IMAGE,
                 "cat", "/sys/class/net/eth0/address")
    assert result.returncode == 0, result.stderr
    assert result.stdout == mac


@pytest.mark.parametrize("option", ["network_mode", "pid_mode", "ipc_mode"])
def test_another_projects_or_an_unknown_container_is_refused(sdk, other, engine, option):
    theirs = _running(other.containers.run(IMAGE, ["sleep", "300"], detach=True, ipc_mode="shareable"))
    field = {"network_mode": "NetworkMode", "pid_mode": "PidMode", "ipc_mode": "IpcMode"}[option]
    for ident in (theirs.id, theirs.name, "no-such-container"):
        before = _engine_ids(engine, sdk)
        with pytest.raises(docker.errors.APIError) as refused:
            sdk.containers.create(IMAGE, ["true"], **{option: f"container:{ident}"})
        assert refused.value.status_code == 403
        assert f"HostConfig.{field} container:{ident} is not allowed" in str(refused.value)
        assert _engine_ids(engine, sdk) == before


def test_host_and_uts_stay_refused_for_members(sdk, engine):
    target = _running(sdk.containers.run(IMAGE, ["sleep", "300"], detach=True))
    before = _engine_ids(engine, sdk)
    for host, words in (({"NetworkMode": "host"}, "HostConfig.NetworkMode host"),
                        ({"PidMode": "host"}, "HostConfig.PidMode host"),
                        ({"IpcMode": "host"}, "HostConfig.IpcMode host"),
                        ({"UTSMode": f"container:{target.id}"}, "HostConfig.UTSMode container:")):
        # (docker-py refuses a container: UTS mode itself: the plain API.)
        with pytest.raises(docker.errors.APIError) as refused:
            sdk.api.create_container(IMAGE, ["true"], host_config=host)
        assert refused.value.status_code == 403
        assert words in str(refused.value)
    assert _engine_ids(engine, sdk) == before
