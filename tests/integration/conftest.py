"""
A real control plane (``twistd csvc``) with its local agent, against the real
Docker engine, on free loopback ports in a temporary data dir.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
IMAGE = "csvc/busybox"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(process, timeout=15):
    """
    Stop a process started in a session of its own, and all of its group:
    SIGTERM, then SIGKILL past ``timeout`` seconds.
    """
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)


def engine_available():
    try:
        import docker

        docker.from_env(timeout=5).ping()
        return True
    except Exception:
        return False


class Client:
    """
    A tenant of the running service: requests with its headers.
    """

    def __init__(self, base, token, project):
        self.base = base
        self.project = project
        self.session = requests.Session()
        self.session.headers.update({"X-Auth-Token": token, "X-Auth-Project-Id": project})

    def request(self, method, path, **kwargs):
        kwargs.setdefault("timeout", 60)
        return self.session.request(method, self.base + path, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def create(self, **spec):
        spec.setdefault("image", IMAGE)
        response = self.post("/v1/containers", json=spec)
        assert response.status_code == 202, response.text
        return response.json()

    def run(self, command, **spec):
        """
        Create and start; wait for the exit; return (container, exit).
        """
        container = self.create(command=command, run=True, **spec)
        waited = self.post(f"/v1/containers/{container['uuid']}/wait")
        assert waited.status_code == 200, waited.text
        return container, waited.json()

    def logs(self, uuid, **params):
        response = self.get(f"/v1/containers/{uuid}/logs", params=params)
        assert response.status_code == 200, response.text
        return response.content

    def show(self, uuid):
        response = self.get(f"/v1/containers/{uuid}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_status(self, uuid, statuses, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            container = self.show(uuid)
            if container["status"] in statuses:
                return container
            if time.monotonic() > deadline:
                raise AssertionError(f"{uuid} still {container['status']} after {timeout}s")
            time.sleep(0.05)


class ControlPlane:
    def __init__(self, tmp, instances=1, capacity=10, database=None, extra_args=()):
        self.data_dir = str(tmp)
        self.extra_args = list(extra_args)
        self.database = database
        self.api_port = free_port()
        self.agents_port = free_port()
        self.base = f"http://127.0.0.1:{self.api_port}"
        self.log_path = os.path.join(self.data_dir, "csvc.log")
        self.instances = instances
        self.capacity = capacity
        self.process = None

    def _store_options(self):
        options = ["--data-dir", self.data_dir]
        if self.database:
            options += ["--database", self.database]
        return options

    def manage(self, *args):
        result = subprocess.run(
            [os.path.join(BIN, "csvc-manage"), *self._store_options(), *args],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip().splitlines()[-1]

    def token(self, project, admin=False):
        args = ["token", "create", "--project", project]
        if admin:
            args.append("--admin")
        return self.manage(*args)

    def client(self, project, admin=False):
        return Client(self.base, self.token(project, admin), project)

    def start(self):
        self.log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                os.path.join(BIN, "twistd"),
                "--nodaemon",
                "--pidfile=",
                "csvc",
                *self._store_options(),
                "--api",
                f"tcp:{self.api_port}:interface=127.0.0.1",
                "--agents",
                f"tcp:{self.agents_port}:interface=127.0.0.1",
                "--instances",
                str(self.instances),
                "--instance-capacity",
                str(self.capacity),
                "--heartbeat-interval",
                "1",
                *self.extra_args,
            ],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )

    def wait_active(self, admin, count=None, timeout=60):
        count = self.instances if count is None else count
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the service exited: {self.tail_log()}")
            try:
                response = admin.get("/v1/instances", timeout=5)
                if response.status_code == 200:
                    active = [i for i in response.json()["instances"] if i["status"] == "active"]
                    if len(active) >= count:
                        return active
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"no active instance after {timeout}s: {self.tail_log()}")

    def agent_pids(self):
        out = subprocess.run(
            ["pgrep", "-f", f"csvc-agent --connect tcp:127.0.0.1:{self.agents_port}"],
            capture_output=True,
            text=True,
        ).stdout
        return [int(p) for p in out.split()]

    def tail_log(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.process is None:
            return
        stop_group(self.process)
        for pid in self.agent_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log_file.close()
        self.process = None

    def close(self):
        """
        Stop for good (``stop`` alone may be followed by a restart): the
        service, its agents, and on the engine every container this plane's
        store knows (``csvc-<uuid>``), which tests that do not delete
        theirs left behind, three more on the shared engine per suite run.
        """
        self.stop()
        import docker
        from sqlalchemy import create_engine, text

        url = self.database or f"sqlite:///{os.path.join(self.data_dir, 'csvc.sqlite')}"
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                uuids = [row[0] for row in conn.execute(text("SELECT uuid FROM containers"))]
        except Exception:
            # No store (the plane never started) or a database already dropped.
            return
        finally:
            engine.dispose()
        client = docker.from_env()
        try:
            for uuid in uuids:
                try:
                    client.api.remove_container(f"csvc-{uuid}", force=True)
                except docker.errors.NotFound:
                    pass
        finally:
            client.close()


def remove_project_containers(project):
    import docker

    client = docker.from_env()
    for c in client.containers.list(all=True, filters={"label": f"csvc.project={project}"}):
        c.remove(force=True)


@contextlib.contextmanager
def running_plane(tmp, **kwargs):
    """
    A control plane of its own (``ControlPlane(tmp, **kwargs)``), started
    and with its local instance active, closed afterwards; ``admin`` is an
    admin client of it.
    """
    plane = ControlPlane(tmp, **kwargs)
    plane.admin = plane.client("admin-project", admin=True)
    plane.start()
    try:
        plane.wait_active(plane.admin)
        yield plane
    finally:
        plane.close()


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    if not engine_available():
        pytest.fail("no Docker engine answers on /var/run/docker.sock: run `make bootstrap` first")
    # Webhook receivers of the tests listen on loopback, which the service
    # refuses to notify unless told otherwise.
    with running_plane(
        tmp_path_factory.mktemp("csvc"), capacity=50, extra_args=["--webhook-allow-internal", "127.0.0.0/8"]
    ) as plane:
        yield plane


@pytest.fixture(scope="session")
def alpha(control_plane):
    return control_plane.client("alpha")


@pytest.fixture(scope="session")
def beta(control_plane):
    return control_plane.client("beta")


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


__all__ = ["Client", "ControlPlane", "IMAGE", "json"]


@pytest.fixture(autouse=True)
def _clean_projects(request):
    """
    Delete (force) every container the tenants left behind after each test.
    """
    yield
    for name in ("alpha", "beta"):
        if name in request.fixturenames:
            client = request.getfixturevalue(name)
            listed = client.get("/v1/containers")
            if listed.status_code != 200:
                continue
            for c in listed.json()["containers"]:
                client.delete(f"/v1/containers/{c['uuid']}", params={"force": "true"})


def docker_sdk(control_plane, tenant):
    """
    The docker SDK pointed at csvc, with ``tenant``'s credentials.
    """
    import docker

    client = docker.DockerClient(base_url=control_plane.base.replace("http://", "tcp://"), timeout=60)
    client.api.headers.update({k: v for k, v in tenant.session.headers.items() if k.startswith("X-Auth")})
    return client


@pytest.fixture(scope="module")
def sdk(control_plane, alpha):
    """
    The docker SDK as project alpha.
    """
    client = docker_sdk(control_plane, alpha)
    yield client
    client.close()


@pytest.fixture(scope="module")
def other(control_plane, beta):
    """
    The docker SDK as project beta: another project.
    """
    client = docker_sdk(control_plane, beta)
    yield client
    client.close()


# -- PostgreSQL ---------------------------------------------------------------

#: The bootstrap's PostgreSQL (scripts/bootstrap.sh); CSVC_TEST_POSTGRES
#: overrides it.
POSTGRES_ADMIN_URL = os.environ.get("CSVC_TEST_POSTGRES", "postgresql://csvc:csvc@127.0.0.1:55432/csvc")


@pytest.fixture
def database():
    """
    The URL of a new, empty PostgreSQL database, dropped afterwards.
    """
    import uuid

    import sqlalchemy as sa

    name = "csvc_test_" + uuid.uuid4().hex[:12]
    try:
        admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable (run `make bootstrap`): {exc}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
