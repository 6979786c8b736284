"""
Agents are who their enrollment token says, report only on their own
instance's containers, and can dial over TLS; a wrong or revoked token, an
unregistered link, a forged report and an untrusted CA are all refused.

Agents here are started by hand (``twistd csvc-agent``), as an operator
would on another host, against a running control plane.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import BIN, ControlPlane, ROOT, engine_available, running_plane, stop_group


class HandAgent:
    """
    ``twistd -n csvc-agent`` started by hand, its log in a file.
    """

    def __init__(self, log_dir, name, connect, token):
        self.name = name
        self.connect = connect
        self.token = token
        self.log_path = os.path.join(log_dir, f"agent-{name}.log")
        self.process = None

    def start(self):
        env = {k: v for k, v in os.environ.items() if k != "CSVC_ENROLL_TOKEN"}
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [os.path.join(BIN, "twistd"), "-n", "--pidfile=", "csvc-agent", "--connect", self.connect,
             "--enroll-token", self.token, "--hostname", self.name, "--capacity", "5"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT, env=env,
        )
        return self

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.process is None:
            return
        stop_group(self.process)
        self._log.close()
        self.process = None


def wait_for(predicate, what, timeout=30, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(interval)


def service_log(plane):
    with open(plane.log_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def instances(plane):
    response = plane.admin.get("/v1/instances", timeout=10)
    assert response.status_code == 200, response.text
    return {i["name"]: i for i in response.json()["instances"]}


def status_of(plane, name):
    return instances(plane).get(name, {}).get("status")


def probe(endpoint, steps):
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.agent_probe", endpoint, json.dumps(steps)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def agents(tmp_path):
    started = []

    def start(name, connect, token):
        agent = HandAgent(str(tmp_path), name, connect, token).start()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    if not engine_available():
        pytest.fail("no Docker engine answers on /var/run/docker.sock: run `make bootstrap` first")
    with running_plane(tmp_path_factory.mktemp("csvc-agents"), instances=1, capacity=10) as plane:
        yield plane


def test_a_bad_enrollment_token_cannot_register_or_send_output(plane, agents):
    before = {n for n, i in instances(plane).items() if i["status"] == "active"}
    refusals = service_log(plane).count("refused: unknown or revoked enrollment token")
    agent = agents("impostor", f"tcp:127.0.0.1:{plane.agents_port}", "BAD")
    wait_for(
        lambda: service_log(plane).count("refused: unknown or revoked enrollment token") > refusals,
        "the service logs the refusal",
    )
    wait_for(lambda: "refused this agent's enrollment token" in agent.log(), "the agent is told")
    assert agent.process.poll() is None  # it keeps retrying, and keeps being refused
    listed = instances(plane)
    assert {n for n, i in listed.items() if i["status"] == "active"} == before
    assert not [i for i in listed.values() if i["hostname"] == "impostor"]

    # The same token on a raw link: refused, and so is any output after it.
    container, exited = plane.admin.run(["echo", "genuine"], instance="local-1")
    assert exited["exit_code"] == 0
    results = probe(
        f"tcp:127.0.0.1:{plane.agents_port}",
        [{"op": "register", "token": "BAD"},
         {"op": "output", "uuid": container["uuid"], "seq": 100, "data": "forged by a bad token"}],
    )
    assert [r.get("error") for r in results] == ["NotEnrolled", "NotEnrolled"], results
    logs = plane.admin.logs(container["uuid"])
    assert b"genuine" in logs and b"forged" not in logs


def test_b_unregistered_and_foreign_reports_are_refused(plane):
    token = plane.manage("instance", "register", "probe-a", "--capacity", "1")
    container, exited = plane.admin.run(["echo", "on local-1"], instance="local-1")
    assert exited["exit_code"] == 0
    endpoint = f"tcp:127.0.0.1:{plane.agents_port}"

    # Output before registering.
    results = probe(endpoint, [
        {"op": "output", "uuid": container["uuid"], "seq": 100, "data": "forged unregistered"},
        {"op": "heartbeat"},
    ])
    assert [r.get("error") for r in results] == ["NotEnrolled", "NotEnrolled"], results
    assert "refused: it has not registered" in service_log(plane)

    # Registered as instance probe-a, output for a container of local-1.
    results = probe(endpoint, [
        {"op": "register", "token": token},
        {"op": "output", "uuid": container["uuid"], "seq": 100, "data": "forged by probe-a"},
    ])
    assert "ok" in results[0], results
    assert results[0]["ok"]["instance_uuid"] == instances(plane)["probe-a"]["uuid"]
    assert results[1].get("error") == "OutputRefused", results
    assert f"container {container['uuid']} is not on its instance" in service_log(plane)
    assert b"forged" not in plane.admin.logs(container["uuid"])


def test_c_registered_host_is_active_until_revoked(plane, agents):
    token = plane.manage("instance", "register", "hand-1", "--capacity", "5")
    assert status_of(plane, "hand-1") == "pending"
    connect = f"tcp:127.0.0.1:{plane.agents_port}"
    agent = agents("hand-1", connect, token)
    wait_for(lambda: status_of(plane, "hand-1") == "active", "hand-1 becomes active")
    listed = plane.manage("instance", "list")  # the last line: the newest instance
    assert listed.split()[:4] == ["hand-1", instances(plane)["hand-1"]["uuid"], "static", "active"]

    # Revoked while connected: dropped at its next heartbeat, and the
    # reconnecting agent is refused.
    refusals = service_log(plane).count("refused: unknown or revoked enrollment token")
    plane.manage("instance", "revoke", "hand-1")
    wait_for(lambda: "instance hand-1 is revoked: dropping its agent" in service_log(plane), "the agent is dropped")
    wait_for(
        lambda: service_log(plane).count("refused: unknown or revoked enrollment token") > refusals,
        "the reconnecting agent is refused",
    )
    assert status_of(plane, "hand-1") == "revoked"

    # Restarted with the same token: refused still.
    agent.stop()
    refusals = service_log(plane).count("refused: unknown or revoked enrollment token")
    agent = agents("hand-1", connect, token)
    wait_for(
        lambda: service_log(plane).count("refused: unknown or revoked enrollment token") > refusals,
        "the restarted agent is refused",
    )
    wait_for(lambda: "refused this agent's enrollment token" in agent.log(), "the agent is told")
    assert status_of(plane, "hand-1") == "revoked"
    response = plane.admin.post("/v1/containers", json={"image": "csvc/busybox", "instance": "hand-1"})
    assert response.status_code != 202, response.text


def test_d_agents_over_tls(tmp_path, agents):
    if not engine_available():
        pytest.fail("no Docker engine answers on /var/run/docker.sock: run `make bootstrap` first")
    tls_dir = str(tmp_path / "tls")
    other_dir = str(tmp_path / "other-ca")
    plane = ControlPlane(tmp_path / "data", instances=1, extra_args=["--agents-tls-dir", tls_dir])
    plane.manage("tls", "init", "--dir", tls_dir)
    plane.manage("tls", "agent", "--dir", tls_dir, "tls-host")
    plane.manage("tls", "init", "--dir", other_dir)
    plane.manage("tls", "agent", "--dir", other_dir, "tls-host")
    assert os.stat(os.path.join(tls_dir, "ca.key")).st_mode & 0o077 == 0
    assert os.stat(os.path.join(tls_dir, "agent-tls-host.key")).st_mode & 0o077 == 0
    plane.admin = plane.client("admin-project", admin=True)
    token = plane.manage("instance", "register", "tls-host", "--capacity", "5")
    untrusting = plane.manage("instance", "register", "tls-untrusting", "--capacity", "5")
    plane.start()
    try:
        # The local provider's agent dials over TLS too.
        plane.wait_active(plane.admin, count=1)

        def tls(directory):
            return (f"tls:127.0.0.1:{plane.agents_port}:trustRoots={directory}"
                    f":certificate={directory}/agent-tls-host.crt:privateKey={directory}/agent-tls-host.key")

        # Plain TCP on the TLS port gets nowhere.
        plain = agents("tls-plain", f"tcp:127.0.0.1:{plane.agents_port}", untrusting)

        agents("tls-host", tls(tls_dir), token)
        wait_for(lambda: status_of(plane, "tls-host") == "active", "tls-host becomes active")
        container, exited = plane.admin.run(["echo", "over tls"], instance="tls-host")
        assert exited["exit_code"] == 0
        assert container["instance"] == instances(plane)["tls-host"]["uuid"]
        assert plane.admin.logs(container["uuid"]) == b"over tls\n"

        # Trusting another CA (and presenting its certificate): no connection.
        other = agents("tls-untrusting", tls(other_dir), untrusting)
        wait_for(lambda: "certificate verify failed" in other.log(), "the agent fails to verify the service",
                 timeout=20)
        # Trusting the service but presenting no client certificate: the
        # control plane holds the CA's key, so the handshake lets it in to
        # enroll, and nothing else: a registration by token is refused.
        anonymous = agents("tls-anonymous", f"tls:127.0.0.1:{plane.agents_port}:trustRoots={tls_dir}", untrusting)
        wait_for(lambda: "agents enroll for a certificate" in anonymous.log(), "the service refuses the token alone",
                 timeout=20)
        wait_for(lambda: "registration failed" in plain.log(), "plain TCP gets nowhere", timeout=20)
        assert all(a.process.poll() is None for a in (plain, other, anonymous))
        assert status_of(plane, "tls-untrusting") == "pending"
        assert "instance tls-untrusting registered" not in service_log(plane)
        plane.admin.delete(f"/v1/containers/{container['uuid']}", params={"force": "true"})
    finally:
        plane.close()
