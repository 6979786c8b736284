"""
``GET /events`` on csvc: a project's container events as they happen,
through the docker SDK, ``docker events`` and ``docker stats`` (which
follows the events to see containers come and go).
"""

import json
import os
import uuid

import pexpect
import pytest

from tests.integration.conftest import docker_sdk as _client
from tests.integration.test_docker_more import IMAGE, _running

DOCKER = "/usr/bin/docker"


def _tenant(control_plane, prefix):
    tenant = control_plane.client(f"{prefix}-{uuid.uuid4().hex[:8]}")
    client = _client(control_plane, tenant)
    client.tenant = tenant
    return client


@pytest.fixture
def sdk(control_plane):
    client = _tenant(control_plane, "ev")
    yield client
    for c in client.tenant.get("/v1/containers").json()["containers"]:
        client.tenant.delete(f"/v1/containers/{c['uuid']}", params={"force": "true"})
    client.close()


@pytest.fixture
def other(control_plane):
    client = _tenant(control_plane, "ev-other")
    yield client
    for c in client.tenant.get("/v1/containers").json()["containers"]:
        client.tenant.delete(f"/v1/containers/{c['uuid']}", params={"force": "true"})
    client.close()


@pytest.fixture
def cli_env(control_plane, sdk, tmp_path):
    headers = {k: v for k, v in sdk.tenant.session.headers.items() if k.startswith("X-Auth")}
    (tmp_path / "config.json").write_text(json.dumps({"HttpHeaders": headers}))
    return dict(os.environ, DOCKER_HOST=control_plane.base.replace("http://", "tcp://"), DOCKER_CONFIG=str(tmp_path))


def test_the_projects_container_events_as_they_happen(sdk, other):
    stream = sdk.events(decode=True, filters={"type": "container"})
    try:
        theirs = other.containers.run(IMAGE, ["true"], detach=True)
        theirs.wait()
        ours = sdk.containers.run(IMAGE, ["sh", "-c", "exit 3"], detach=True, name=f"ev-{uuid.uuid4().hex[:6]}")
        ours.wait()
        ours.remove()
        seen = []
        for event in stream:
            seen.append(event)
            if event["Action"] == "destroy" and event["id"] == ours.id:
                break
    finally:
        stream.close()
    assert all(event["id"] == ours.id for event in seen), "another project's event was shown"
    assert [event["Action"] for event in seen] == ["create", "start", "die", "destroy"]
    die = seen[2]
    assert die["Actor"]["Attributes"]["exitCode"] == "3"
    assert die["Actor"]["Attributes"]["name"] == ours.name
    assert die["from"] == IMAGE + ":latest" and die["Type"] == "container"


def test_event_filters(sdk):
    first = sdk.containers.create(IMAGE, ["true"])
    stream = sdk.events(decode=True, filters={"event": "start", "container": first.id[:12]})
    try:
        sdk.containers.run(IMAGE, ["true"], detach=True).wait()
        first.start()
        event = next(stream)
    finally:
        stream.close()
    assert (event["Action"], event["id"]) == ("start", first.id)
    bad = sdk.api._get(sdk.api._url("/events"), params={"filters": json.dumps({"network": ["x"]})})
    assert bad.status_code == 400
    assert "invalid filter 'network'" in bad.json()["message"]


def test_docker_events_and_stats_of_all_containers(sdk, cli_env):
    running = _running(sdk.containers.run(IMAGE, ["sleep", "300"], detach=True, name="ev-first"))
    events = pexpect.spawn(DOCKER, ["events", "--format", "{{.Action}} {{.Actor.Attributes.name}}"], env=cli_env,
                           timeout=30)
    stats = pexpect.spawn(DOCKER, ["stats", "--format", "{{.Name}} mem={{.MemUsage}}"], env=cli_env, timeout=30)
    try:
        stats.expect(r"ev-first mem=[1-9]")
        # A container started now joins the table: the CLI saw its start event.
        _running(sdk.containers.run(IMAGE, ["sleep", "300"], detach=True, name="ev-second"))
        events.expect("start ev-second")
        stats.expect(r"ev-second mem=[1-9]")
        running.kill()
        events.expect("die ev-first")
    finally:
        stats.terminate(force=True)
        events.terminate(force=True)
