"""
``NovaProvider`` through the real openstacksdk against ``tests.novastub``,
the in-process stand-in of Nova v2.1 and Keystone v3 on 127.0.0.1 (no Nova
can run here).  The SDK runs on the provider's thread pool, the stand-in on
the reactor (pytest-twisted); the store is the real SQL on SQLite, run on
the calling thread.

Also: placement's provider economy with Nova (100 containers at capacity 10
cost 10 server creates) and ``static`` (no provider: full is 503).
"""

import base64
import os
import uuid as uuidlib

import pytest
import pytest_twisted
import yaml
from twisted.internet import reactor, threads
from twisted.internet.defer import DeferredList, succeed

from csvc import config
from csvc.providers.nova import NovaCompute, NovaError, NovaProvider, NovaTimeout, ServerTemplate, connection_factory
from csvc.scheduler.placement import Placement
from csvc.stdio.journal import Journal
from csvc.store.db import NoRoom, hash_secret, make_engine, upgrade
from tests.api.conftest import FakeAgentHub, SynchronousStore, result_of
from tests.novastub import IMAGES, NovaStub, listen

CONNECT = "tcp:203.0.113.5:8781"
NETWORK = "3f1b8b57-32a4-4bd5-9b5d-6b1f6f3a9d11"


@pytest.fixture
def stub():
    stub = NovaStub(reactor, build_delay=0.3, delete_delay=0.3, max_servers=20)
    port = pytest_twisted.blockon(listen(stub, reactor))
    yield stub
    pytest_twisted.blockon(port.stopListening())


@pytest.fixture
def store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'csvc.sqlite'}")
    upgrade(engine)
    store = SynchronousStore(engine, reactor, quota_defaults={"containers": -1})
    yield store
    engine.dispose()


def settings(stub):
    return {
        "nova-auth-url": stub.auth_url,
        "nova-username": stub.username,
        "nova-password": stub.password,
        "nova-project": stub.project,
        "nova-user-domain": "Default",
        "nova-project-domain": "Default",
    }


def make_provider(stub, store, flavor="2", timeout=10.0, capacity=10, connect=CONNECT, ca_pem=None):
    template = ServerTemplate(flavor=flavor, image=IMAGES["ubuntu-24.04"], network=NETWORK, key_name="ops",
                              agent_connect=connect, ca_pem=ca_pem)
    provider = NovaProvider(store, NovaCompute(connection_factory(settings(stub))), template, capacity, reactor,
                            timeout=timeout, poll=0.05)
    provider.startService()
    return provider


@pytest.fixture
def providers():
    made = []
    yield made
    for provider in made:
        provider.stopService()


def written_files(user_data):
    """
    The files cloud-init writes from the user data, by path.
    """
    assert user_data.startswith("#cloud-config\n")
    return {f["path"]: f for f in yaml.safe_load(user_data)["write_files"]}


def token_of(user_data):
    token_file = written_files(user_data)["/etc/csvc-agent/enroll-token"]
    return token_file["content"].strip()


def command_lines(user_data):
    """
    Every command line the user data runs: runcmd's and the unit's ExecStart.
    """
    document = yaml.safe_load(user_data)
    unit = written_files(user_data)["/etc/systemd/system/csvc-agent.service"]["content"]
    commands = [" ".join(c) if isinstance(c, list) else c for c in document["runcmd"]]
    commands += [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    return commands


# -- the provider ----------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_create_waits_for_active_and_keeps_the_server_id(stub, store, providers):
    provider = make_provider(stub, store)
    providers.append(provider)
    row = yield provider.create_instance("project-a")
    server = stub.servers[row["server_id"]]
    assert stub._status(server)[0] == "ACTIVE"
    stored = yield store.get_instance(row["uuid"])
    assert stored["server_id"] == row["server_id"]
    assert (stored["provider"], stored["project_id"], stored["status"]) == ("nova", "project-a", "pending")
    assert stored["shared"] is False
    # Sized as its flavor (m1.small), asked of Nova once for every server.
    assert (stored["memory"], stored["cpus"]) == (2048, 1.0)
    assert (yield provider.size()) == (2048, 1.0)
    assert sum(1 for m, p, _ in stub.calls if m == "GET" and p.endswith("/flavors/2")) == 1
    # The request as Nova got it: the configured flavor, image, network, key.
    (body,) = [b for m, p, b in stub.calls if m == "POST" and p.endswith("/servers")]
    spec = body["server"]
    assert (spec["flavorRef"], spec["imageRef"], spec["networks"], spec["key_name"]) == (
        "2", IMAGES["ubuntu-24.04"], [{"uuid": NETWORK}], "ops"
    )
    # The user data starts the agent against the endpoint servers reach,
    # with this instance's enrollment token (only its hash is stored).
    script = stub.user_data(row["server_id"])
    assert script.startswith("#cloud-config\n")
    assert f"--connect {CONNECT}" in script and "--capacity 10" in script and "csvc-agent" in script
    token = token_of(script)
    assert hash_secret(token) == stored["enroll_token_hash"]
    # The token is in a file only root reads; no command line carries it.
    token_file = written_files(script)["/etc/csvc-agent/enroll-token"]
    assert (token_file["permissions"], token_file["owner"]) == ("0600", "root:root")
    lines = command_lines(script)
    assert any("--enroll-token-file /etc/csvc-agent/enroll-token" in line for line in lines)
    assert not any(token in line or "--enroll-token " in line or "ENROLL_TOKEN" in line for line in lines)
    assert script.count(token) == 1
    # No CA configured: nothing to enroll against.
    assert "/etc/csvc-agent/ca.pem" not in script and "--ca-cert" not in script
    # It was polled until ACTIVE: BUILD first.
    assert sum(1 for m, p, _ in stub.calls if m == "GET" and p.endswith(row["server_id"])) >= 2


@pytest_twisted.inlineCallbacks
def test_a_server_in_error_fails_the_create_with_novas_fault(stub, store, providers):
    provider = make_provider(stub, store, flavor="99")  # no host fits it
    providers.append(provider)
    with pytest.raises(NovaError, match="went to ERROR: No valid host was found") as caught:
        yield provider.create_instance("project-a")
    assert not isinstance(caught.value, NovaTimeout)
    # The failed server is deleted and its instance row is dead.
    assert stub.live() == []
    rows = yield store.list_instances()
    assert rows == []


@pytest_twisted.inlineCallbacks
def test_novas_refusals_are_reported_in_its_words(stub, store, providers):
    stub.max_servers = 1
    provider = make_provider(stub, store)
    providers.append(provider)
    yield provider.create_instance("project-a")
    with pytest.raises(NovaError, match="403: .*Quota exceeded for instances: Requested 1, but already used 1 of 1"):
        yield provider.create_instance("project-a")
    unknown = make_provider(stub, store, flavor="no-such-flavor")
    providers.append(unknown)
    # The flavor is looked up (for the instance's size) before any server.
    with pytest.raises(NovaError, match="404: .*Flavor no-such-flavor could not be found"):
        yield unknown.create_instance("project-a")
    assert len((yield store.list_instances())) == 1


@pytest_twisted.inlineCallbacks
def test_remove_deletes_the_server_and_waits_until_it_is_gone(stub, store, providers):
    provider = make_provider(stub, store)
    providers.append(provider)
    row = yield provider.create_instance("project-a")
    start = reactor.seconds()
    yield provider.remove_instance(row)
    # The delete takes delete_delay to finish; remove waited for the 404.
    assert reactor.seconds() - start >= stub.delete_delay
    assert stub.live() == []
    assert ("DELETE", f"/compute/v2.1/servers/{row['server_id']}", None) in stub.calls
    # Nova answers 404 for it now (the SDK blocks: off the reactor thread).
    compute = NovaCompute(connection_factory(settings(stub)))
    assert (yield threads.deferToThread(compute.server, row["server_id"])) is None


@pytest_twisted.inlineCallbacks
def test_waits_are_bounded(stub, store, providers):
    stub.build_delay = 3600
    provider = make_provider(stub, store, timeout=0.5)
    providers.append(provider)
    start = reactor.seconds()
    with pytest.raises(NovaTimeout, match="was not ACTIVE within 0.5 s \\(still BUILD\\)"):
        yield provider.create_instance("project-a")
    assert reactor.seconds() - start < 3
    # The server that never came up is deleted, not left behind.
    assert stub.live() == []

    stub.build_delay, stub.delete_delay = 0, 3600
    row = yield provider.create_instance("project-a")
    with pytest.raises(NovaTimeout, match="was not gone within 0.5 s"):
        yield provider.remove_instance(row)


# -- placement with Nova ---------------------------------------------------


class BootingHub(FakeAgentHub):
    """
    The fake hub, and a connected agent counts as registered (as the real
    hub's links do).
    """

    def when_registered(self, instance_uuid):
        if instance_uuid in self.connected:
            return succeed(None)
        return super().when_registered(instance_uuid)


def boot_agents(stub, store, hub):
    """
    What each server's agent does once it is up: enroll with the token in
    its user data (the store update and wake-up of a real registration).
    """

    def booted(server):
        script = base64.b64decode(server["user_data"]).decode()
        row = result_of(store.instance_by_token(token_of(script)))
        result_of(store.update_instance(row["uuid"], status="active", last_seen_at=None))
        hub.connected.add(row["uuid"])
        hub.notify_registered(row["uuid"])

    stub.on_active = lambda server: reactor.callLater(0, booted, server)


def container(i, project="project-a"):
    return dict(uuid=str(uuidlib.uuid4()), name=f"c{i}", project_id=project, image="csvc/busybox",
                command=["sleep", "300"], status="creating")


@pytest_twisted.inlineCallbacks
def test_one_hundred_containers_cost_ten_server_creates(stub, store, providers):
    provider = make_provider(stub, store, capacity=10)
    providers.append(provider)
    hub = BootingHub(store, Journal(store), reactor)
    boot_agents(stub, store, hub)
    placement = Placement(store, hub, provider, reactor, wait=30)
    # 100 creates at once: those that find no room share the servers on their way.
    results = yield DeferredList([placement.place(container(i)) for i in range(100)], consumeErrors=True)
    failures = [r.getErrorMessage() for ok, r in results if not ok]
    assert failures == []
    assert stub.creates() == placement.provider_calls == 10
    rows = yield store.list_instances(provider="nova")
    assert sorted(r["containers"] for r in rows) == [10] * 10
    assert all(r["project_id"] == "project-a" and r["server_id"] in stub.servers for r in rows)
    # One more overflows into an eleventh server.
    yield placement.place(container(100))
    assert stub.creates() == 11


@pytest_twisted.inlineCallbacks
def test_user_data_carries_the_agents_ca_and_enrollment(stub, store, providers, tmp_path):
    from csvc.providers.nova import agents_ca, check_settings
    from csvc.agents import tls as agenttls

    tls_dir = str(tmp_path / "tls")
    agenttls.init(tls_dir, ["cp.example"])
    settings = {"agents-tls-dir": tls_dir, "nova-agent-connect": "tls:cp.example:8781"}
    ca_pem = agents_ca(settings)
    with open(f"{tls_dir}/ca.pem") as f:
        assert ca_pem == f.read()
    assert check_settings(settings) is None
    assert "tls:HOST:PORT" in check_settings(dict(settings, **{"nova-agent-connect": CONNECT}))
    provider = make_provider(stub, store, connect="tls:cp.example:8781", ca_pem=ca_pem)
    providers.append(provider)
    row = yield provider.create_instance("project-a")
    script = stub.user_data(row["server_id"])
    files = written_files(script)
    assert files["/etc/csvc-agent/ca.pem"]["content"] == ca_pem
    assert files["/etc/csvc-agent/enroll-token"]["permissions"] == "0600"
    assert "PRIVATE KEY" not in script
    token = token_of(script)
    (agent,) = [line for line in command_lines(script) if "csvc-agent" in line and "ExecStart=" in line]
    assert "--connect tls:cp.example:8781" in agent
    assert "--ca-cert /etc/csvc-agent/ca.pem --state-dir /var/lib/csvc-agent" in agent
    assert "--enroll-token-file /etc/csvc-agent/enroll-token" in agent and token not in agent
    # Without the CA's key the control plane is no CA: nothing to carry.
    os.remove(f"{tls_dir}/ca.key")
    assert agents_ca(settings) is None


# -- static ----------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_static_creates_nothing_and_full_is_no_room(store):
    assert config.resolve({"provider": "static"})["provider"] == "static"
    hub = FakeAgentHub(store, Journal(store), reactor)
    row, _token = yield store.register_instance("host-1", 2)
    yield store.update_instance(row["uuid"], status="active")
    # --provider static: no provider for placement (csvc.server._wire_scheduler).
    placement = Placement(store, hub, None, reactor)
    yield placement.place(container(0))
    yield placement.place(container(1))
    with pytest.raises(NoRoom):  # the API answers 503
        yield placement.place(container(2))
    assert placement.provider_calls == 0
    assert [r["name"] for r in (yield store.list_instances())] == ["host-1"]


def test_nova_settings_are_checked():
    with pytest.raises(config.ConfigError, match="provider nova needs nova-flavor, nova-image"):
        config.resolve({"provider": "nova", "nova-cloud": "mycloud"})
    settings = config.resolve({"provider": "nova", "nova-cloud": "mycloud", "nova-flavor": "2", "nova-image": "i",
                               "nova-network": "n", "nova-agent-connect": CONNECT})
    assert settings["nova-timeout"] == 300.0
    with pytest.raises(config.ConfigError, match="nova-auth-url"):
        config.resolve({"provider": "nova", "nova-flavor": "2", "nova-image": "i", "nova-network": "n",
                        "nova-agent-connect": CONNECT})
