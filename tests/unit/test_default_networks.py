"""
A project's default network: ``docker_config.merge`` putting a container of
the engine's default network on it, the agent's ``DefaultNetworks`` making
it once, and ``ProjectNetworks`` showing it to the project as ``bridge``.
"""

import pytest
from docker import errors as docker_errors
from twisted.internet.defer import succeed

from csvc.agent import docker_config
from csvc.wire import commands
from csvc.wire.commands import InvalidSpec
from csvc.agent.docker_labels import LABEL_DEFAULT_NETWORK, LABEL_PROJECT
from csvc.agent.docker_networks import DefaultNetworks
from csvc.wire.port_rules import PortRules
from csvc.compute.networks import ProjectNetworks

NETWORK = "f" * 64


def spec(host=None, name="web", project="p1"):
    return {"uuid": "u1", "project_id": project, "name": name,
            "docker_config": {"HostConfig": dict(host or {})}}


def merged(host=None, **kwargs):
    return docker_config.merge({"Image": "busybox", "HostConfig": {}}, spec(host), (), **kwargs)


@pytest.mark.parametrize("mode", [None, "", "default", "bridge"])
def test_the_engines_default_network_becomes_the_projects(mode):
    config = merged({} if mode is None else {"NetworkMode": mode}, default_network_id=NETWORK)
    assert config["HostConfig"]["NetworkMode"] == NETWORK
    assert config["NetworkingConfig"] == {"EndpointsConfig": {NETWORK: {"Aliases": ["web"]}}}


@pytest.mark.parametrize("mode", ["none", "host", "container:abc"])
def test_other_modes_stay(mode):
    config = merged({"NetworkMode": mode}, default_network_id=NETWORK)
    assert config["HostConfig"]["NetworkMode"] == mode
    assert "NetworkingConfig" not in config


def test_a_projects_own_network_stays_its_own():
    config = merged({"NetworkMode": "backend"}, default_network_id=NETWORK)
    assert config["HostConfig"]["NetworkMode"] == "csvc-p1-backend"


def test_the_default_networks_name_and_bridge():
    names = {docker_config.default_network(p) for p in ("p1", "p2", "a-b", "a.b")}
    assert len(names) == 4
    for name in names:
        # Never a project's own network's name (csvc-<project>-<name>).
        assert not name.startswith("csvc-")
        bridge = docker_config.bridge_name(name)
        assert bridge.startswith(docker_config.BRIDGE_PREFIX) and len(bridge) <= 15
    assert docker_config.network_driver_options("x")["com.docker.network.bridge.name"] == \
        docker_config.bridge_name("x")


def test_published_ports_are_rebuilt_by_the_agent_too():
    rules = PortRules.from_options("203.0.113.7", None, [8781])
    config = merged({"PortBindings": {"80": [{"HostPort": "8080"}]}}, port_rules=rules)
    assert config["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "203.0.113.7", "HostPort": "8080"}]}
    with pytest.raises(InvalidSpec, match="loopback"):
        merged({"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}}, port_rules=rules)
    with pytest.raises(InvalidSpec, match="csvc's"):
        merged({"PortBindings": {"80/tcp": [{"HostPort": "8781"}]}}, port_rules=rules)
    with pytest.raises(InvalidSpec, match="PublishAllPorts"):
        merged({"PublishAllPorts": True}, port_rules=rules)


class Engine:
    """
    The SDK's low-level client as far as DefaultNetworks uses it.
    """

    def __init__(self, racing=0):
        self.networks_made = []
        self.removed = []
        #: the network of each container
        self.on = []
        #: networks another agent makes between our listing and our create
        self.racing = racing

    @property
    def api(self):
        return self

    def networks(self, names):
        return [n for n in self.networks_made if n["Name"] in names]

    def create_network(self, name, driver, check_duplicate, labels, options):
        assert driver == "bridge" and options == docker_config.network_driver_options(name)
        for _ in range(self.racing):
            self.networks_made.append({"Name": name, "Id": f"z{len(self.networks_made)}",
                                       "Created": f"2025-01-01T00:00:00.{len(self.networks_made) + 1}Z"})
        self.networks_made.append({"Name": name, "Id": f"a{len(self.networks_made)}", "Labels": labels,
                                   "Created": f"2025-01-01T00:00:00.{len(self.networks_made) + 1}5Z"})
        return {"Id": self.networks_made[-1]["Id"]}

    def containers(self, all, filters):
        assert all is True
        return [c for c in self.on if c == filters["network"]]

    def remove_network(self, ident):
        self.removed.append(ident)
        self.networks_made = [n for n in self.networks_made if n["Id"] != ident]


def test_made_once_with_the_projects_labels():
    engine = Engine()
    networks = DefaultNetworks()
    first = networks.ensure(engine, "p1")
    assert networks.ensure(engine, "p1") == first
    [made] = engine.networks_made
    assert made["Name"] == docker_config.default_network("p1")
    assert made["Labels"] == {LABEL_PROJECT: "p1", LABEL_DEFAULT_NETWORK: "1"}
    assert networks.ensure(engine, "p2") != first


def test_made_by_two_agents_at_once_the_oldest_is_kept():
    # Another agent's network came first (".1Z" before ".15Z" though
    # longer as a string): ours goes.
    engine = Engine(racing=1)
    assert DefaultNetworks().ensure(engine, "p1") == "z0"
    assert engine.removed == ["a1"]


def test_a_conflict_means_it_exists():
    engine = Engine()
    make = engine.create_network

    def conflict(name, **kwargs):
        make(name, **kwargs)
        raise docker_errors.APIError("conflict", response=type("R", (), {"status_code": 409, "reason": ""})())

    engine.create_network = conflict
    assert DefaultNetworks().ensure(engine, "p1") == engine.networks_made[0]["Id"]


def test_a_same_bridge_refusal_of_a_network_made_meanwhile_finds_it():
    # Both makers passed the engine's name check: the second fails on the
    # bridge's name, with a 500.
    engine = Engine()
    make = engine.create_network

    def same_bridge(name, **kwargs):
        make(name, **kwargs)
        raise docker_errors.APIError("networks have same bridge name",
                                     response=type("R", (), {"status_code": 500, "reason": ""})())

    engine.create_network = same_bridge
    assert DefaultNetworks().ensure(engine, "p1") == engine.networks_made[0]["Id"]


def test_a_refusal_with_no_network_made_is_an_engine_error():
    engine = Engine()

    def refused(name, **kwargs):
        raise docker_errors.APIError("no address pool left", response=type("R", (), {"status_code": 500,
                                                                                       "reason": ""})())

    engine.create_network = refused
    with pytest.raises(commands.EngineError, match="could not be made"):
        DefaultNetworks().ensure(engine, "p1")


def test_removed_with_its_last_container():
    engine = Engine()
    networks = DefaultNetworks()
    with networks.held(engine, "p1") as network_id:
        engine.on.append(network_id)
    networks.release(engine, "p1")
    assert engine.removed == []
    engine.on.clear()
    networks.release(engine, "p1")
    assert engine.removed == [network_id] and engine.networks_made == []
    # Nothing left to remove: nothing done; the next create makes it anew.
    networks.release(engine, "p1")
    networks.ensure(engine, "p1")
    assert [n["Name"] for n in engine.networks_made] == [docker_config.default_network("p1")]
    assert networks._projects == {}


def test_a_release_waits_for_a_create_on_it():
    import threading
    engine = Engine()
    networks = DefaultNetworks()
    released = threading.Event()
    with networks.held(engine, "p1") as network_id:
        thread = threading.Thread(target=lambda: (networks.release(engine, "p1"), released.set()))
        thread.start()
        # The release waits its turn: the container is made meanwhile.
        assert not released.wait(0.2)
        engine.on.append(network_id)
    thread.join()
    assert engine.removed == []


class Hub:
    def __init__(self, networks):
        self.networks = networks
        self.calls = []

    def call(self, instance, command, **kwargs):
        self.calls.append((command, kwargs))
        assert command is commands.ListNetworks
        return succeed({"networks": [n for n in self.networks
                                     if n["Name"].startswith(kwargs["prefix"]) or n["Name"] in kwargs["names"]]})


class Store:
    pass


def project_networks(networks):
    pn = ProjectNetworks(Store(), Hub(networks))
    pn.instance = lambda project_id: succeed("i1")
    return pn


ENGINE_BRIDGE = {"Name": "bridge", "Id": "b" * 64, "Containers": {}}
NONE = {"Name": "none", "Id": "n" * 64, "Containers": {}}
OWN = {"Name": docker_config.default_network("p1"), "Id": "d" * 64, "Containers": {"e1": {}, "e9": {}}}
THEIRS = {"Name": docker_config.default_network("p2"), "Id": "t" * 64, "Containers": {}}
BACKEND = {"Name": "csvc-p1-backend", "Id": "k" * 64, "Containers": {}}


def test_the_projects_bridge_is_its_default_network():
    pn = project_networks([ENGINE_BRIDGE, NONE, OWN, THEIRS, BACKEND])
    listed = pn.list("p1", {"e1": "web"}).result
    assert sorted((n["Name"], n["Id"][0]) for n in listed) == [("backend", "k"), ("bridge", "d"), ("none", "n")]
    bridge = next(n for n in listed if n["Name"] == "bridge")
    assert bridge["Containers"] == {"e1": {"Name": "web"}}
    assert pn.find("p1", "bridge").result == ("i1", OWN["Name"], "bridge")
    # Not counted against the project's networks quota.
    assert pn.count("p1").result == 1


def test_the_engines_bridge_until_the_project_has_its_own():
    pn = project_networks([ENGINE_BRIDGE, NONE, THEIRS])
    listed = pn.list("p1", {}).result
    assert sorted((n["Name"], n["Id"][0]) for n in listed) == [("bridge", "b"), ("none", "n")]
    # Another project's default network is never the project's.
    failures = []
    pn.find("p1", "t").addErrback(failures.append)
    [failure] = failures
    assert failure.check(commands.NoSuchNetwork)
