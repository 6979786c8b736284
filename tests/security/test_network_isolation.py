"""
Issue 18, projects never share a network (against the real engine, through
a running csvc): each project's containers are on the project's own default
network, reach one another by name there and never another project's; its
published ports still answer on the host; containers reach neither the
instance's own ports nor a metadata address (the agent's InstanceFirewall),
where a container outside csvc, on the engine's bridge, does.
"""

import contextlib
import ipaddress
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import docker
import pytest
import requests

from csvc.agent.docker_config import BRIDGE_PREFIX, default_network
from tests.integration.conftest import docker_sdk

IMAGE = "csvc/busybox"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the instance firewall needs root (iptables)")


@pytest.fixture
def projects(control_plane):
    suffix = uuid.uuid4().hex[:8]
    names = (f"iso-{suffix}", f"iso-other-{suffix}")
    clients = tuple(docker_sdk(control_plane, control_plane.client(name)) for name in names)
    yield names, clients
    for client in clients:
        for container in client.containers.list(all=True):
            container.remove(force=True)
        client.close()


@pytest.fixture
def engine():
    client = docker.from_env()
    yield client
    client.close()


def _output(client, script, **kwargs):
    """
    Run ``sh -c script`` in a container of ``client`` (csvc's or the
    engine's own); its output.
    """
    container = client.containers.run(IMAGE, ["sh", "-c", script], detach=True, **kwargs)
    try:
        container.wait(timeout=60)
        return container.logs().decode()
    finally:
        container.remove(force=True)


def _engine_network(engine, container_id):
    [(name, endpoint)] = engine.containers.get(container_id).attrs["NetworkSettings"]["Networks"].items()
    return name, endpoint


def test_projects_never_share_a_network(projects, engine):
    (mine_name, theirs_name), (mine, theirs) = projects
    web = theirs.containers.run(IMAGE, ["httpd", "-f", "-p", "8080", "-h", "/etc"], name="web", detach=True)
    network, endpoint = _engine_network(engine, web.id)
    # The project's own default network, not the engine's bridge.
    assert network == default_network(theirs_name) != "bridge"
    ip = endpoint["IPAddress"]
    assert ip
    bridge = engine.networks.get(network).attrs
    assert bridge["Options"]["com.docker.network.bridge.name"].startswith(BRIDGE_PREFIX)
    # (This busybox's wget crashes: HTTP by hand.)
    fetch = ("printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {} 8080 2>/dev/null | grep -q '200 OK' "
             "&& echo fetched || echo refused")
    # The project's containers reach it, by address and by name.
    assert _output(theirs, fetch.format(ip)).split()[-1] == "fetched"
    assert _output(theirs, fetch.format("web")).split()[-1] == "fetched"
    # Another project's reach it by neither.
    assert _output(mine, fetch.format(ip)).split()[-1] == "refused"
    assert _output(mine, fetch.format("web")).split()[-1] == "refused"
    # What they see of it: their bridge is their own network.
    listed = {n.name: n for n in theirs.networks.list()}
    assert sorted(listed) == ["bridge", "none"]
    assert listed["bridge"].id == bridge["Id"]
    assert [c["Name"] for c in theirs.networks.get("bridge").attrs["Containers"].values()] == ["web"]
    assert not mine.networks.get("bridge").attrs["Containers"]
    assert mine.networks.prune()["NetworksDeleted"] == [] and theirs.networks.prune()["NetworksDeleted"] == []
    # "none" stays none.
    assert _output(theirs, "ip -o addr | grep -v ' lo ' | wc -l", network_mode="none").split() == ["0"]
    # The project's last container gone, so is its default network.
    web.remove(force=True)
    assert not engine.networks.list(names=[network])


def test_published_ports_answer_on_the_host_and_only_within_the_rules(projects, control_plane, engine):
    _names, (mine, _theirs) = projects
    web = mine.containers.run(IMAGE, ["httpd", "-f", "-p", "8080", "-h", "/etc"], ports={"8080/tcp": None},
                              detach=True)
    bindings = engine.containers.get(web.id).attrs["NetworkSettings"]["Ports"]["8080/tcp"]
    port = int(bindings[0]["HostPort"])
    deadline = time.monotonic() + 20
    while True:
        try:
            assert requests.get(f"http://127.0.0.1:{port}/hostname", timeout=5).status_code == 200
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    for ports, why in (({"8080/tcp": ("127.0.0.1", 18080)}, "loopback"),
                       ({"8080/tcp": control_plane.agents_port}, "csvc's"),
                       ({"8080/tcp": 80}, "within 1024-65535")):
        with pytest.raises(docker.errors.APIError) as refused:
            mine.containers.create(IMAGE, ["true"], ports=ports)
        assert refused.value.status_code in (400, 403) and why in str(refused.value)


@contextlib.contextmanager
def _listener(host, port=0, greeting=b"hello\n"):
    """
    A TCP server on ``host``: greets each connection and closes it.
    """
    server = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(greeting)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()


def _gateway(engine, network):
    config = engine.networks.get(network).attrs["IPAM"]["Config"][0]
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


def test_containers_cannot_reach_the_instance(projects, engine):
    (mine_name, _), (mine, _theirs) = projects
    knock = "nc -w 3 {} {} </dev/null 2>/dev/null; echo done"
    with _listener("0.0.0.0") as port:
        sleeper = mine.containers.run(IMAGE, ["sleep", "300"], detach=True)
        network, _endpoint = _engine_network(engine, sleeper.id)
        gateway = _gateway(engine, network)
        # Outside csvc, on the engine's bridge: the instance answers ...
        assert "hello" in _output(engine, knock.format(_gateway(engine, "bridge"), port), remove=False).split()
        # ... but not to a project's container, at its gateway or at any
        # of the instance's addresses.
        assert _output(mine, knock.format(gateway, port)).split()[:1] == ["done"]
        for address in _instance_addresses():
            assert _output(mine, knock.format(address, port)).split()[:1] == ["done"], address


def _instance_addresses():
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines()
            if not line.split()[1].startswith(("docker", BRIDGE_PREFIX, "br-", "veth"))][:3]


@pytest.fixture
def metadata_service():
    """
    169.254.169.254 in a network namespace of its own behind a veth, as a
    cloud's metadata service is one hop away: greets on port 80.
    """
    tag = uuid.uuid4().hex[:6]
    ns, host_end, ns_end = f"csvcmeta{tag}", f"vmh{tag}", f"vmn{tag}"

    def ip(*args):
        subprocess.run(["ip", *args], check=True, capture_output=True)

    ip("netns", "add", ns)
    server = None
    try:
        ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        ip("link", "set", ns_end, "netns", ns)
        ip("addr", "add", "169.254.169.253/30", "dev", host_end)
        ip("link", "set", host_end, "up")
        ip("-n", ns, "addr", "add", "169.254.169.254/30", "dev", ns_end)
        ip("-n", ns, "link", "set", ns_end, "up")
        ip("-n", ns, "link", "set", "lo", "up")
        code = ("import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                "s.bind(('169.254.169.254', 80)); s.listen(8)\nwhile True:\n c,_=s.accept(); c.sendall(b'meta\\n'); "
                "c.close()\n")
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code])
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("169.254.169.254", 80), timeout=1) as s:
                    assert s.recv(16) == b"meta\n"
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_containers_cannot_reach_the_metadata_address(projects, engine, metadata_service):
    _names, (mine, _theirs) = projects
    knock = "nc -w 3 169.254.169.254 80 </dev/null 2>/dev/null; echo done"
    # Routed through the instance: a container on the engine's bridge
    # reaches it; a project's does not.
    assert _output(engine, knock, remove=False).split()[:2] == ["meta", "done"]
    assert _output(mine, knock).split()[:1] == ["done"]
