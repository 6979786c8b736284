"""
Every route of both APIs, asked without credentials or with another
project's, is refused: 401 (or, for the few public ones, answered without
touching anything of a tenant's).
"""

import json
import re

import pytest
from treq.testing import StubTreq

from csvc.api.docker import DockerAPI
from csvc.api.native import NativeAPI
from csvc.api.root import APIRoot
from csvc.relay.attach import Relay
from tests.api.conftest import result_of

BASE = "http://csvc.test"

#: Routes anyone may call, and why.
PUBLIC = {
    ("GET", "/"),  # versions
    ("GET", "/v1/openapi.json"),  # the API's own document
    ("GET", "/_ping"),  # docker clients ping before they can add headers
    ("HEAD", "/_ping"),
    ("GET", "/version"),  # docker-py asks from its constructor
}
#: One-time attach tokens authenticate by themselves (tested in test_attach*).
TOKEN_AUTHENTICATED = {"/v1/attach/<token>"}


def routes(app):
    for rule in app.url_map.iter_rules():
        if rule.rule in TOKEN_AUTHENTICATED or rule.rule.startswith("/ui"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: "x" + m.group(1), rule.rule)
        for method in sorted(rule.methods - {"OPTIONS"}):
            if method == "HEAD" and "GET" in rule.methods and (method, path) not in PUBLIC:
                continue
            yield method, path


NATIVE = sorted(set(routes(NativeAPI._app)))
DOCKER = sorted(set(routes(DockerAPI._app)))


@pytest.fixture
def http(env):
    relay = Relay(env.containers, env.journal, env.store, env.clock)
    docker_api = DockerAPI(env.api.auth, env.containers, env.store, env.journal, env.hub, relay, env.clock)
    root = APIRoot(env.api.resource(), docker_api.resource())
    return StubTreq(root)


def ask(env, http, method, path, headers):
    d = http.request(method, BASE + path, headers=headers, data=b"{}")
    env.settle()
    http.flush()
    response = result_of(d)
    body = http.content(response)
    http.flush()
    return response.code, result_of(body)


def test_the_route_tables_are_not_empty():
    assert len(NATIVE) >= 15
    assert len(DOCKER) >= 20


@pytest.mark.parametrize("method,path", [r for r in NATIVE if r not in PUBLIC])
def test_native_routes_need_credentials(env, http, method, path):
    for headers in ({}, {"X-Auth-Token": env.alice.token}, {"X-Auth-Project-Id": "project-a"}):
        code, body = ask(env, http, method, path, headers)
        assert code == 401, (method, path, headers, body)
        assert json.loads(body)["error"]["code"] == 401
    # A valid token presented for another project.
    code, _ = ask(env, http, method, path, {"X-Auth-Token": env.alice.token, "X-Auth-Project-Id": "project-b"})
    assert code == 401


@pytest.mark.parametrize("method,path", [r for r in DOCKER if r not in PUBLIC])
@pytest.mark.parametrize("version", ["", "/v1.41"])
def test_docker_routes_need_credentials(env, http, method, path, version):
    for headers in ({}, {"X-Auth-Token": env.alice.token}, {"X-Auth-Token": "forged", "X-Auth-Project-Id": "project-a"}):
        code, body = ask(env, http, method, version + path, headers)
        assert code == 401, (method, path, headers, body)
        assert "message" in json.loads(body)


@pytest.mark.parametrize("method,path", sorted(PUBLIC & (set(NATIVE) | set(DOCKER))))
def test_public_routes_answer_without_credentials(env, http, method, path):
    code, _ = ask(env, http, method, path, {})
    assert code == 200
