"""
``GET /v1/openapi.json``: the document is valid OpenAPI, covers every native
route, and what the API answers matches it.  Query parameters are checked
against the same table the document is built from.
"""

import re

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_openapi

from csvc.api import openapi
from csvc.api.native import NativeAPI
from csvc.api.schemas import QUERY

DOCUMENT = openapi.document()


def native_routes():
    """
    ``(path, method)`` of every Klein route of the native API, in OpenAPI's
    spelling, but the browser pages.
    """
    for rule in NativeAPI._app.url_map.iter_rules():
        if rule.rule.startswith("/ui/"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            yield path, method.lower()


def matches(reply, path, method):
    """
    Assert the reply's status is documented for the operation and its body
    validates against the documented schema.
    """
    responses = DOCUMENT["paths"][path][method]["responses"]
    assert str(reply.code) in responses, (path, method, reply.code, reply.body)
    content = responses[str(reply.code)].get("content")
    if content is None:
        assert reply.body == b""
        return None
    assert "application/json" in content
    schema = dict(content["application/json"]["schema"], components=DOCUMENT["components"])
    body = reply.json()
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(body)
    return body


def test_the_document_is_valid_openapi():
    validate_openapi(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.1")


def test_every_native_route_is_documented():
    routes = set(native_routes())
    documented = {(path, method) for path, item in DOCUMENT["paths"].items() for method in item}
    assert routes == documented
    assert not any(path.startswith("/ui") for path, _ in documented)


def test_operations_are_handlers_and_query_tables_are_theirs():
    operations = {op["operationId"] for item in DOCUMENT["paths"].values() for op in item.values()}
    assert all(callable(getattr(NativeAPI, name, None)) for name in operations)
    assert set(QUERY) <= operations


def test_documented_query_parameters_are_the_tables():
    for item in DOCUMENT["paths"].values():
        for op in item.values():
            query = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            assert query == set(QUERY.get(op["operationId"], {}))


def test_security_schemes_are_the_two_headers():
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert {(s["type"], s["in"], s["name"]) for s in schemes.values()} == {
        ("apiKey", "header", "X-Auth-Token"),
        ("apiKey", "header", "X-Auth-Project-Id"),
    }
    public = {op["operationId"] for item in DOCUMENT["paths"].values() for op in item.values() if op.get("security") == []}
    assert public == {"versions", "openapi_document", "attach_with_token"}


def test_every_error_status_the_api_maps_is_documented_somewhere():
    from csvc.api.errors import STATUS

    documented = {int(s) for item in DOCUMENT["paths"].values() for op in item.values() for s in op["responses"]}
    assert {status for _cls, status, _title in STATUS} <= documented


def test_served_without_authentication(env):
    reply = env.anonymous.get("/v1/openapi.json")
    assert reply.code == 200
    assert reply.json() == DOCUMENT


def test_answers_match_the_document(env):
    assert matches(env.anonymous.get("/"), "/", "get")
    view = matches(env.alice.post("/v1/containers", {"image": "busybox", "memory": 64}), "/v1/containers", "post")
    ident = view["uuid"]
    matches(env.alice.get("/v1/containers"), "/v1/containers", "get")
    matches(env.alice.get(f"/v1/containers/{ident}"), "/v1/containers/{ident}", "get")
    matches(env.alice.post(f"/v1/containers/{ident}/start"), "/v1/containers/{ident}/start", "post")
    matches(env.alice.post(f"/v1/containers/{ident}/stop?timeout=0"), "/v1/containers/{ident}/stop", "post")
    matches(env.alice.post(f"/v1/containers/{ident}/wait"), "/v1/containers/{ident}/wait", "post")
    matches(env.alice.post(f"/v1/containers/{ident}/exec", {"command": ["true"]}), "/v1/containers/{ident}/exec", "post")
    matches(env.bob.get(f"/v1/containers/{ident}"), "/v1/containers/{ident}", "get")
    matches(env.anonymous.get("/v1/containers"), "/v1/containers", "get")
    matches(env.alice.get("/v1/quotas/project-a"), "/v1/quotas/{project}", "get")
    matches(env.alice.get("/v1/quotas/project-a/usage"), "/v1/quotas/{project}/usage", "get")
    matches(env.admin.request("PUT", "/v1/quotas/project-a", {"memory": 4096}), "/v1/quotas/{project}", "put")
    matches(env.alice.request("PUT", "/v1/quotas/project-a", {"memory": 1}), "/v1/quotas/{project}", "put")
    matches(env.admin.delete("/v1/quotas/project-a"), "/v1/quotas/{project}", "delete")
    matches(env.admin.get("/v1/instances"), "/v1/instances", "get")
    matches(env.alice.get("/v1/instances"), "/v1/instances", "get")
    matches(env.anonymous.get("/v1/attach/nothing"), "/v1/attach/{token}", "get")
    matches(env.alice.delete(f"/v1/containers/{ident}"), "/v1/containers/{ident}", "delete")


@pytest.mark.parametrize(
    "path,method,named",
    [
        ("/v1/containers?all_project=true", "GET", "all_project"),
        ("/v1/containers/x/start?force=true", "POST", "force"),
        ("/v1/containers/x/logs?tail=5&lines=5", "GET", "lines"),
        ("/v1/quotas/project-a?detail=1", "GET", "detail"),
        ("/v1/instances?limit=1", "GET", "limit"),
    ],
)
def test_unknown_query_parameters_are_400_naming_them(env, path, method, named):
    error = env.alice.request(method, path).error(400)
    assert named in error["message"] and "unknown query parameter" in error["message"]


@pytest.mark.parametrize(
    "query,named,rule",
    [
        ("timeout=3601", "timeout", "at most 3600"),
        ("timeout=-1", "timeout", "at least 0"),
        ("timeout=ten", "timeout", "integer"),
        ("timeout=1&timeout=2", "timeout", "at most once"),
    ],
)
def test_query_values_out_of_bounds_are_400(env, query, named, rule):
    view = env.alice.create(run=True)
    error = env.alice.post(f"/v1/containers/{view['uuid']}/stop?{query}").error(400)
    assert f"'{named}'" in error["message"] and rule in error["message"]


def test_a_long_signal_is_400(env):
    view = env.alice.create(run=True)
    error = env.alice.post(f"/v1/containers/{view['uuid']}/kill?signal={'S' * 33}").error(400)
    assert "'signal'" in error["message"] and "32" in error["message"]


def test_tail_is_all_or_a_count(env):
    view = env.alice.create(run=True)
    assert env.alice.get(f"/v1/containers/{view['uuid']}/logs?tail=all").code == 200
    assert env.alice.get(f"/v1/containers/{view['uuid']}/logs?tail=3").code == 200
    error = env.alice.get(f"/v1/containers/{view['uuid']}/logs?tail=some").error(400)
    assert "'tail'" in error["message"] and "'all'" in error["message"]


def test_a_project_id_beyond_what_is_stored_is_400(env):
    error = env.admin.request("PUT", "/v1/quotas/" + "p" * 65, {"memory": 1}).error(400)
    assert "'project'" in error["message"]
