"""
csvc/api/docker/app.py: a request for a part of the Docker API csvc does not
serve is a 501 saying which and why; other unknown paths stay Docker's 404.
"""

import pytest
from treq.testing import StubTreq

from csvc.api.docker import DockerAPI
from csvc.api.docker.app import unserved
from tests.api.conftest import result_of


@pytest.mark.parametrize(
    "method, path, what",
    [
        ("GET", "/v1.45/plugins/privileges", "plugins"),
        ("POST", "/secrets/create", "swarm mode"),
        ("DELETE", "/v1.45/images/csvc/busybox", "image management"),
        ("POST", "/v1.41/images/csvc/busybox/tag", "image management"),
        ("GET", "/images/get", "image management"),
        ("POST", "/v1.45/build", "image builds"),
        ("POST", "/commit", "commits"),
        ("GET", "/v1.45/services", "swarm mode"),
        ("GET", "/swarm", "swarm mode"),
        ("GET", "/plugins", "plugins"),
        ("GET", "/v1.45/system/df", "disk usage"),
        ("POST", "/auth", "registry logins"),
    ],
)
def test_unserved_parts_are_named(method, path, what):
    message = unserved(method, path)
    assert message.startswith(f"csvc does not serve Docker {what}")
    assert f" ({method} {path}): " in message


@pytest.mark.parametrize("path", ["/nope", "/v1.45/containers/x/y/z", "/networks/x/y/z", "/imagesx"])
def test_other_unknown_paths_are_not_claimed(path):
    assert unserved("GET", path) is None


def test_the_api_answers_501_for_them_and_404_otherwise():
    http = StubTreq(DockerAPI(None, None, None, None, None, None, None).resource())
    response = result_of(http.get("http://csvc.test/swarm"))
    assert response.code == 501
    body = result_of(response.json())
    assert body["message"].startswith("csvc does not serve Docker swarm mode (GET /swarm): ")
    response = result_of(http.get("http://csvc.test/nothing/here"))
    assert response.code == 404
    assert result_of(response.json()) == {"message": "page not found: /nothing/here"}
