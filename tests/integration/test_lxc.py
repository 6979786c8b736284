"""
The core container behaviours through the service, on an agent driving LXC
(``csvc-agent --engine lxc``): the same checks as ``test_containers.py``.
"""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from csvc.agent import lxc_runner
from tests.integration.conftest import BIN, ROOT, ControlPlane
from tests.integration import test_attach as attach_suite
from tests.integration.test_attach import collect, connect

INSTANCE = "lxc-1"


def lxc_available():
    return shutil.which("lxc-execute") is not None and os.geteuid() == 0


@pytest.fixture(scope="module")
def lxc_plane(tmp_path_factory):
    if not lxc_available():
        pytest.fail("LXC is not installed (apt-get install lxc) or the tests do not run as root")
    tmp = tmp_path_factory.mktemp("csvc-lxc")
    plane = ControlPlane(tmp, instances=0)
    plane.admin = plane.client("admin-project", admin=True)
    token = plane.manage("instance", "register", INSTANCE)
    plane.start()
    lxc_path = str(tmp / "lxc")
    log = open(tmp / "agent.log", "ab")

    def start_agent():
        plane.agent = subprocess.Popen(
            [
                os.path.join(BIN, "twistd"), "-n", "--pidfile=", "csvc-agent",
                "--connect", f"tcp:127.0.0.1:{plane.agents_port}",
                "--engine", "lxc", "--lxc-path", lxc_path,
                "--enroll-token", token, "--capacity", "5", "--hostname", INSTANCE,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )

    plane.start_agent = start_agent
    start_agent()
    try:
        plane.wait_active(plane.admin, count=1)
        yield plane
    finally:
        agent = plane.agent
        if agent.poll() is None:
            os.killpg(agent.pid, signal.SIGTERM)
            try:
                agent.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(agent.pid, signal.SIGKILL)
                agent.wait()
        log.close()
        plane.close()
        if os.path.isdir(lxc_path):
            for name in os.listdir(lxc_path):
                subprocess.run(["lxc-stop", "-k", "-P", lxc_path, "-n", name], capture_output=True)
                subprocess.run(["lxc-destroy", "-P", lxc_path, "-n", name], capture_output=True)


class OnLxc:
    """
    A tenant whose containers are placed on the LXC instance.
    """

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def create(self, **spec):
        spec.setdefault("instance", INSTANCE)
        return self._client.create(**spec)

    def run(self, command, **spec):
        container = self.create(command=command, run=True, **spec)
        waited = self._client.post(f"/v1/containers/{container['uuid']}/wait")
        assert waited.status_code == 200, waited.text
        return container, waited.json()


@pytest.fixture
def tenant(lxc_plane):
    client = OnLxc(lxc_plane.client("gamma"))
    yield client
    for c in client.get("/v1/containers").json()["containers"]:
        client.delete(f"/v1/containers/{c['uuid']}", params={"force": "true"})


def test_the_instance_runs_lxc(lxc_plane):
    [instance] = [i for i in lxc_plane.admin.get("/v1/instances").json()["instances"] if i["name"] == INSTANCE]
    assert instance["status"] == "active"
    assert instance.get("engine", "lxc") == "lxc"


def test_stop_then_start_again_keeps_all_output(tenant):
    container = tenant.create(command=["sh", "-c", "echo run; exec sleep 300"], run=True)
    uuid = container["uuid"]
    tenant.wait_status(uuid, {"running"})
    stopped = tenant.post(f"/v1/containers/{uuid}/stop", params={"timeout": "1"})
    assert stopped.status_code == 202, stopped.text
    assert stopped.json()["status"] == "exited"
    # Not PID 1 under LXC's init: sleep dies of the TERM (Docker: 137).
    assert stopped.json()["exit_code"] in (137, 143)
    assert tenant.post(f"/v1/containers/{uuid}/start").status_code == 202
    tenant.wait_status(uuid, {"running"})
    deadline = time.monotonic() + 10
    while tenant.logs(uuid) != b"run\nrun\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tenant.logs(uuid) == b"run\nrun\n"


def test_delete(tenant, lxc_plane):
    container = tenant.create(command=["sleep", "300"], run=True)
    uuid = container["uuid"]
    tenant.wait_status(uuid, {"running"})
    lxc_path = os.path.join(str(lxc_plane.data_dir), "lxc")
    # The engine's record names the instance it was made for (orphans).
    with open(os.path.join(lxc_path, f"csvc-{uuid}", lxc_runner.META)) as f:
        assert json.load(f)["instance"] == container["instance"]
    refused = tenant.delete(f"/v1/containers/{uuid}")
    assert refused.status_code == 409
    assert tenant.delete(f"/v1/containers/{uuid}", params={"force": "true"}).status_code == 204
    assert tenant.get(f"/v1/containers/{uuid}").status_code == 404
    assert not os.path.exists(os.path.join(lxc_path, f"csvc-{uuid}"))


def test_tty_is_refused_naming_it(tenant):
    response = tenant.post("/v1/containers", json={"image": "csvc/busybox", "command": ["true"], "tty": True,
                                                   "instance": INSTANCE})
    assert response.status_code == 400, response.text
    assert "tty" in response.json()["error"]["message"]


def test_a_run_outlives_the_agent_and_its_output_is_recovered(tenant, lxc_plane):
    script = "echo before; sleep 3; echo after >&2; exit 6"
    container = tenant.create(command=["sh", "-c", script], run=True)
    uuid = container["uuid"]
    tenant.wait_status(uuid, {"running"})
    deadline = time.monotonic() + 10
    while b"before" not in tenant.logs(uuid) and time.monotonic() < deadline:
        time.sleep(0.05)
    # The agent dies without a word; the container keeps running.
    os.killpg(lxc_plane.agent.pid, signal.SIGKILL)
    lxc_plane.agent.wait()
    lxc_plane.start_agent()
    waited = tenant.post(f"/v1/containers/{uuid}/wait")
    assert waited.json()["exit_code"] == 6
    assert tenant.logs(uuid) == b"before\nafter\n"


def test_attaching_before_start_misses_nothing(tenant):
    container = tenant.create(command=["sh", "-c", "echo first; echo second >&2; exit 2"])
    ws = connect(tenant, container["uuid"])
    time.sleep(0.2)
    assert tenant.post(f"/v1/containers/{container['uuid']}/start").status_code == 202
    out, err, statuses, code = collect(ws)
    assert (out, err) == (b"first\n", b"second\n")
    assert statuses[-1] == {"exit_code": 2} and code == 1000


def test_stdin_eof_reaches_the_process_and_output_continues(tenant):
    # The Docker suite's own test, on a container placed on the LXC instance.
    attach_suite.test_stdin_eof_reaches_the_process_and_output_continues(tenant)


# -- the Docker engine's behavioural suite, run as it is against LXC ---------

from tests.integration import test_containers as docker_suite  # noqa: E402

#: Tests of test_containers.py that speak only the API (no docker SDK), run
#: unchanged with a tenant whose containers land on the LXC instance.
SHARED = [
    "test_environment_and_command_reach_the_process",
    "test_stdout_and_stderr_come_back_in_order",
    "test_binary_output_comes_back_byte_for_byte",
    "test_kill_gives_137",
    "test_kill_with_a_signal_the_process_handles",
    "test_logs_follow_streams_until_exit",
    "test_logs_tail_and_since",
    "test_names_work_where_uuids_do",
    "test_wait_on_a_created_container_answers_after_it_runs",
    "test_bad_state_is_409_naming_both",
]


@pytest.mark.parametrize("name", SHARED)
def test_the_docker_suite_on_lxc(tenant, name):
    getattr(docker_suite, name)(tenant)


@pytest.mark.parametrize("code", [0, 3])
def test_the_docker_suites_exit_codes_on_lxc(tenant, code):
    docker_suite.test_exit_codes(tenant, code)
