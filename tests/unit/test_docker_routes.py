"""
csvc/api/docker/: the parts of the Docker API are mixins whose routes all
register on one Klein app, which ``DockerAPI`` serves.  Klein keys a
route's handler by the method's name: two parts defining a route method of
the same name would leave one of the paths answered by the other's handler.
"""

from collections import Counter

from treq.testing import StubTreq

from csvc.api.docker import DockerAPI
from csvc.api.docker.app import app
from tests.api.conftest import result_of


def test_every_route_has_a_handler_of_its_own():
    rules = list(app.url_map.iter_rules())
    shared = {name: count for name, count in Counter(rule.endpoint for rule in rules).items() if count > 1}
    assert shared == {}
    assert set(app.endpoints) == {rule.endpoint for rule in rules}


def test_each_handler_is_the_method_of_docker_api_of_its_name():
    for name, executor in app.endpoints.items():
        method = getattr(DockerAPI, name)
        assert executor.__wrapped__ is method, name


def test_routes_of_every_part_answer_through_docker_api():
    http = StubTreq(DockerAPI(None, None, None, None, None, None, None).resource())
    # Public routes of the system part, and the shared routing errors.
    assert result_of(http.get("http://csvc.test/_ping")).code == 200
    assert result_of(result_of(http.get("http://csvc.test/version")).json())["ApiVersion"] == "1.45"
    assert result_of(http.get("http://csvc.test/swarm")).code == 501
    missing = result_of(http.get("http://csvc.test/nope"))
    assert missing.code == 404
    assert result_of(missing.json()) == {"message": "page not found: /nope"}
