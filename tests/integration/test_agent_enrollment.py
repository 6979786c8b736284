"""
Issue 18, point 8, end to end: a real ``twistd csvc-agent`` against a real
control plane whose ``--agents-tls-dir`` holds the CA's key.  The agent
reads its one-time token from a file, verifies the control plane with
ca.pem, enrolls for a certificate, registers by it; restarted without any
token it comes back by its certificate; the token is refused from then on.
"""

import os
import subprocess

import pytest

from tests.integration.conftest import BIN, ControlPlane, ROOT, engine_available, stop_group
from tests.integration.test_agents_security import service_log, status_of, wait_for


class EnrollingAgent:
    def __init__(self, log_path, name, port, ca, state_dir, token_file):
        self.log_path = log_path
        self.args = [
            os.path.join(BIN, "twistd"), "-n", "--pidfile=", "csvc-agent",
            "--connect", f"tls:127.0.0.1:{port}", "--ca-cert", ca, "--state-dir", state_dir,
            "--enroll-token-file", token_file, "--hostname", name, "--capacity", "5",
        ]
        self.process = None

    def start(self):
        env = {k: v for k, v in os.environ.items() if k != "CSVC_ENROLL_TOKEN"}
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True, cwd=ROOT, env=env)
        return self

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def cmdline(self):
        with open(f"/proc/{self.process.pid}/cmdline", "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.process is None:
            return
        stop_group(self.process)
        self._log.close()
        self.process = None


def test_an_agent_enrolls_once_and_comes_back_by_its_certificate(tmp_path):
    if not engine_available():
        pytest.fail("no Docker engine answers on /var/run/docker.sock: run `make bootstrap` first")
    tls_dir = str(tmp_path / "tls")
    plane = ControlPlane(tmp_path / "data", instances=0, extra_args=["--agents-tls-dir", tls_dir])
    plane.manage("tls", "init", "--dir", tls_dir)
    plane.admin = plane.client("admin-project", admin=True)
    token = plane.manage("instance", "register", "enroll-host", "--capacity", "5")
    token_file = tmp_path / "enroll-token"
    token_file.write_text(token + "\n")
    os.chmod(token_file, 0o600)
    state = str(tmp_path / "state")
    ca = os.path.join(tls_dir, "ca.pem")
    agents = []

    def agent(name, state_dir, token_path):
        started = EnrollingAgent(str(tmp_path / f"agent-{name}-{len(agents)}.log"), name, plane.agents_port, ca,
                                 state_dir, str(token_path)).start()
        agents.append(started)
        return started

    plane.start()
    try:
        plane.wait_active(plane.admin, count=0)
        first = agent("enroll-host", state, token_file)
        wait_for(lambda: status_of(plane, "enroll-host") == "active", "the agent enrolls and registers", timeout=60)
        # The token was on no command line, and its file is gone once used.
        assert token not in first.cmdline()
        assert not token_file.exists()
        assert os.stat(os.path.join(state, "agent.key")).st_mode & 0o777 == 0o600
        assert os.path.exists(os.path.join(state, "agent.crt"))
        assert "enrolled as instance" in first.log()
        log = service_log(plane)
        assert "instance enroll-host enrolled from" in log
        assert token not in log
        container, exited = plane.admin.run(["echo", "enrolled"], instance="enroll-host")
        assert exited["exit_code"] == 0
        assert plane.admin.logs(container["uuid"]) == b"enrolled\n"

        # Restarted with no token at all: back by its certificate.
        first.stop()
        wait_for(lambda: status_of(plane, "enroll-host") == "down", "the instance is down", timeout=30)
        agent("enroll-host", state, tmp_path / "no-token-file")
        wait_for(lambda: status_of(plane, "enroll-host") == "active", "the agent comes back by its certificate",
                 timeout=60)
        assert service_log(plane).count("instance enroll-host enrolled from") == 1

        # The token again, from another state directory (no certificate): refused and logged.
        stolen = tmp_path / "stolen-token"
        stolen.write_text(token)
        thief = agent("thief", str(tmp_path / "thief-state"), stolen)
        wait_for(lambda: "refused this agent's enrollment token" in thief.log(), "the thief is refused", timeout=30)
        assert "this enrollment token was used already" in thief.log()
        assert "the enrollment token of instance enroll-host was used already" in service_log(plane)
        assert not os.path.exists(os.path.join(str(tmp_path / "thief-state"), "agent.crt"))
        assert status_of(plane, "enroll-host") == "active"
        plane.admin.delete(f"/v1/containers/{container['uuid']}", params={"force": "true"})
    finally:
        for started in agents:
            started.stop()
        plane.close()
