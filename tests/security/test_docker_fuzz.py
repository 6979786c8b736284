"""
The Docker Engine API fuzzed with its own document: schemathesis over the
operations of Debian's ``api/swagger.yaml`` (Swagger 2.0, API 1.41) that
csvc serves, as a member (a project of its own, ``fuzz-member``) of a real
control plane on the real engine.  Issue 18, "How it is proven".

Which operations: those of the document whose path and method one of
``DockerAPI``'s Klein routes takes (its url map, read here, so the list
cannot drift from the code); swarm, plugins, builds, commits and the rest
csvc answers 501 for are not in it.  Requests go to ``/v1.41`` (the
document's ``basePath``, a version csvc serves) with the member's
``X-Auth-Token`` and ``X-Auth-Project-Id``.

Generated ids almost never name anything, so about half the cases with an
``{id}``/``{name}`` are pointed at something of the member's that is live
(``Targets``): a running container, an exec made on it, a network, a volume,
the instances' image.

Bounded in time; what is constrained or left out, and why:

- ``POST /containers/{id}/attach`` is a hijack held until the container
  exits: sent only with generated ids (which do not resolve), never at the
  live container; a read timeout where an id does resolve is its
  documented behaviour;
- ``POST /containers/{id}/wait`` answers when the container stops: a read
  timeout on a live container is its documented behaviour (checked live);
- ``GET /events`` streams until ``until``: always sent with ``until`` one
  second ahead;
- ``GET /containers/{id}/logs`` and ``/stats`` stream unless told not to:
  sent with ``follow=false`` / ``stream=false``;
- ``POST /containers/{id}/stop`` and ``/restart`` wait ``t`` seconds:
  capped at 2;
- ``POST /exec/{id}/start`` on the live container runs an exec of
  ``true``, which ends at once;
- ``PUT /containers/{id}/archive`` takes ``application/x-tar``, for which
  schemathesis has no generator: its cases are skipped by schemathesis;
- the coverage phase (boundary values, wrong types, missing parameters,
  methods a path does not take) runs on every operation but the four
  whose bodies have hundreds of fields (``WIDE_OPERATIONS``: a create
  alone has 3,332 such cases), which get ``MAX_EXAMPLES_WIDE`` fuzzed cases
  instead of ``MAX_EXAMPLES``.

Checks, and why these:

- ``not_a_server_error`` everywhere: bad input is a 4xx naming what was
  wrong, never a 5xx (the one 501 taken is ``unserved_image_removal``);
- response bodies (``schema_of_single_documents``): csvc claims to be
  Docker to the docker CLI and SDK, so a body it answers with a status the
  document has must be what the document says, read as the engine answers
  (``as_the_engine_answers``: Go's ``null`` for an empty slice or map, an
  exec's exit code, the restart policy "no").  Not checked: ``/events``
  and a pull's progress, a stream of JSON documents one a line, which no
  schema of the document describes;
- statuses (``documented_or_csvc_status``): the document lists few of the
  ones Docker itself answers (Docker's own engine answers 400 for a bad
  parameter on operations whose entry lists none) and none of csvc's own:
  403 (what the wall refuses, a quota), 413 (a body too large), and two
  409s (``CSVC_OPERATION_STATUSES``); a 401 is not among them, every case
  being sent with the member's credentials.  A status is accepted
  when documented for the operation or one of those; a method the path
  does not take must be a 405 (or the 501 of an operation csvc does not
  serve: DELETE /images/json removes the image "json");
- content types (``content_type_on_success``): checked on 2xx answers with
  a body, against the operation's ``produces`` or what the engine itself
  sends where the document says otherwise (``ENGINE_CONTENT_TYPES``).
  Errors are JSON, as Docker's, also on operations whose ``produces`` lists
  only a stream type; a 204 has no body and no type.

After the run, the engine holds no container of the member's that escapes
(``escaping_member_containers``), and what the fuzz made is removed.
"""

import os
import re
import time

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from csvc.api.docker import DockerAPI
from tests.integration.conftest import IMAGE
from tests.security.engine_check import escaping_member_containers

pytestmark = pytest.mark.slow

SWAGGER = "/usr/share/gocode/src/github.com/docker/docker/api/swagger.yaml"
PROJECT = "fuzz-member"
#: cases the fuzzing phase generates per operation
MAX_EXAMPLES = 12
#: Operations whose bodies have too many fields for the coverage phase (it
#: makes every case the document defines: 3,332 for a create, 640 for an
#: update): fuzzed longer instead, without it.
WIDE_OPERATIONS = ("ContainerCreate", "ContainerUpdate", "NetworkCreate", "NetworkConnect")
MAX_EXAMPLES_WIDE = 50
#: seconds any one request may take
REQUEST_TIMEOUT = 30
#: seconds a request that blocks by design (wait, attach) is given
BLOCKING_TIMEOUT = 3
#: statuses of csvc's own an operation may answer whatever the document lists
CSVC_STATUSES = {"400", "403", "413"}
#: statuses of one operation the document does not list: unpausing a
#: container that is not paused is a conflict (csvc's; the engine's own
#: answer is a 500); a network name in use is the engine's own 409
CSVC_OPERATION_STATUSES = {"POST /containers/{id}/unpause": {"409"}, "POST /networks/create": {"409"}}
#: runs forever, exits at once on SIGTERM
TARGET_COMMAND = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.2; done"]


def served_routes():
    """
    ``{(path with each parameter written {}, method)}`` of every route of
    ``DockerAPI``, from its Klein url map.
    """
    served = set()
    for rule in DockerAPI._app.url_map.iter_rules():
        template = re.sub(r"<(?:[a-z_]+:)?[a-z_]+>", "{}", rule.rule)
        served.update((template, method.lower()) for method in rule.methods or ())
    return served


def served_document(path=SWAGGER):
    """
    The Engine API's document with only the operations csvc serves.
    """
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: install golang-github-docker-docker-dev (`make bootstrap`)")
    with open(path) as f:
        document = yaml.safe_load(f)
    served = served_routes()
    paths = {}
    for template, item in document["paths"].items():
        holes = re.sub(r"\{[^}]+\}", "{}", template)
        kept = {key: value for key, value in item.items() if key == "parameters" or (holes, key) in served}
        if set(kept) - {"parameters"}:
            paths[template] = kept
    document["paths"] = paths
    return as_the_engine_answers(document)


def as_the_engine_answers(document):
    """
    The document, where API 1.41's text says less than Docker's own engine
    answers, made to say it (what csvc passes on from the engine, or answers
    the same way):

    - an array or object may be ``null``: Go encodes a nil slice or map so
      (``"Options": null`` in a network's IPAM, a container's
      ``Entrypoint``, ``changes`` of a container with none), even where the
      document says ``x-nullable: false`` (the engine lists an image
      without digests with ``"RepoDigests": null``);
    - an exec's ``ExitCode`` is ``null`` until it has run (a Go ``*int``);
    - ``RestartPolicy.Name`` may be ``"no"``, what the engine answers for a
      container without one (the documents of 1.42 on list it).

    (The request bodies generated from it so carry ``null`` for arrays and
    objects too, as Go's decoder, Docker's, takes.)
    """

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") in ("array", "object"):
                node["x-nullable"] = True
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    restart = document["definitions"]["RestartPolicy"]["properties"]["Name"]
    restart["enum"] = [*restart["enum"], "no"]
    inspect = document["paths"]["/exec/{id}/json"]["get"]["responses"][200]["schema"]
    inspect["properties"]["ExitCode"]["x-nullable"] = True
    return document


DOCUMENT = served_document()
schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=SchemathesisConfig.from_dict({
        "generation": {"max-examples": MAX_EXAMPLES},
        "operations": [{
            "include-operation-id": list(WIDE_OPERATIONS),
            "phases": {"coverage": {"enabled": False}},
            "generation": {"max-examples": MAX_EXAMPLES_WIDE},
        }],
    }),
)


def unserved_image_removal(case, response):
    """
    Whether ``case`` is the coverage phase's DELETE of an ``/images/...``
    path, which is the Engine API's ``DELETE /images/{name}`` (DELETE
    /images/json removes the image "json"), answered with the 501 of what
    csvc does not serve.
    """
    return (
        response.status_code == 501
        and case.method.upper() == "DELETE"
        and case.operation.path.startswith("/images/")
        and "csvc does not serve Docker image management" in response.text
    )


def no_server_error(ctx, response, case):
    """
    ``not_a_server_error``, but for ``unserved_image_removal``.
    """
    if unserved_image_removal(case, response):
        return None
    return not_a_server_error(ctx, response, case)


def documented_or_csvc_status(ctx, response, case):
    """
    The status is one the document lists for the operation, or one of
    ``CSVC_STATUSES``.
    """
    responses = {str(code) for code in case.operation.definition.raw.get("responses", {})}
    status = str(response.status_code)
    if case.method.upper() != case.operation.method.upper():
        # The coverage phase's cases of a method the path does not take.
        if status == "405":
            return None
        if unserved_image_removal(case, response):
            return None
        raise AssertionError(f"{case.method} {case.operation.path} answered {status}, not 405")
    if status in responses or "default" in responses or status in CSVC_STATUSES:
        return None
    if status in CSVC_OPERATION_STATUSES.get(case.operation.label, ()):
        return None
    raise AssertionError(
        f"{case.operation.label} answered {status}, not among {sorted(responses)} or csvc's {sorted(CSVC_STATUSES)}"
    )


#: Content types Docker's engine answers where API 1.41's document says
#: another: an export is ``application/x-tar``; logs (documented "no
#: Content-Type") are one of the two stream types (1.42 on).
ENGINE_CONTENT_TYPES = {
    "/containers/{id}/export": {"application/x-tar"},
    "/containers/{id}/logs": {"application/vnd.docker.raw-stream", "application/vnd.docker.multiplexed-stream"},
}


def content_type_on_success(ctx, response, case):
    """
    A 2xx answer with a body has a content type the operation documents (or
    ``ENGINE_CONTENT_TYPES``).  Errors are JSON, as Docker's; an empty
    answer (204, 200 of a resize) needs none.
    """
    if not 200 <= response.status_code < 300 or not response.content:
        return None
    received = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
    if received in ENGINE_CONTENT_TYPES.get(case.operation.path, ()):
        return None
    return content_type_conformance(ctx, response, case)


def schema_of_single_documents(ctx, response, case):
    """
    ``response_schema_conformance``, except for answers that are a stream of
    JSON documents, one a line (``/events``, a pull's progress), which no
    single schema describes.
    """
    if case.operation.path in ("/events", "/images/create"):
        return None
    return response_schema_conformance(ctx, response, case)


CHECKS = [no_server_error, documented_or_csvc_status, content_type_on_success, schema_of_single_documents]


class Targets:
    """
    Things of the member's that generated cases act on, made again when a
    case removed or stopped them.
    """

    def __init__(self, client):
        self._client = client
        self._container = None

    def _docker(self, method, path, **kwargs):
        return self._client.request(method, "/v1.41" + path, **kwargs)

    def container(self):
        if self._container is not None:
            shown = self._docker("GET", f"/containers/{self._container}/json")
            if shown.status_code == 200:
                state = shown.json()["State"]
                if state.get("Paused"):
                    self._docker("POST", f"/containers/{self._container}/unpause")
                if not state.get("Running"):
                    self._docker("POST", f"/containers/{self._container}/start")
                if self._docker("GET", f"/containers/{self._container}/json").json()["State"]["Running"]:
                    return self._container
            self._docker("DELETE", f"/containers/{self._container}", params={"force": "1"})
        made = self._docker("POST", "/containers/create", json={"Image": IMAGE, "Cmd": TARGET_COMMAND})
        assert made.status_code == 201, made.text
        self._container = made.json()["Id"]
        started = self._docker("POST", f"/containers/{self._container}/start")
        assert started.status_code == 204, started.text
        return self._container

    def exec(self):
        made = self._docker("POST", f"/containers/{self.container()}/exec", json={"Cmd": ["true"]})
        assert made.status_code == 201, made.text
        return made.json()["Id"]

    def network(self):
        name = "fuzz-net"
        if self._docker("GET", f"/networks/{name}").status_code != 200:
            made = self._docker("POST", "/networks/create", json={"Name": name})
            assert made.status_code == 201, made.text
        return name

    def volume(self):
        name = "fuzz-volume"
        if self._docker("GET", f"/volumes/{name}").status_code != 200:
            made = self._docker("POST", "/volumes/create", json={"Name": name})
            assert made.status_code == 201, made.text
        return name

    def live(self, ident):
        """
        Whether ``ident`` names a running container of the member's.
        """
        shown = self._docker("GET", f"/containers/{ident}/json")
        return shown.status_code == 200 and shown.json()["State"]["Running"]


@pytest.fixture(scope="module")
def member(control_plane):
    client = control_plane.client(PROJECT)
    yield client
    clean(client)


@pytest.fixture(scope="module")
def targets(member):
    return Targets(member)


def clean(client):
    """
    Remove the containers, networks and volumes of the member's project:
    through the API, then on the engine whatever is left with the project's
    label (the project's default network among them).
    """
    import docker

    for container in client.get("/v1.41/containers/json", params={"all": "1"}).json():
        client.delete(f"/v1.41/containers/{container['Id']}", params={"force": "1"})
    for network in client.get("/v1.41/networks").json():
        if network["Name"] not in ("bridge", "host", "none"):
            client.delete(f"/v1.41/networks/{network['Id']}")
    for volume in client.get("/v1.41/volumes").json().get("Volumes") or []:
        client.delete(f"/v1.41/volumes/{volume['Name']}", params={"force": "1"})
    label = {"label": f"csvc.project={PROJECT}"}
    engine = docker.from_env()
    try:
        for container in engine.containers.list(all=True, filters=label):
            container.remove(force=True)
        for network in engine.networks.list(filters=label):
            network.remove()
        for volume in engine.volumes.list(filters=label):
            volume.remove(force=True)
        left = [engine.containers.list(all=True, filters=label), engine.networks.list(filters=label),
                engine.volumes.list(filters=label)]
    finally:
        engine.close()
    assert left == [[], [], []], left


def aim(case, targets):
    """
    Point about half the cases with an id at something live; bound the
    streaming operations.  Returns the read timeout for the request.
    """
    path, method = case.operation.path, case.method.upper()
    params = case.path_parameters or {}
    query = case.query if case.query is not None else {}
    for key in ("id", "name"):
        if key in params and len(str(params[key])) % 2 == 1:
            if path.startswith("/containers/{id}") and path != "/containers/{id}/attach":
                params[key] = targets.container()
            elif path.startswith("/exec/"):
                params[key] = targets.exec()
            elif path.startswith("/networks/"):
                params[key] = targets.network()
            elif path.startswith("/volumes/"):
                params[key] = targets.volume()
            elif path.startswith("/images/"):
                params[key] = IMAGE
    if path == "/events":
        query["until"] = str(int(time.time()) + 1)
    elif path == "/containers/{id}/logs":
        query["follow"] = False
    elif path == "/containers/{id}/stats":
        query["stream"] = False
    elif path in ("/containers/{id}/stop", "/containers/{id}/restart"):
        if type(query.get("t")) is not int or query["t"] > 2:
            query["t"] = 2
    case.query = query
    if path in ("/containers/{id}/wait", "/containers/{id}/attach", "/containers/{id}/attach/ws") and method != "GET":
        return BLOCKING_TIMEOUT
    return REQUEST_TIMEOUT


def test_every_docker_route_is_an_operation_of_the_document():
    """
    What is fuzzed is what csvc serves: each route of ``DockerAPI`` (but
    the HEAD that werkzeug adds to each GET) is an operation of the
    document, so none is left out of the fuzz unnoticed.
    """
    fuzzed = set()
    for template, item in DOCUMENT["paths"].items():
        holes = re.sub(r"\{[^}]+\}", "{}", template)
        fuzzed.update((holes, method) for method in item if method != "parameters")
    left_out = {(path, method) for path, method in served_routes() - fuzzed if method not in ("head", "options")}
    assert left_out == set()
    assert ("/containers/create", "post") in fuzzed and len(fuzzed) >= 49


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_docker_api_as_a_member(case, member, targets):
    timeout = aim(case, targets)
    headers = {name: value for name, value in member.session.headers.items() if name.startswith("X-Auth")}
    try:
        case.call_and_validate(base_url=member.base + "/v1.41", headers=headers, checks=CHECKS, timeout=timeout)
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
        # (A timeout while reading the body is a ConnectionError.)
        if timeout != BLOCKING_TIMEOUT or "timed out" not in str(exc):
            raise
        # Blocked until the container exits, as documented: it is live.
        assert targets.live(case.path_parameters["id"]), case.path_parameters


def test_no_member_container_escapes_after_the_fuzz(member):
    """
    Runs after the fuzz (pytest keeps the order of a module's tests), before
    ``member``'s teardown removes what it made.  Only the member's
    containers are looked at: other runs may share the engine.
    """
    import docker

    engine = docker.from_env()
    try:
        ours = {c.id for c in engine.containers.list(all=True, filters={"label": f"csvc.project={PROJECT}"})}
    finally:
        engine.close()
    assert ours, "the fuzz made no container: it did not reach the engine"
    escaping = {engine_id: found for engine_id, found in escaping_member_containers().items() if engine_id in ours}
    assert escaping == {}
