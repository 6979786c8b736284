"""
Who may call the API, and what unknown paths and methods get.
"""

import pytest

from tests.api.conftest import Client

V1_ROUTES = [
    ("GET", "/v1/containers"),
    ("POST", "/v1/containers"),
    ("GET", "/v1/containers/some"),
    ("DELETE", "/v1/containers/some"),
    ("POST", "/v1/containers/some/start"),
    ("POST", "/v1/containers/some/stop"),
    ("POST", "/v1/containers/some/kill"),
    ("POST", "/v1/containers/some/restart"),
    ("POST", "/v1/containers/some/wait"),
    ("GET", "/v1/containers/some/logs"),
    ("GET", "/v1/instances"),
]


def test_versions_are_public(env):
    reply = env.anonymous.get("/")
    assert reply.code == 200
    assert reply.json() == {
        "versions": [
            {
                "id": "v1",
                "status": "CURRENT",
                "version": "1.0",
                "links": [{"rel": "self", "href": "http://csvc.test/v1"}],
            }
        ]
    }
    assert reply.headers.getRawHeaders(b"X-Openstack-Request-Id")[0].startswith(b"req-")


@pytest.mark.parametrize("method,path", V1_ROUTES)
def test_no_token_is_401(env, method, path):
    error = Client(env, None, "project-a").request(method, path, body={"image": "busybox"}).error(401)
    assert error["title"] == "Unauthorized"
    assert "X-Auth-Token" in error["message"]
    assert env.all_rows() == []


@pytest.mark.parametrize("method,path", V1_ROUTES)
def test_no_project_is_401(env, method, path):
    error = Client(env, env.alice.token, None).request(method, path, body={"image": "busybox"}).error(401)
    assert "X-Auth-Project-Id" in error["message"]
    assert env.all_rows() == []


@pytest.mark.parametrize("method,path", V1_ROUTES)
def test_wrong_token_is_401(env, method, path):
    error = Client(env, "not-a-token", "project-a").request(method, path, body={"image": "busybox"}).error(401)
    assert error["message"] == "the token is not valid"
    assert env.all_rows() == []


@pytest.mark.parametrize("method,path", V1_ROUTES)
def test_token_of_another_project_is_401(env, method, path):
    error = Client(env, env.bob.token, "project-a").request(method, path, body={"image": "busybox"}).error(401)
    assert error["message"] == "the token does not belong to project project-a"
    assert env.all_rows() == []
    assert env.hub.calls == []


def test_request_id_in_error_matches_header(env):
    reply = env.anonymous.get("/v1/containers")
    error = reply.error(401)
    assert reply.headers.getRawHeaders(b"X-Openstack-Request-Id") == [error["request_id"].encode()]


@pytest.mark.parametrize("path", ["/v1/nope", "/v2/containers", "/v1/containers/a/b/c"])
def test_unknown_path_is_a_json_404(env, path):
    error = env.alice.get(path).error(404)
    assert error["title"] == "Not Found"
    assert error["message"] == f"no such resource: {path}"


@pytest.mark.parametrize(
    "method,path",
    [("PUT", "/v1/containers"), ("PATCH", "/v1/containers/x"), ("GET", "/v1/containers/x/stop"), ("POST", "/")],
)
def test_wrong_method_is_a_json_405(env, method, path):
    error = env.alice.request(method, path).error(405)
    assert error["title"] == "Method Not Allowed"
    assert error["message"] == f"method {method} is not allowed on {path}"


def test_instances_need_admin(env):
    error = env.alice.get("/v1/instances").error(403)
    assert error["title"] == "Forbidden"
    assert "admin" in error["message"]


def test_instances_for_admin_count_containers(env):
    env.alice.create()
    env.bob.create()
    reply = env.admin.get("/v1/instances")
    assert reply.code == 200
    [instance] = reply.json()["instances"]
    assert instance["uuid"] == env.instance
    assert instance["name"] == "local-1"
    assert instance["provider"] == "local"
    assert instance["status"] == "active"
    assert instance["capacity"] == 10
    assert instance["containers"] == 2
    assert instance["shared"] is True
    assert instance["created_at"] == "2023-11-14T22:13:20.000000Z"
