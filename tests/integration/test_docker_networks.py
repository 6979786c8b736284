"""
A project's networks through the docker SDK and Docker Compose against a
running csvc on the real engine: bridge networks of the project's own
(``csvc-<project>-<name>`` on the engine), on which its containers find one
another by name and alias; another project neither sees nor reaches them.
"""

import json
import os
import shutil
import subprocess
import time
import uuid

import docker
import pytest

from csvc.agent.docker_config import engine_network
from tests.integration.conftest import docker_sdk

IMAGE = "csvc/busybox"


@pytest.fixture
def projects(control_plane):
    """
    Two projects of this test's own (the engine is shared with other runs).
    """
    suffix = uuid.uuid4().hex[:8]
    mine, theirs = f"net-{suffix}", f"net-other-{suffix}"
    clients = (docker_sdk(control_plane, control_plane.client(mine)),
               docker_sdk(control_plane, control_plane.client(theirs)))
    yield (mine, theirs), clients
    for client in clients:
        for container in client.containers.list(all=True):
            container.remove(force=True)
        for network in client.networks.list():
            if network.name not in ("bridge", "none"):
                network.remove()
        client.close()


def _engine_networks(prefix):
    engine = docker.from_env()
    try:
        return sorted(n.name for n in engine.networks.list() if n.name.startswith(prefix))
    finally:
        engine.close()


def _reach(client, network, *names):
    """
    Whether a container on ``network`` resolves and reaches each of
    ``names`` (a TCP connection to each one's ``LISTENING`` server: ping
    needs NET_RAW, which containers do not have): its output.
    """
    script = "; ".join(f"nc -w2 {n} 8080 </dev/null >/dev/null 2>&1 && echo {n}:yes || echo {n}:no" for n in names)
    container = client.containers.run(IMAGE, ["sh", "-c", script], network=network, detach=True)
    try:
        assert container.wait(timeout=30)["StatusCode"] == 0
        return container.logs().decode().split()
    finally:
        container.remove(force=True)


#: A container that answers on TCP port 8080 (busybox's httpd), for ``_reach``
LISTENING = ["sh", "-c", "httpd -p 8080 -h /tmp && exec sleep 300"]


def test_a_projects_network_its_containers_and_their_names(projects):
    (project, other), (mine, theirs) = projects
    prefix = engine_network(project, "")
    network = mine.networks.create("backend", labels={"tier": "data"})
    assert network.name == "backend"
    assert _engine_networks(prefix) == [prefix + "backend"]
    listed = {n.name: n for n in mine.networks.list()}
    assert sorted(listed) == ["backend", "bridge", "none"]
    assert listed["backend"].attrs["Labels"]["tier"] == "data"
    assert [n.name for n in mine.networks.list(names=["back"])] == ["backend"]
    assert sorted(n.name for n in mine.networks.list(filters={"type": "custom"})) == ["backend"]
    assert mine.networks.get(network.id[:12]).name == "backend"

    db = mine.containers.run(IMAGE, LISTENING, name="db", network="backend", detach=True)
    # By its name in the project, by the alias given, on the network only.
    mine.containers.run(IMAGE, LISTENING, name="cache", detach=True)
    network.connect("cache", aliases=["memo"])
    assert _reach(mine, "backend", "db", "cache", "memo") == ["db:yes", "cache:yes", "memo:yes"]
    assert _reach(mine, "bridge", "db") == ["db:no"]
    inspected = mine.networks.get("backend").attrs
    assert sorted(c["Name"] for c in inspected["Containers"].values()) == ["cache", "db"]
    db.reload()
    assert db.attrs["HostConfig"]["NetworkMode"] == "backend"
    assert list(db.attrs["NetworkSettings"]["Networks"]) == ["backend"]
    [listed_db] = mine.api.containers(filters={"name": "db"})
    assert listed_db["HostConfig"]["NetworkMode"] == "backend"
    assert list(listed_db["NetworkSettings"]["Networks"]) == ["backend"]
    cache = mine.containers.get("cache")
    assert cache.attrs["NetworkSettings"]["Networks"]["backend"]["Aliases"] == ["cache", "memo"]

    # In use: not removed (Docker's 403), not pruned.
    with pytest.raises(docker.errors.APIError) as busy:
        network.remove()
    assert busy.value.status_code == 403
    assert "has active endpoints" in str(busy.value) and prefix not in str(busy.value)
    assert mine.networks.prune()["NetworksDeleted"] == []
    network.disconnect("cache")
    assert _reach(mine, "backend", "memo") == ["memo:no"]
    assert "backend" not in mine.containers.get("cache").attrs["NetworkSettings"]["Networks"]

    # Another project: sees neither the network nor its containers, and
    # cannot use it, by name or by id.
    assert sorted(n.name for n in theirs.networks.list()) == ["bridge", "none"]
    for ident in ("backend", network.id):
        with pytest.raises(docker.errors.NotFound):
            theirs.networks.get(ident)
        with pytest.raises(docker.errors.NotFound):
            theirs.containers.create(IMAGE, ["true"], network=ident)
        with pytest.raises(docker.errors.NotFound):
            theirs.api.remove_network(ident)
    bridge = theirs.networks.get("bridge").attrs
    assert not set(bridge["Containers"]) & {db.id, cache.id}
    # Theirs of the same name is another network.
    theirs.networks.create("backend")
    assert _engine_networks(engine_network(other, "")) == [engine_network(other, "backend")]
    assert _engine_networks(prefix) == [prefix + "backend"]

    db.remove(force=True)
    assert mine.networks.prune(filters={"label": "tier=data"})["NetworksDeleted"] == ["backend"]
    assert _engine_networks(prefix) == []


def test_bad_network_requests_say_what_is_wrong(projects):
    _project, (mine, _theirs) = projects
    cases = [
        (lambda: mine.networks.create("bridge"), 403, "bridge is a pre-defined network"),
        (lambda: mine.networks.create("a/b"), 400, "invalid network name 'a/b'"),
        (lambda: mine.networks.create("o", driver="overlay"), 400, "only bridge networks"),
        (lambda: mine.networks.create("s", ipam=docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet="10.9.0.0/24")])), 400, "IPAM"),
        (lambda: mine.networks.create("v6", enable_ipv6=True), 400, "EnableIPv6"),
        (lambda: mine.networks.get("nowhere"), 404, "network nowhere not found"),
        (lambda: mine.containers.create(IMAGE, ["true"], network="nowhere"), 404, "network nowhere not found"),
        (lambda: mine.networks.get("bridge").connect("x"), 404, "No such container: x"),
    ]
    for call, status, text in cases:
        with pytest.raises(docker.errors.APIError) as refused:
            call()
        assert refused.value.status_code == status, refused.value
        assert text in str(refused.value)
    mine.networks.create("twice")
    with pytest.raises(docker.errors.APIError) as again:
        mine.networks.create("twice")
    assert again.value.status_code == 409
    assert "network with name twice already exists" in str(again.value)
    container = mine.containers.create(IMAGE, ["true"])
    with pytest.raises(docker.errors.APIError) as builtin:
        mine.networks.get("bridge").connect(container)
    assert builtin.value.status_code == 403
    # A container is created on one network; others are connected after.
    with pytest.raises(docker.errors.APIError) as two:
        mine.api.create_container(IMAGE, ["true"], host_config=mine.api.create_host_config(network_mode="twice"),
                                  networking_config=mine.api.create_networking_config({
                                      "twice": mine.api.create_endpoint_config(),
                                      "other": mine.api.create_endpoint_config()}))
    assert two.value.status_code == 400
    assert "connect it to other after" in str(two.value)


def test_a_projects_networks_are_within_its_quota(control_plane, projects):
    (project, _other), (mine, _theirs) = projects
    admin = control_plane.admin
    assert admin.request("PUT", f"/v1/quotas/{project}", json={"networks": 1}).status_code == 200
    try:
        mine.networks.create("first")
        with pytest.raises(docker.errors.APIError) as refused:
            mine.networks.create("second")
        assert refused.value.status_code == 403
        assert "quota exceeded for networks: limit 1, in use 1, requested 1" in str(refused.value)
        usage = admin.get(f"/v1/quotas/{project}/usage").json()
        assert usage["networks"] == {"limit": 1, "in_use": 1}
        mine.networks.get("first").remove()
        mine.networks.create("second")
    finally:
        admin.request("DELETE", f"/v1/quotas/{project}")


COMPOSE = shutil.which("docker-compose")

COMPOSE_FILE = """\
version: "3.7"
services:
  db:
    image: csvc/busybox
    command: ["sh", "-c", "exec nc -ll -p 5000 -e echo hello-from-db"]
  web:
    image: csvc/busybox
    command: ["sh", "-c", "until nc db 5000; do sleep 0.2; done; sleep 300"]
    depends_on: [db]
"""


def test_docker_compose_up_and_down(control_plane, tmp_path):
    """
    Docker Compose (Debian's docker-compose 1.29, with its docker-py): its
    default network, service names resolving on it, logs, ps, down.
    """
    assert COMPOSE, "docker-compose is installed by scripts/bootstrap.sh"
    project = f"compose-{uuid.uuid4().hex[:8]}"
    tenant = control_plane.client(project)
    config = tmp_path / "docker-config"
    config.mkdir()
    headers = {k: v for k, v in tenant.session.headers.items() if k.startswith("X-Auth")}
    (config / "config.json").write_text(json.dumps({"HttpHeaders": headers}))
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE)
    env = dict(os.environ, DOCKER_HOST=control_plane.base.replace("http://", "tcp://"), DOCKER_CONFIG=str(config),
               COMPOSE_PROJECT_NAME="shop")

    def compose(*args, timeout=120):
        done = subprocess.run([COMPOSE, "--no-ansi", *args], cwd=tmp_path, env=env, capture_output=True,
                              timeout=timeout)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode()

    sdk = docker_sdk(control_plane, tenant)
    try:
        compose("up", "-d")
        assert sorted(n.name for n in sdk.networks.list()) == ["bridge", "none", "shop_default"]
        web = sdk.containers.get("shop_web_1")
        deadline = time.monotonic() + 30
        while b"hello-from-db" not in web.logs() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert b"hello-from-db" in web.logs()
        assert "hello-from-db" in compose("logs", "--no-color", "web")
        listed = compose("ps")
        assert "shop_db_1" in listed and "shop_web_1" in listed
        compose("down")
        assert sdk.containers.list(all=True) == []
        assert sorted(n.name for n in sdk.networks.list()) == ["bridge", "none"]
        assert _engine_networks(engine_network(project, "")) == []
    finally:
        sdk.close()
        subprocess.run([COMPOSE, "down"], cwd=tmp_path, env=env, capture_output=True, timeout=120)
