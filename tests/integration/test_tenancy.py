"""
Authentication and project isolation.
"""

import requests

from tests.integration.conftest import IMAGE


def test_versions_are_public(control_plane):
    response = requests.get(control_plane.base + "/", timeout=10)
    assert response.status_code == 200
    assert response.json()["versions"][0]["id"] == "v1"


def test_missing_headers_are_401(control_plane, alpha):
    token = alpha.session.headers["X-Auth-Token"]
    for headers in ({}, {"X-Auth-Token": token}, {"X-Auth-Project-Id": "alpha"}):
        response = requests.get(control_plane.base + "/v1/containers", headers=headers, timeout=10)
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == 401 and error["title"] == "Unauthorized"
        assert "X-Auth-" in error["message"]


def test_wrong_token_or_project_is_401(control_plane, alpha):
    token = alpha.session.headers["X-Auth-Token"]
    for headers in (
        {"X-Auth-Token": "not-a-token", "X-Auth-Project-Id": "alpha"},
        {"X-Auth-Token": token, "X-Auth-Project-Id": "beta"},
    ):
        response = requests.get(control_plane.base + "/v1/containers", headers=headers, timeout=10)
        assert response.status_code == 401


def test_another_projects_container_is_404(alpha, beta):
    container = alpha.create(command=["sh", "-c", "echo secret"], run=True, name="private")
    uuid = container["uuid"]
    for method, path in [
        ("GET", f"/v1/containers/{uuid}"),
        ("GET", f"/v1/containers/{uuid}/logs"),
        ("POST", f"/v1/containers/{uuid}/wait"),
        ("POST", f"/v1/containers/{uuid}/stop"),
        ("POST", f"/v1/containers/{uuid}/kill"),
        ("DELETE", f"/v1/containers/{uuid}?force=true"),
        ("GET", "/v1/containers/private"),
    ]:
        response = beta.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == 404
    assert [c["uuid"] for c in beta.get("/v1/containers").json()["containers"]] == []
    assert uuid in [c["uuid"] for c in alpha.get("/v1/containers").json()["containers"]]
    # both projects may use the same name
    theirs = beta.post("/v1/containers", json={"image": IMAGE, "name": "private", "command": ["true"]})
    assert theirs.status_code == 202, theirs.text


def test_instances_map_is_admin_only(control_plane, alpha):
    assert alpha.get("/v1/instances").status_code == 403
    assert alpha.get("/v1/containers", params={"all_projects": "true"}).status_code == 403
    response = control_plane.admin.get("/v1/instances")
    assert response.status_code == 200
    (instance,) = response.json()["instances"]
    assert instance["status"] == "active"
    assert instance["provider"] == "local"
    assert instance["capacity"] == control_plane.capacity
    assert instance["last_seen_at"] is not None
    container = alpha.create(command=["true"])
    assert container["instance"] == instance["uuid"]


def test_container_output_never_reaches_the_service_log(control_plane, alpha):
    marker = "secret-output-7f3a9c"
    container, _ = alpha.run(["sh", "-c", f"echo {marker}; echo {marker} >&2; exit 1"])
    assert marker.encode() in alpha.logs(container["uuid"])
    running = alpha.create(command=["sleep", "30"], run=True)
    alpha.wait_status(running["uuid"], {"running"})
    executed = alpha.post(f"/v1/containers/{running['uuid']}/exec", json={"command": ["echo", marker]})
    assert marker in executed.json()["output"]
    failing = alpha.post(f"/v1/containers/{running['uuid']}/exec", json={"command": ["sh", "-c", f"echo {marker}; exit 3"]})
    assert failing.json()["exit_code"] == 3
    with open(control_plane.log_path, "rb") as log:
        assert marker.encode() not in log.read()
