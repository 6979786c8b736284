"""
The Docker Engine API, as a superset: the docker CLI and the docker SDK,
pointed at csvc with the tenant's headers, get csvc's containers.

Served on the API listener at Docker's paths, unversioned and under
``/vX.Y/`` (1.24 to 1.45).  Errors are ``{"message": ...}`` in Docker's
wording, which the clients act on (``No such image`` makes the CLI pull).
"""

import json
import platform
import re
import uuid as uuidlib
from datetime import datetime, timezone
from functools import wraps

from klein import Klein
from twisted.internet.defer import CancelledError, DeferredSemaphore, gatherResults, inlineCallbacks
from twisted.logger import Logger
from twisted.web.resource import IResource
from werkzeug.exceptions import HTTPException

from csvc.wire import naming as agent_docker_config
from csvc.wire.psargs import UnsafePsArgs, check_ps_args
from csvc.wire.commands import (
    Conflict, EngineBusy, EngineError, InternalError, InvalidSpec, NoSuchContainer, NoSuchNetwork, NoSuchPath, NoSuchVolume,
)
from csvc.api import docker_events, docker_options, engine_body
from csvc.compute.defaults import update_within
from csvc.api.auth import AuthUnavailable, Unauthorized
from csvc.api.errors import Forbidden, PayloadTooLarge
from csvc.api.logs import LogStream, tail_position
from csvc.api.schemas import BadRequest
from csvc import policy
from csvc.compute.registries import RegistryPolicy
from csvc.compute.networks import RESERVED as RESERVED_NETWORKS, BuiltinNetwork, ProjectNetworks, WrongInstance
from csvc.compute.images import ProjectImages
from csvc.compute.service import ImageNotFound, NotFound, normalize_signal
from csvc.compute.volumes import ProjectVolumes
from csvc.compute.states import LIVE, InvalidState
from csvc.agents.hub import InstanceUnavailable
from csvc.relay.dockerexec import DetachedExec, DockerExecs, DockerExecStream, ExecState
from csvc.relay.dockerstream import DockerAttachStream
from csvc.relay.hijack import MULTIPLEXED, RAW, HijackResource
from csvc.agents.execs import ExecClaimed, ExecSlot
from csvc.agents.transfers import TooManyTransfers
from csvc.store.db import ContainerTooLarge, NameInUse, NoRoom
from csvc.store.quotas import QuotaExceeded

API_VERSION = "1.45"
MIN_API_VERSION = "1.24"
SERVER_VERSION = "20.10.24-csvc"
MAX_BODY = 1024 * 1024
#: Largest tar a ``PUT /containers/{id}/archive`` takes.
MAX_ARCHIVE = 1024 * 1024 * 1024

log = Logger()

_FALSE = {"", "0", "no", "false", "none"}


def version_tuple(text):
    major, minor = text.split(".")
    return int(major), int(minor)


def qbool(request, name, default=False):
    """
    Docker's query booleans: "", 0, no, false, none (any case) are false.
    """
    values = request.args.get(name.encode())
    if not values:
        return default
    return values[0].decode("utf-8", "replace").strip().lower() not in _FALSE


def qstr(request, name, default=None):
    values = request.args.get(name.encode())
    return values[0].decode("utf-8", "replace") if values else default


def qint(request, name, default=None):
    text = qstr(request, name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise BadRequest(f"invalid value for {name}: {text!r} is not an integer") from None


def _rfc3339(value):
    if value is None:
        return "0001-01-01T00:00:00Z"
    return value.isoformat(timespec="microseconds") + "Z"


def _unix(value):
    if value is None:
        return 0
    return int(value.replace(tzinfo=timezone.utc).timestamp())


def _ago(seconds):
    seconds = max(0, int(seconds))
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = seconds // 60
    if minutes < 60:
        return "About a minute" if minutes == 1 else f"{minutes} minutes"
    hours = minutes // 60
    if hours < 48:
        return "About an hour" if hours == 1 else f"{hours} hours"
    return f"{hours // 24} days"


#: csvc status -> Docker's State.Status
DOCKER_STATUS = {
    "creating": "created",
    "created": "created",
    "running": "running",
    "exited": "exited",
    "error": "dead",
    "deleting": "removing",
}


#: What ``docker container prune`` removes (csvc's statuses).
PRUNABLE = frozenset({"created", "exited", "error"})
#: Removals a prune runs at once.
PRUNE_AT_ONCE = 8


#: Parts of the Docker Engine API csvc does not serve, and why: a client
#: that asks gets a 501 saying so instead of "page not found".
#: (pattern on the path without its version, what, why)
UNSERVED = [
    # (Only paths no route took get here: listing, inspecting, pulling and
    # pruning are served.)
    (re.compile(r"/images/.+"), "image management besides listing, inspecting and pulling",
     "images are the instances', shared between projects"),
    (re.compile(r"/build(/.*)?|/session|/grpc"), "image builds", "csvc builds no images"),
    (re.compile(r"/commit"), "commits", "images are the instances', shared between projects"),
    (re.compile(r"/(swarm|services|nodes|tasks|secrets|configs)(/.*)?"), "swarm mode",
     "csvc places containers on its instances itself"),
    (re.compile(r"/plugins(/.*)?"), "plugins", "the engines' plugins are their operator's"),
    (re.compile(r"/system/df"), "disk usage", "the engines' disks are their operator's"),
    (re.compile(r"/distribution/.*"), "registry lookups", "pulls go through the instances' engines"),
    (re.compile(r"/auth"), "registry logins", "csvc keeps no registry credentials"),
]


def _unserved(method, path):
    """
    The message for a request to a part of the Docker API that csvc does
    not serve; None for any other unknown path.
    """
    bare = re.sub(r"^/v\d+(\.\d+)?(?=/)", "", path)
    for pattern, what, why in UNSERVED:
        if pattern.fullmatch(bare):
            return f"csvc does not serve Docker {what} ({method} {path}): {why}"
    return None


class DockerError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def classify(exc, ident=None):
    """
    ``(status, message)`` in Docker's terms.
    """
    if isinstance(exc, DockerError):
        return exc.status, str(exc)
    if isinstance(exc, (NotFound, NoSuchContainer)):
        return 404, f"No such container: {ident}" if ident else str(exc)
    if isinstance(exc, (ImageNotFound, NoSuchNetwork)):
        return 404, str(exc)
    if isinstance(exc, BuiltinNetwork):
        return 403, str(exc)
    if isinstance(exc, WrongInstance):
        return 400, str(exc)
    if isinstance(exc, Unauthorized):
        return 401, str(exc)
    if isinstance(exc, (Forbidden, QuotaExceeded)):
        return 403, str(exc)
    if isinstance(exc, (BadRequest, InvalidSpec, ContainerTooLarge)):
        return 400, str(exc)
    if isinstance(exc, PayloadTooLarge):
        return 413, str(exc)
    if isinstance(exc, TooManyTransfers):
        return 429, str(exc)
    if isinstance(exc, EngineBusy):
        return 503, str(exc)
    if isinstance(exc, (InvalidState, Conflict, ExecClaimed)):
        return 409, str(exc)
    if isinstance(exc, NameInUse):
        return 409, (
            f'Conflict. The container name "/{exc}" is already in use by a container of this project. '
            "You have to remove (or rename) that container to be able to reuse that name."
        )
    if isinstance(exc, EngineError):
        return 500, str(exc)
    if isinstance(exc, InternalError):
        return 500, f"the instance's agent failed: {exc}"
    if isinstance(exc, (InstanceUnavailable, NoRoom, AuthUnavailable)):
        return 503, str(exc)
    return None


def send(request, status, body=None):
    request.setResponseCode(status)
    if body is None:
        return b""
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(body).encode("utf-8")


def docker_endpoint(public=False):
    def decorator(handler):
        @wraps(handler)
        @inlineCallbacks
        def route(self, request, **kwargs):
            try:
                self.check_version(request)
                identity = None
                if not public:
                    identity = yield self.authenticate(request)
                result = yield handler(self, request, identity, **kwargs)
            except Exception as exc:
                if isinstance(exc, CancelledError) and request.channel is None:
                    return None
                known = classify(exc, kwargs.get("ident"))
                if getattr(exc, "retry_after", None):
                    request.setHeader(b"Retry-After", b"%d" % exc.retry_after)
                if known is None:
                    request_id = "req-" + str(uuidlib.uuid4())
                    log.failure("unexpected error in {path}", path=request.path, request_id=request_id)
                    known = (500, f"unexpected error (request id {request_id})")
                if getattr(request, "_csvc_streaming", False):
                    # Headers are out: nothing sensible can be said any more.
                    return None
                return send(request, known[0], {"message": known[1]})
            if result is None or IResource.providedBy(result):
                return result
            if isinstance(result, bytes):
                return result
            status, body = result
            return send(request, status, body)

        return route

    return decorator


def _env_list(environment):
    return [f"{k}={v}" for k, v in (environment or {}).items()]


def _env_dict(env_list, field="Env"):
    out = {}
    for item in env_list or []:
        if not isinstance(item, str):
            raise BadRequest(f"{field}: entries must be strings of the form NAME=value")
        name, sep, value = item.partition("=")
        if not name:
            raise BadRequest(f"{field}: {item!r} has no variable name")
        if sep:
            out[name] = value
    return out


def _string_list(value, field):
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise BadRequest(f"{field}: must be a string or a list of strings")
    return value


class DockerAPI:
    _app = Klein()

    def __init__(self, auth, containers, store, journal, hub, relay, clock, volumes=None, events=None,
                 networks=None, registries=None, images=None):
        self._auth = auth
        self._containers = containers
        self._store = store
        self._journal = journal
        self._hub = hub
        self._relay = relay
        self._clock = clock
        self._execs = DockerExecs()
        self._volumes = volumes if volumes is not None else ProjectVolumes(store, hub)
        self._networks = networks if networks is not None else ProjectNetworks(store, hub)
        #: the open event streams, a notification sink (None: no /events)
        self._events = events
        #: which registries pulls may reach (``csvc.compute.registries``)
        self._registries = registries if registries is not None else RegistryPolicy(None, clock)
        #: which images a project sees and pulls where (``csvc.compute.images``)
        self._project_images = images if images is not None else ProjectImages(store, hub)

    def resource(self):
        return self._app.resource()

    # -- common ------------------------------------------------------------

    def check_version(self, request):
        text = getattr(request, "docker_api_version", None)
        if text is None:
            return
        if version_tuple(text) > version_tuple(API_VERSION):
            raise DockerError(
                400, f"client version {text} is too new. Maximum supported API version is {API_VERSION}"
            )
        if version_tuple(text) < version_tuple(MIN_API_VERSION):
            raise DockerError(
                400, f"client version {text} is too old. Minimum supported API version is {MIN_API_VERSION}, "
                "please upgrade your client to a newer version"
            )

    def authenticate(self, request):
        def header(name):
            value = request.getHeader(name)
            return value.decode("latin-1").strip() if value else None

        return self._auth.authenticate(header(b"X-Auth-Token"), header(b"X-Auth-Project-Id"))

    def _version(self, request):
        return getattr(request, "docker_api_version", None) or API_VERSION

    @_app.handle_errors(HTTPException)
    def routing_error(self, request, failure):
        exc = failure.value
        code = exc.code or 500
        if code in (301, 302, 307, 308):
            code = 404
        path = request.path.decode("utf-8", "replace")
        method = request.method.decode("ascii", "replace")
        # A 405 of a method the Engine API never uses (TRACE /images/json)
        # is a 405, not an operation csvc does not serve.
        if code == 404 or (code == 405 and method in ("GET", "HEAD", "POST", "PUT", "DELETE")):
            unserved = _unserved(method, path)
            if unserved is not None:
                return send(request, 501, {"message": unserved})
        message = {404: f"page not found: {path}", 405: f"method not allowed on {path}"}.get(code, exc.name)
        return send(request, code, {"message": message})

    # -- system ------------------------------------------------------------

    def _ping_headers(self, request):
        request.setHeader(b"Api-Version", API_VERSION.encode())
        request.setHeader(b"Ostype", b"linux")
        request.setHeader(b"Docker-Experimental", b"false")
        request.setHeader(b"Cache-Control", b"no-cache, no-store, must-revalidate")
        request.setHeader(b"Pragma", b"no-cache")

    @_app.route("/_ping", methods=["GET", "HEAD"])
    @docker_endpoint(public=True)
    def ping(self, request, identity):
        self._ping_headers(request)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setResponseCode(200)
        return b"OK" if request.method == b"GET" else b""

    @_app.route("/version", methods=["GET"])
    @docker_endpoint(public=True)
    def version(self, request, identity):
        """
        Unauthenticated, so nothing of the host beyond what clients read
        (ApiVersion, MinAPIVersion, Version, Os, Arch): no kernel version
        (an authenticated ``/info`` has it).
        """
        self._ping_headers(request)
        return 200, {
            "Platform": {"Name": "csvc"},
            "Components": [{"Name": "csvc", "Version": SERVER_VERSION, "Details": {}}],
            "Version": SERVER_VERSION,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "csvc",
            "GoVersion": "n/a",
            "Os": "linux",
            "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
            "KernelVersion": "",
            "BuildTime": "",
        }

    @_app.route("/info", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def info(self, request, identity):
        rows = yield self._containers.list(identity)
        instances = yield self._store.list_instances()
        states = [DOCKER_STATUS.get(r["status"], r["status"]) for r in rows]
        facts = self._hub.engine_facts()
        images = yield self._images(identity)
        return 200, {
            "ID": "csvc",
            "Name": "csvc",
            "Containers": len(rows),
            "ContainersRunning": states.count("running"),
            "ContainersPaused": 0,
            "ContainersStopped": len(rows) - states.count("running"),
            "Images": len(images),
            "ServerVersion": SERVER_VERSION,
            "OSType": "linux",
            "OperatingSystem": "csvc",
            "Architecture": platform.machine(),
            "NCPU": sum(f.get("NCPU", 0) for f in facts.values()),
            "MemTotal": sum(f.get("MemTotal", 0) for f in facts.values()),
            "Driver": "csvc",
            "DriverStatus": [
                ["Instances", str(len(instances))],
                ["Active instances", str(sum(1 for i in instances if i["status"] == "active"))],
            ],
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "KernelVersion": platform.release(),
            "Labels": [f"csvc.project={identity.project_id}"],
            "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": False},
            "Plugins": {"Volume": [], "Network": [], "Log": ["json-file"]},
            "SecurityOptions": [],
            "Warnings": None,
        }

    # -- events ------------------------------------------------------------

    @_app.route("/events", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def events(self, request, identity):
        """
        The project's container events (create, start, die, kill, stop,
        destroy) from now on, one JSON document per line, until ``until`` or
        the client goes away.  There is no history: ``since`` is accepted
        (the CLI sends it) and ignored.
        """
        if self._events is None:
            raise DockerError(404, "page not found: events are not served by this csvc")
        filters = docker_events.parse_filters(qstr(request, "filters"))
        until = _time_param(request, "until")
        stream_row = {"project_id": identity.project_id}
        with (yield self._transfer_session(stream_row)):
            request.setResponseCode(200)
            request.setHeader(b"Content-Type", b"application/json")
            request._csvc_streaming = True
            request.write(b"")
            stream = self._events.open(request, identity.project_id, filters)
            timer = None
            if until is not None:
                timer = self._clock.callLater(max(0.0, until - self._clock.seconds()), stream.end)
            yield stream.done
            if timer is not None and timer.active():
                timer.cancel()
        return None

    # -- images ------------------------------------------------------------

    def _images(self, identity):
        # The project's images and the public ones (csvc.compute.images).
        return self._project_images.list(identity)

    @_app.route("/images/json", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def images(self, request, identity):
        listed = yield self._images(identity)
        return 200, listed

    @_app.route("/images/<path:name>/json", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def image_inspect(self, request, identity, name):
        found = yield self._project_images.inspect(identity, name)
        if found is None:
            raise DockerError(404, f"No such image: {name}")
        return 200, found

    @_app.route("/images/prune", methods=["POST"])
    @docker_endpoint()
    def image_prune(self, request, identity):
        """
        Images are the instances', shared between projects: a tenant's prune
        removes none (``docker system prune`` asks for this).
        """
        _prune_filters_any(qstr(request, "filters"))
        return 200, {"ImagesDeleted": [], "SpaceReclaimed": 0}

    @_app.route("/build/prune", methods=["POST"])
    @docker_endpoint()
    def build_prune(self, request, identity):
        """
        csvc builds no images, so it keeps no build cache.
        """
        _prune_filters_any(qstr(request, "filters"))
        return 200, {"CachesDeleted": [], "SpaceReclaimed": 0}

    # -- networks ----------------------------------------------------------
    #
    # A project's bridge networks (csvc.compute.networks): the engine's
    # ``csvc-<project>-<name>``, shown as ``<name>``, with the engine's own
    # ``bridge`` and ``none`` beside them.

    @inlineCallbacks
    def _container_names(self, identity):
        """
        Engine id -> name of each of the project's containers.
        """
        rows = yield self._containers.list(identity)
        return {row["engine_id"]: row["name"] for row in rows if row["engine_id"]}

    @_app.route("/networks", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def networks(self, request, identity):
        policy.enforce("network:list", identity)
        filters = docker_events.parse_filters(qstr(request, "filters"), NETWORK_FILTERS, "network lists")
        for kind in filters.get("type", []):
            if kind not in ("custom", "builtin"):
                raise BadRequest(f"invalid filter 'type={kind}': custom or builtin")
        # (The engine's list entries carry no containers since API 1.28: no
        # names to look up.)
        listed = yield self._networks.list(identity.project_id, {})
        return 200, [n for n in listed if _network_matches(n, filters)]

    @_app.route("/networks/create", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def network_create(self, request, identity):
        body = self._read_body(request, "POST /networks/create")
        policy.enforce("network:create", identity)
        name = body.get("Name")
        if not isinstance(name, str) or not docker_options.NETWORK_NAME.fullmatch(name):
            raise BadRequest(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        if name in RESERVED_NETWORKS:
            raise DockerError(403, f"{name} is a pre-defined network and cannot be created")
        options = _network_options(body)
        try:
            network = yield self._networks.create(identity.project_id, name, options)
        except Conflict:
            raise DockerError(409, f"network with name {name} already exists") from None
        return 201, {"Id": network["Id"], "Warning": ""}

    @_app.route("/networks/prune", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def network_prune(self, request, identity):
        """
        ``docker network prune``: remove the project's networks no container
        is on (Docker's ``until``, ``label`` and ``label!`` filters).
        """
        policy.enforce("network:delete", identity)
        until, labels, not_labels = _prune_filters(qstr(request, "filters"))
        listed = yield self._networks.list(identity.project_id, {})
        deleted = []
        for network in listed:
            if network["Name"] in RESERVED_NETWORKS or not _labels_match(network.get("Labels") or {}, labels,
                                                                         not_labels):
                continue
            if until is not None and _unix_rfc3339(network.get("Created")) >= until:
                continue
            try:
                yield self._networks.remove(identity.project_id, network["Id"])
            except (Conflict, NoSuchNetwork):
                # In use (or gone meanwhile): Docker leaves it too.
                continue
            deleted.append(network["Name"])
        return 200, {"NetworksDeleted": deleted}

    @_app.route("/networks/<network>", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def network_inspect(self, request, identity, network):
        policy.enforce("network:get", identity)
        names = yield self._container_names(identity)
        return 200, (yield self._networks.inspect(identity.project_id, network, names))

    @_app.route("/networks/<network>", methods=["DELETE"])
    @docker_endpoint()
    @inlineCallbacks
    def network_remove(self, request, identity, network):
        policy.enforce("network:delete", identity)
        try:
            yield self._networks.remove(identity.project_id, network)
        except Conflict:
            raise DockerError(403, f"error while removing network: network {network} has active endpoints") from None
        return 204, None

    @_app.route("/networks/<network>/connect", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def network_connect(self, request, identity, network):
        body = self._read_body(request, "POST /networks/{id}/connect")
        policy.enforce("network:connect", identity)
        endpoint = body.get("EndpointConfig") or {}
        if not isinstance(endpoint, dict):
            raise BadRequest("EndpointConfig must be an object")
        aliases = docker_options.network_aliases("EndpointConfig.Aliases", endpoint.get("Aliases"))
        row = yield self._get(identity, _body_container(body))
        try:
            short = yield self._networks.connect(identity.project_id, network, row, aliases)
        except Conflict as exc:
            raise DockerError(409, f"container {row['name']} is already on network {network}") from exc
        yield self._store_networks(row, short, aliases, connected=True)
        return 200, None

    @_app.route("/networks/<network>/disconnect", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def network_disconnect(self, request, identity, network):
        body = self._read_body(request, "POST /networks/{id}/disconnect")
        policy.enforce("network:connect", identity)
        row = yield self._get(identity, _body_container(body))
        short = yield self._networks.disconnect(identity.project_id, network, row, bool(body.get("Force")))
        yield self._store_networks(row, short, [], connected=False)
        return 200, None

    def _store_networks(self, row, short, aliases, connected):
        """
        Keep the networks a container is on in its ``docker_config``
        (``NetworkingConfig.EndpointsConfig``: what inspect shows).
        """
        docker_config = dict(row.get("docker_config") or {})
        endpoints = dict((docker_config.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
        if connected:
            endpoints[short] = {"Aliases": aliases}
        else:
            endpoints.pop(short, None)
        docker_config["NetworkingConfig"] = {"EndpointsConfig": endpoints}
        return self._store.update_container(row["uuid"], docker_config=docker_config)

    @_app.route("/images/create", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def image_pull(self, request, identity):
        image = qstr(request, "fromImage")
        if not image:
            raise BadRequest("fromImage is required")
        tag = qstr(request, "tag")
        if tag and "@" not in image and ":" not in image.rsplit("/", 1)[-1]:
            image = f"{image}:{tag}"
        yield self._registries.check_pull(image)
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", b"application/json")
        request._csvc_streaming = True
        request.write(json.dumps({"status": f"Pulling from {image} on csvc's instances"}).encode() + b"\r\n")
        try:
            result = yield self._project_images.pull(identity, image)
            request.write(json.dumps({"status": f"Status: Image is up to date for {image}", "id": result}).encode() + b"\r\n")
        except Exception as exc:
            message = str(exc) or exc.__class__.__name__
            request.write(json.dumps({"errorDetail": {"message": message}, "error": message}).encode() + b"\r\n")
        return b""

    # -- containers --------------------------------------------------------

    def _read_body(self, request, operation, warnings=None):
        """
        The request's JSON body rebuilt along the Engine API's schema of
        ``operation`` (``engine_body``): canonical field names, the schema's
        fields and types only.  Dropped fields are appended to ``warnings``
        (the create's answer shows them), or logged.
        """
        length = request.getHeader(b"Content-Length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            raise PayloadTooLarge(f"request body of {int(length)} bytes exceeds {MAX_BODY}")
        raw = request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise PayloadTooLarge(f"request body exceeds {MAX_BODY} bytes")
        if not raw.strip():
            return {}
        body = engine_body.decode(raw)
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        body, dropped = engine_body.canonical(operation, body)
        if dropped:
            if warnings is not None:
                warnings.extend(f"{path} is not supported by csvc and was ignored" for path in dropped)
            else:
                log.warn("{operation}: ignored fields {fields}", operation=operation, fields=dropped[:10])
        return body

    def _spec_from_config(self, body, name):
        image = body.get("Image")
        if not image or not isinstance(image, str):
            raise BadRequest("Config.Image: an image is required")
        host = body.get("HostConfig") or {}
        if not isinstance(host, dict):
            raise BadRequest("HostConfig must be an object")
        spec = {
            "image": image,
            "command": _string_list(body.get("Cmd"), "Cmd"),
            "entrypoint": _string_list(body.get("Entrypoint"), "Entrypoint"),
            "environment": _env_dict(body.get("Env")),
            "labels": body.get("Labels") or {},
            "tty": bool(body.get("Tty")),
            "interactive": bool(body.get("OpenStdin")),
            "stdin_once": bool(body.get("StdinOnce")),
            "remove_on_exit": bool(host.get("AutoRemove")),
        }
        if body.get("WorkingDir"):
            spec["workdir"] = body["WorkingDir"]
        if not isinstance(spec["labels"], dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in spec["labels"].items()
        ):
            raise BadRequest("Labels: must be an object of strings")
        if host.get("Memory"):
            spec["memory"] = _memory_mib(int(host["Memory"]))
        cpus = _cpus(host)
        if cpus:
            spec["cpu"] = cpus
        if name:
            if not re.fullmatch(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+", name):
                raise BadRequest(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
            spec["name"] = name.lstrip("/")
        return spec

    @_app.route("/containers/create", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def create(self, request, identity):
        dropped = []
        body = self._read_body(request, "POST /containers/create", dropped)
        resolved, instance = yield self._join_namespaces(body, identity)
        # Host-escaping options are refused (403) before anything is stored
        # or reaches an engine.
        docker_options.enforce(body, identity, resolved)
        spec = self._spec_from_config(body, qstr(request, "name"))
        spec["docker_config"], warnings = docker_options.honoured(body)
        warnings = dropped + warnings
        network_instance = yield self._network_of(identity, spec["docker_config"])
        if network_instance is not None:
            if instance is not None and instance != network_instance:
                raise BadRequest("HostConfig.NetworkMode: the network and the containers whose namespaces are "
                                 "shared are on different instances")
            instance = network_instance
        if instance is not None:
            # A shared namespace is a namespace of the same engine; a
            # network is one engine's.
            spec["instance"] = instance
        try:
            row = yield self._containers.create(identity, spec)
        except ImageNotFound:
            raise DockerError(404, f"No such image: {_full_image(spec['image'])}") from None
        return 201, {"Id": row["engine_id"], "Warnings": warnings}

    @inlineCallbacks
    def _network_of(self, identity, docker_config):
        """
        The instance of the project's network a create names in
        ``NetworkMode`` (None for the engine's own); the network is then
        written by its name (a client may give its id).  404 when the
        project has no such network.
        """
        host = (docker_config or {}).get("HostConfig") or {}
        given = agent_docker_config.project_network(host.get("NetworkMode"))
        if given is None:
            return None
        try:
            instance, _name, short = yield self._networks.find(identity.project_id, given)
        except NoSuchNetwork:
            raise DockerError(404, f"network {given} not found") from None
        host["NetworkMode"] = short
        endpoints = (docker_config.get("NetworkingConfig") or {}).get("EndpointsConfig")
        if endpoints and given in endpoints:
            endpoints[short] = endpoints.pop(given)
        return None if short in RESERVED_NETWORKS else instance

    @inlineCallbacks
    def _join_namespaces(self, body, identity):
        """
        Resolve each ``container:<ident>`` namespace option (network, pid,
        ipc) naming a container of the caller's project (any project's for
        an admin) to the engine's id of that container; fires with the
        fields resolved and the instance they all are on.  What is not
        resolved is left for policy (a member's is refused, naming it).
        """
        resolved, instance = set(), None
        host = body.get("HostConfig")
        for field, ident in docker_options.namespace_targets(body).items():
            row = yield self._store.get_container(ident, identity.project_id)
            if row is None and identity.is_admin:
                row = yield self._store.get_container(ident)
            if row is None or not row["engine_id"]:
                continue
            if instance is not None and row["instance_uuid"] != instance:
                raise BadRequest(f"HostConfig.{field} container:{ident}: the containers whose namespaces are "
                                 "shared must be on one instance")
            instance = row["instance_uuid"]
            host[field] = f"container:{row['engine_id']}"
            resolved.add(field)
        return resolved, instance

    @inlineCallbacks
    def _get(self, identity, ident):
        try:
            row = yield self._containers.get(identity, ident)
        except NotFound:
            raise DockerError(404, f"No such container: {ident}") from None
        return row

    @_app.route("/containers/json", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def list(self, request, identity):
        show_all = qbool(request, "all")
        limit = qint(request, "limit", -1)
        filters = _list_filters(qstr(request, "filters"))
        rows = yield self._containers.list(identity)
        rows = [r for r in rows if show_all or r["status"] == "running" or (limit and limit > 0)]
        rows = [r for r in rows if _matches(r, filters)]
        rows.sort(key=lambda r: r["created_at"], reverse=True)
        if limit is not None and limit > 0:
            rows = rows[:limit]
        now = self._clock.seconds()
        sizes = (yield self._sizes(identity.project_id, rows)) if qbool(request, "size") else {}
        summaries = []
        for row in rows:
            summary = self._summary(row, now)
            ports = yield self._published_ports(row)
            summary["Ports"] = _port_list(ports)
            summary["SizeRw"], summary["SizeRootFs"] = sizes.get(row["uuid"], (0, 0))
            summaries.append(summary)
        return 200, summaries

    @inlineCallbacks
    def _sizes(self, project_id, rows):
        """
        ``{uuid: [SizeRw, SizeRootFs]}`` of ``rows`` (``size=1``), one
        question per instance they are on; an instance that cannot answer
        leaves its containers at 0.
        """
        sizes = {}
        for instance in sorted({r["instance_uuid"] for r in rows if r["instance_uuid"] and r["engine_id"]}):
            try:
                found = yield self._containers.sizes(project_id, instance)
            except Exception as exc:
                log.warn("container sizes on {instance} unavailable: {why}", instance=instance, why=str(exc))
                continue
            sizes.update(found)
        return sizes

    @inlineCallbacks
    def _published_ports(self, row):
        """
        A running container's published ports at its instance's address
        (``{}`` when it publishes none or they cannot be asked for).
        """
        host = (row.get("docker_config") or {}).get("HostConfig") or {}
        if row["status"] != "running" or not (host.get("PortBindings") or host.get("PublishAllPorts")):
            return {}
        try:
            ports = yield self._containers.published_ports(row)
        except Exception as exc:
            log.warn("published ports of {uuid} unavailable: {why}", uuid=row["uuid"], why=str(exc))
            return {}
        return ports

    def _summary(self, row, now):
        status = DOCKER_STATUS.get(row["status"], row["status"])
        if status == "running":
            text = f"Up {_ago(now - _unix(row['started_at']))}"
        elif status in ("exited", "dead") and row["finished_at"] is not None:
            text = f"Exited ({row['exit_code'] if row['exit_code'] is not None else -1}) " \
                   f"{_ago(now - _unix(row['finished_at']))} ago"
        elif status == "removing":
            # Left for its agent to remove (csvc.compute.service.delete).
            text = "Removal In Progress"
        else:
            text = "Created"
        command = " ".join((row.get("entrypoint") or []) + (row["command"] or []))
        return {
            "Id": row["engine_id"] or row["uuid"],
            "Names": ["/" + row["name"]],
            "Image": row["image"],
            # The CLI prints the image reference when no image id matches it.
            "ImageID": "",
            "Command": command,
            "Created": _unix(row["created_at"]),
            "State": status,
            "Status": text,
            "Ports": [],
            "Labels": row["labels"] or {},
            "SizeRw": 0,
            "SizeRootFs": 0,
            "HostConfig": {"NetworkMode": ((row.get("docker_config") or {}).get("HostConfig") or {}).get(
                "NetworkMode") or "default"},
            "NetworkSettings": {"Networks": _networks_of(row)},
            "Mounts": _volume_mounts(row.get("docker_config") or {}, row["uuid"]),
        }

    def _inspect(self, row):
        return _with_options(self._base_inspect(row), row)

    def _base_inspect(self, row):
        status = DOCKER_STATUS.get(row["status"], row["status"])
        command = row["command"] or []
        entrypoint = row.get("entrypoint") or []
        argv = entrypoint + command
        return {
            "Id": row["engine_id"] or row["uuid"],
            "Created": _rfc3339(row["created_at"]),
            "Path": argv[0] if argv else "",
            "Args": argv[1:],
            "State": {
                "Status": status,
                "Running": status == "running",
                "Paused": False,
                "Restarting": False,
                "OOMKilled": False,
                "Dead": status == "dead",
                "Pid": 0,
                "ExitCode": row["exit_code"] if row["exit_code"] is not None else 0,
                "Error": row["status_reason"] or "",
                "StartedAt": _rfc3339(row["started_at"]),
                "FinishedAt": _rfc3339(row["finished_at"]),
            },
            "Image": row["image"],
            "Name": "/" + row["name"],
            "RestartCount": 0,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": None,
            "HostConfig": {
                "LogConfig": {"Type": "json-file", "Config": {}},
                "AutoRemove": bool(row["remove_on_exit"]),
                "Memory": (row["memory"] or 0) * 1024 * 1024,
                "NanoCpus": int((row["cpu"] or 0) * 1e9),
                "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                "NetworkMode": "default",
            },
            "Mounts": [],
            "Config": {
                "Hostname": (row["engine_id"] or row["uuid"])[:12],
                "Domainname": "",
                "User": "",
                "AttachStdin": False,
                "AttachStdout": True,
                "AttachStderr": True,
                "Tty": bool(row["tty"]),
                "OpenStdin": bool(row["interactive"]),
                "StdinOnce": bool(row["stdin_once"]) if row["stdin_once"] is not None else bool(row["interactive"]),
                "Env": _env_list(row["environment"]),
                "Cmd": command or None,
                "Image": row["image"],
                "Volumes": None,
                "WorkingDir": row["workdir"] or "",
                "Entrypoint": entrypoint or None,
                "Labels": row["labels"] or {},
            },
            "NetworkSettings": {"Networks": {}, "Ports": {}},
            "Node": {"ID": row["instance_uuid"], "Name": row["instance_uuid"]},
        }

    @_app.route("/containers/<ident>/json", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def inspect(self, request, identity, ident):
        row = yield self._get(identity, ident)
        inspected = self._inspect(row)
        if qbool(request, "size"):
            sizes = yield self._sizes(identity.project_id, [row])
            inspected["SizeRw"], inspected["SizeRootFs"] = sizes.get(row["uuid"], (0, 0))
        published = yield self._published_ports(row)
        if published:
            inspected["NetworkSettings"]["Ports"].update(published)
        if row["status"] == "running":
            try:
                paused = yield self._containers.paused(row)
            except Exception as exc:
                log.warn("pause state of {uuid} unavailable: {why}", uuid=row["uuid"], why=str(exc))
                paused = False
            if paused:
                inspected["State"]["Paused"] = True
                inspected["State"]["Status"] = "paused"
        if row["status"] == "running" and _has_healthcheck(row):
            try:
                health = yield self._containers.health(row)
            except Exception as exc:
                log.warn("health of {uuid} unavailable: {why}", uuid=row["uuid"], why=str(exc))
                health = None
            if health:
                inspected["State"]["Health"] = health
        return 200, inspected

    @_app.route("/containers/<ident>/start", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def start(self, request, identity, ident):
        row = yield self._get(identity, ident)
        if row["status"] == "running":
            return 304, None
        yield self._containers.start(row)
        return 204, None

    @_app.route("/containers/<ident>/stop", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def stop(self, request, identity, ident):
        timeout = qint(request, "t")
        row = yield self._get(identity, ident)
        if timeout is None:
            timeout = _stop_timeout(row)
        if row["status"] != "running":
            return 304, None
        yield self._containers.stop(row, max(0, timeout))
        return 204, None

    @_app.route("/containers/<ident>/kill", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def kill(self, request, identity, ident):
        try:
            signal = normalize_signal(qstr(request, "signal") or "SIGKILL")
        except ValueError as exc:
            raise BadRequest(f"Invalid signal: {exc}") from None
        row = yield self._get(identity, ident)
        if row["status"] != "running":
            raise DockerError(409, f"Container {ident} is not running")
        yield self._containers.kill(row, signal)
        return 204, None

    @_app.route("/containers/<ident>/restart", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def restart(self, request, identity, ident):
        timeout = qint(request, "t")
        row = yield self._get(identity, ident)
        if timeout is None:
            timeout = _stop_timeout(row)
        yield self._containers.restart(row, max(0, timeout))
        return 204, None

    @_app.route("/containers/prune", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def prune(self, request, identity):
        """
        ``docker container prune``: remove the project's containers that
        are not running (created, exited, dead; a paused one is running),
        those created before ``until`` and matching ``label`` / ``label!``
        when given.  A container that cannot be removed now (its agent
        away, or started meanwhile) is left and not listed: a prune does not
        wait for agents as a delete does.
        """
        until, labels, not_labels = _prune_filters(qstr(request, "filters"))
        policy.enforce("container:delete", identity, identity.project_id)
        rows = yield self._containers.list(identity)
        rows = [
            row for row in rows
            if row["status"] in PRUNABLE
            and (row["instance_uuid"] is None or self._hub.is_connected(row["instance_uuid"]))
            and (until is None or _unix(row["created_at"]) <= until)
            and _labels_match(row["labels"] or {}, labels, not_labels)
        ]
        removing = DeferredSemaphore(PRUNE_AT_ONCE)
        removed = yield gatherResults([removing.run(self._prune_one, row) for row in rows], consumeErrors=True)
        return 200, {"ContainersDeleted": [ident for ident in removed if ident], "SpaceReclaimed": 0}

    @inlineCallbacks
    def _prune_one(self, row):
        """
        The container's id once removed; None when it was not.
        """
        try:
            left = yield self._containers.delete(row)
        except (InvalidState, NotFound, InstanceUnavailable, EngineError, Conflict) as exc:
            log.info("prune left container {uuid}: {why}", uuid=row["uuid"], why=str(exc))
            return None
        if left is not None:
            # Marked deleting: its agent removes it when it connects again.
            return None
        return row["engine_id"] or row["uuid"]

    @_app.route("/containers/<ident>", methods=["DELETE"])
    @docker_endpoint()
    @inlineCallbacks
    def remove(self, request, identity, ident):
        force = qbool(request, "force")
        row = yield self._get(identity, ident)
        if row["status"] == "running" and not force:
            raise DockerError(
                409,
                f"You cannot remove a running container {row['engine_id']}. "
                "Stop the container before attempting removal or force remove",
            )
        yield self._containers.delete(row, force=True, volumes=qbool(request, "v"))
        return 204, None

    @_app.route("/containers/<ident>/pause", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def pause(self, request, identity, ident):
        row = yield self._get(identity, ident)
        if row["status"] != "running":
            raise DockerError(409, f"Container {ident} is not running")
        yield self._containers.pause(row, True)
        return 204, None

    @_app.route("/containers/<ident>/unpause", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def unpause(self, request, identity, ident):
        row = yield self._get(identity, ident)
        # The engine's answer for a container that is not paused is a 500.
        if row["status"] != "running" or not (yield self._containers.paused(row)):
            raise DockerError(409, f"Container {ident} is not paused")
        yield self._containers.pause(row, False)
        return 204, None

    @_app.route("/containers/<ident>/rename", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def rename(self, request, identity, ident):
        """
        A new name, unique in the caller's project (409 otherwise); the
        engine's own name (``csvc-<uuid>``) stays.
        """
        name = qstr(request, "name")
        if not name:
            raise BadRequest("name is required")
        if not re.fullmatch(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+", name):
            raise BadRequest(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        row = yield self._get(identity, ident)
        yield self._containers.rename(row, name.lstrip("/"))
        return 204, None

    @_app.route("/containers/<ident>/top", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def top(self, request, identity, ident):
        ps_args = qstr(request, "ps_args") or ""
        try:
            ps_args = " ".join(check_ps_args(ps_args))
        except UnsafePsArgs as exc:
            raise BadRequest(str(exc)) from None
        row = yield self._get(identity, ident)
        if row["status"] != "running":
            raise DockerError(409, f"Container {ident} is not running")
        top = yield self._containers.top(row, ps_args)
        return 200, {"Titles": top.get("Titles") or [], "Processes": top.get("Processes") or []}

    @_app.route("/containers/<ident>/stats", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def stats(self, request, identity, ident):
        """
        One sample (``stream=false`` or ``one-shot``), else the engine's
        stream: one JSON document per line about every second, until the
        client goes away or the container stops.
        """
        row = yield self._get(identity, ident)
        if not qbool(request, "stream", default=True) or qbool(request, "one-shot"):
            stats = yield self._containers.stats(row)
            stats["name"] = "/" + row["name"]
            return 200, stats
        name = "/" + row["name"]

        def named(line):
            try:
                sample = json.loads(line)
            except ValueError:
                return b""
            sample["name"] = name
            return json.dumps(sample).encode("utf-8") + b"\n"

        def stopped(line):
            # The engine goes on sending zeroed samples once the container
            # stopped; csvc ends the stream after the first.
            try:
                return str(json.loads(line).get("read", "")).startswith("0001-")
            except (ValueError, AttributeError):
                return False

        yield self._download(request, row, ident, "stats", {}, b"application/json", transform=named,
                             is_last=stopped)
        return None

    # -- filesystem --------------------------------------------------------

    @inlineCallbacks
    def _download(self, request, row, ident, kind, options, content_type, transform=None, is_last=None):
        """
        Relay a download from the container's agent as the response: the
        status and headers once the agent answered, then the body as it
        comes, the response being the producer's consumer (a client that
        stops reading stops the agent reading the engine).
        """
        with (yield self._transfer_session(row)):
            try:
                info, consumer = yield self._containers.download(row, kind, options, request, transform, is_last)
            except NoSuchPath as exc:
                raise DockerError(404, _engine_words(str(exc), row, ident)) from None
            request.setResponseCode(200)
            request.setHeader(b"Content-Type", content_type)
            if info.get("path_stat"):
                request.setHeader(b"X-Docker-Container-Path-Stat", info["path_stat"].encode("ascii"))
            request._csvc_streaming = True
            consumer.begin()
            yield consumer.done

    @inlineCallbacks
    def _transfer_session(self, row):
        """
        A transfer holds an engine stream on the instance while it lasts:
        it counts as one of the project's open sessions (the
        ``attach_sessions`` quota) until the context it is ends.
        """
        yield self._relay.check_session_quota(row)
        return TransferSession(self._relay.sessions, row["project_id"])

    @_app.route("/containers/<ident>/changes", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def changes(self, request, identity, ident):
        row = yield self._get(identity, ident)
        yield self._download(request, row, ident, "changes", {}, b"application/json")
        return None

    @_app.route("/containers/<ident>/export", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def export(self, request, identity, ident):
        row = yield self._get(identity, ident)
        yield self._download(request, row, ident, "export", {}, b"application/x-tar")
        return None

    def _archive_path(self, request):
        path = qstr(request, "path")
        if not path:
            raise BadRequest("bad parameter: path cannot be empty")
        return path

    @_app.route("/containers/<ident>/archive", methods=["GET", "HEAD"])
    @docker_endpoint()
    @inlineCallbacks
    def archive_get(self, request, identity, ident):
        """
        GET: a tar of ``path`` in the container, its stat in the
        ``X-Docker-Container-Path-Stat`` header.  HEAD: only the header.
        """
        path = self._archive_path(request)
        row = yield self._get(identity, ident)
        if request.method == b"HEAD":
            try:
                stat = yield self._containers.archive_stat(row, path)
            except NoSuchPath as exc:
                raise DockerError(404, _engine_words(str(exc), row, ident)) from None
            request.setHeader(b"X-Docker-Container-Path-Stat", stat.encode("ascii"))
            request.setHeader(b"Content-Type", b"application/json")
            return 200, None
        yield self._download(request, row, ident, "archive", {"path": path}, b"application/x-tar")
        return None

    @_app.route("/containers/<ident>/archive", methods=["PUT"])
    @docker_endpoint()
    @inlineCallbacks
    def archive_put(self, request, identity, ident):
        """
        Extract the tar of the body at ``path`` in the container; the body
        goes to the agent in bounded chunks.
        """
        path = self._archive_path(request)
        length = request.getHeader(b"Content-Length")
        if length is not None and length.isdigit() and int(length) > MAX_ARCHIVE:
            raise PayloadTooLarge(f"an archive of {int(length)} bytes exceeds {MAX_ARCHIVE}")
        row = yield self._get(identity, ident)
        source = request.content
        # twisted.web has the body in a temporary file by now; it is read
        # from there a chunk at a time, never whole.
        source.seek(0, 2)
        size = source.tell()
        source.seek(0)
        if size > MAX_ARCHIVE:
            raise PayloadTooLarge(f"an archive of {size} bytes exceeds {MAX_ARCHIVE}")
        options = {
            "path": path,
            "noOverwriteDirNonDir": qbool(request, "noOverwriteDirNonDir"),
            "copyUIDGID": qbool(request, "copyUIDGID"),
        }
        with (yield self._transfer_session(row)):
            sending = self._containers.upload(row, source, size, options)
            # A client that goes away cancels the upload on the agent.
            request.notifyFinish().addErrback(lambda _: sending.cancel())
            try:
                yield sending
            except NoSuchPath as exc:
                raise DockerError(404, _engine_words(str(exc), row, ident)) from None
        return 200, None

    # -- update ------------------------------------------------------------

    @_app.route("/containers/<ident>/update", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def update(self, request, identity, ident):
        """
        Change resources (counted against the project's quota like a
        create's) and the restart policy; refused options stay refused.
        """
        body = self._read_body(request, "POST /containers/{id}/update")
        docker_options.enforce({"HostConfig": body}, identity)
        changes = update_within(docker_options.update_fields(body), self._containers.confinement,
                                admin=identity.is_admin)
        row = yield self._get(identity, ident)
        restart = (changes.get("RestartPolicy") or {}).get("Name") or "no"
        if row["remove_on_exit"] and restart != "no":
            raise BadRequest("Restart policy cannot be updated because AutoRemove is enabled for the container")
        memory = _memory_mib(changes["Memory"]) if changes.get("Memory") else None
        cpu = None
        if {"NanoCpus", "CpuQuota", "CpuPeriod"} & set(changes):
            stored = ((row.get("docker_config") or {}).get("HostConfig") or {})
            cpu = _cpus(dict(stored, **changes)) or 0
        _updated, warnings = yield self._containers.update(row, changes, memory, cpu)
        return 200, {"Warnings": warnings or []}

    # -- volumes -----------------------------------------------------------
    #
    # A project's named volumes (the engine's ``csvc-<project>-<name>``, shown
    # as ``<name>``).  Limitation: a volume lives on one engine, and these
    # routes reach only the first active instance the project may use; on a
    # deployment of several instances a container placed elsewhere gets its
    # own, separate volume of the same name.

    def _volume_name(self, name):
        if not name or not docker_options.VOLUME_NAME.fullmatch(name):
            raise BadRequest(f"invalid volume name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        return name

    @_app.route("/volumes", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def volumes(self, request, identity):
        """
        The project's volumes on the first active instance it may use.
        """
        policy.enforce("volume:list", identity)
        listed = yield self._volumes.list(identity.project_id)
        return 200, {"Volumes": listed, "Warnings": []}

    @_app.route("/volumes/create", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def volume_create(self, request, identity):
        """
        Create on the first active instance the project may use (the
        instance its next container is most likely placed on).
        """
        body = self._read_body(request, "POST /volumes/create")
        policy.enforce("volume:create", identity)
        if body.get("Driver") not in (None, "", "local") or body.get("DriverOpts"):
            policy.enforce("container:create:volume_driver", identity)
            raise BadRequest("only the local volume driver without options is supported")
        name = body.get("Name") or uuidlib.uuid4().hex + uuidlib.uuid4().hex
        labels = body.get("Labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            raise BadRequest("Labels: must be an object of strings")
        volume = yield self._volumes.create(identity.project_id, self._volume_name(name), labels)
        return 201, volume

    @_app.route("/volumes/prune", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def volume_prune(self, request, identity):
        """
        ``docker volume prune``: remove the project's volumes no container
        uses.  From API 1.42 on, as Docker, only anonymous ones (those csvc
        made for anonymous mounts, labelled as Docker labels them) unless
        the filter ``all`` is true; ``label`` / ``label!`` as for containers.
        """
        policy.enforce("volume:delete", identity)
        every, labels, not_labels = _volume_prune_filters(qstr(request, "filters"))
        if version_tuple(self._version(request)) < (1, 42):
            every = True
        listed = yield self._volumes.list(identity.project_id)
        deleted = []
        for volume in listed:
            volume_labels = volume.get("Labels") or {}
            if not every and agent_docker_config.ANONYMOUS_VOLUME not in volume_labels:
                continue
            if not _labels_match(volume_labels, labels, not_labels):
                continue
            try:
                yield self._volumes.remove(identity.project_id, volume["Name"])
            except (Conflict, NoSuchVolume):
                # In use (or gone meanwhile): Docker leaves it too.
                continue
            deleted.append(volume["Name"])
        return 200, {"VolumesDeleted": deleted, "SpaceReclaimed": 0}

    @_app.route("/volumes/<name>", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def volume_inspect(self, request, identity, name):
        policy.enforce("volume:get", identity)
        try:
            volume = yield self._volumes.inspect(identity.project_id, self._volume_name(name))
        except NoSuchVolume:
            raise DockerError(404, f"get {name}: no such volume") from None
        return 200, volume

    @_app.route("/volumes/<name>", methods=["DELETE"])
    @docker_endpoint()
    @inlineCallbacks
    def volume_remove(self, request, identity, name):
        policy.enforce("volume:delete", identity)
        try:
            yield self._volumes.remove(identity.project_id, self._volume_name(name), qbool(request, "force"))
        except NoSuchVolume:
            raise DockerError(404, f"get {name}: no such volume") from None
        except Conflict:
            raise DockerError(409, f"remove {name}: volume is in use") from None
        return 204, None

    @_app.route("/containers/<ident>/resize", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def resize(self, request, identity, ident):
        height, width = qint(request, "h", 0), qint(request, "w", 0)
        row = yield self._get(identity, ident)
        if height > 0 and width > 0 and row["status"] == "running":
            yield self._containers.resize(row, height, width)
        return 200, None

    @_app.route("/containers/<ident>/wait", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def wait(self, request, identity, ident):
        condition = qstr(request, "condition") or "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise BadRequest(f"invalid condition: {condition!r}")
        row = yield self._get(identity, ident)
        uuid = row["uuid"]
        # The status line and headers go out now; the body when it is known.
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", b"application/json")
        request._csvc_streaming = True
        request.write(b"")
        first_finish = row["finished_at"]
        exit_code = row["exit_code"]
        error = None
        while True:
            waiter = self._journal.wait_state(uuid)
            current = yield self._store.get_container(uuid)
            if current is None:
                self._journal.cancel_wait(uuid, waiter)
                if condition == "removed" or exit_code is not None:
                    break
                error = "the container was removed before it exited"
                break
            exit_code = current["exit_code"] if current["exit_code"] is not None else exit_code
            live = current["status"] in LIVE
            if condition == "not-running" and current["status"] != "running" and current["status"] != "creating":
                self._journal.cancel_wait(uuid, waiter)
                break
            if condition == "next-exit" and not live and current["finished_at"] != first_finish:
                self._journal.cancel_wait(uuid, waiter)
                break
            if condition == "next-exit" and not live and current["status"] == "error":
                self._journal.cancel_wait(uuid, waiter)
                error = current["status_reason"]
                break
            if condition == "removed" and not live and not current["remove_on_exit"]:
                # Nothing will remove it: waiting longer would wait forever,
                # as with Docker when --rm was not given.
                pass
            yield waiter
        body = {"StatusCode": exit_code if exit_code is not None else 0, "Error": None}
        if error:
            body["Error"] = {"Message": error}
        request.write(json.dumps(body).encode() + b"\n")
        return b""

    @_app.route("/containers/<ident>/logs", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def logs(self, request, identity, ident):
        stdout, stderr = qbool(request, "stdout"), qbool(request, "stderr")
        if not (stdout or stderr):
            raise BadRequest("You must choose at least one stream")
        follow = qbool(request, "follow")
        timestamps = qbool(request, "timestamps")
        tail = qstr(request, "tail", "all")
        since, until = _time_param(request, "since"), _time_param(request, "until")
        row = yield self._get(identity, ident)
        streams = {s for s, on in ((1, stdout), (2, stderr)) if on}
        after, first = 0, None
        if tail not in ("all", "", None):
            try:
                lines = int(tail)
            except ValueError:
                lines = -1
            if lines == 0:
                after = row["last_seq"]
            elif lines > 0:
                after, first = yield tail_position(self._store, row["uuid"], lines, streams)
        tty = bool(row["tty"])

        def encode(stream, data, at):
            if since is not None and at is not None and at < since:
                return b""
            if until is not None and at is not None and at > until:
                return b""
            # (at None: csvc's own marker of dropped output, not a line of it)
            if timestamps and at is not None:
                stamp = (
                    datetime.fromtimestamp(at or 0, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z "
                ).encode()
                data = b"".join(stamp + line for line in data.splitlines(keepends=True))
            return data if tty else _frames(stream, data)

        request.setResponseCode(200)
        request.setHeader(b"Content-Type", RAW.encode() if tty else MULTIPLEXED.encode())
        request._csvc_streaming = True
        request.write(b"")
        stream = LogStream(request, self._store, self._journal, row["uuid"], after, streams, follow, first,
                           encode=encode)
        yield stream.start()
        return None

    # -- exec --------------------------------------------------------------

    @_app.route("/containers/<ident>/exec", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def exec_create(self, request, identity, ident):
        body = self._read_body(request, "POST /containers/{id}/exec")
        command = _string_list(body.get("Cmd"), "Cmd")
        if not command:
            raise BadRequest("No exec command specified")
        row = yield self._get(identity, ident)
        if row["status"] != "running":
            raise DockerError(409, f"Container {row['engine_id']} is not running")
        spec = {
            "command": command,
            "tty": bool(body.get("Tty")),
            "interactive": bool(body.get("AttachStdin")),
            "environment": _env_dict(body.get("Env")),
            "workdir": body.get("WorkingDir") or None,
            "user": body.get("User") or None,
        }
        exec_id = yield self._containers.exec_create(row, spec)
        self._execs.add(ExecState(exec_id, row, identity.project_id, spec))
        return 201, {"Id": exec_id}

    def _exec(self, identity, exec_id):
        state = self._execs.get(exec_id, identity.project_id)
        if state is None:
            raise DockerError(404, f"No such exec instance: {exec_id}")
        return state

    @_app.route("/exec/<exec_id>/start", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def exec_start(self, request, identity, exec_id):
        body = self._read_body(request, "POST /exec/{id}/start")
        state = self._exec(identity, exec_id)
        if state.running or state.exit_code is not None:
            raise DockerError(409, f"exec {exec_id} has already run")
        if body.get("Detach"):
            # Running, it holds one of the project's attach sessions.
            slot = yield self._relay.hold_session(state.row, ExecSlot(state.project_id))
            detached = DetachedExec(state, lambda: self._relay.sessions.discard(slot))
            try:
                self._containers.execs.claim(exec_id, detached, state.row["uuid"])
            except Exception:
                self._relay.sessions.discard(slot)
                raise
            state.running = True
            d = self._containers.exec_start(state.row, exec_id, bool(state.spec.get("tty")))

            def failed(failure):
                self._containers.execs.discard(exec_id)
                detached.failed(failure.value)

            d.addErrback(failed)
            return 200, None
        tty = bool(body.get("Tty", state.spec.get("tty")))
        state.spec["tty"] = tty
        multiplexed = not tty and version_tuple(self._version(request)) >= (1, 42)
        yield self._relay.check_session_quota(state.row)
        protocol = DockerExecStream(self._containers, state, self._clock, sessions=self._relay.sessions)
        return HijackResource(protocol, MULTIPLEXED if multiplexed else RAW, self._clock)

    @_app.route("/exec/<exec_id>/json", methods=["GET"])
    @docker_endpoint()
    def exec_inspect(self, request, identity, exec_id):
        state = self._exec(identity, exec_id)
        command = state.spec["command"]
        return 200, {
            "ID": exec_id,
            "Running": state.running,
            "ExitCode": state.exit_code,
            "ProcessConfig": {
                "tty": bool(state.spec.get("tty")),
                "entrypoint": command[0],
                "arguments": command[1:],
                "privileged": False,
                "user": state.spec.get("user") or "",
            },
            "OpenStdin": bool(state.spec.get("interactive")),
            "OpenStderr": True,
            "OpenStdout": True,
            "CanRemove": False,
            "ContainerID": state.row["engine_id"],
            "DetachKeys": "",
            "Pid": 0,
        }

    @_app.route("/exec/<exec_id>/resize", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def exec_resize(self, request, identity, exec_id):
        height, width = qint(request, "h", 0), qint(request, "w", 0)
        state = self._exec(identity, exec_id)
        if state.context is not None and height > 0 and width > 0:
            yield state.context.resize(height, width)
        return 200, None

    # -- attach ------------------------------------------------------------

    def _stream_options(self, request):
        return {
            "stdin": qbool(request, "stdin"),
            "stdout": qbool(request, "stdout"),
            "stderr": qbool(request, "stderr"),
            "logs": qbool(request, "logs"),
            "stream": qbool(request, "stream"),
        }

    @_app.route("/containers/<ident>/attach", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def attach(self, request, identity, ident):
        options = self._stream_options(request)
        row = yield self._get(identity, ident)
        if row["status"] not in LIVE and not options["logs"]:
            raise DockerError(409, "You cannot attach to a stopped container, start it first")
        streams = {s for s, key in ((1, "stdout"), (2, "stderr")) if options[key]}
        next_seq = 1 if options["logs"] else max(self._journal.queued_seq(row["uuid"]), row["last_seq"]) + 1
        tty = bool(row["tty"])
        multiplexed = not tty and version_tuple(self._version(request)) >= (1, 42)
        yield self._relay.check_session_quota(row)
        protocol = DockerAttachStream(
            self._containers, self._journal, self._store, row, streams, options["stdin"], next_seq,
            self._clock, throttle=self._relay.throttle, sessions=self._relay.sessions,
        )
        return HijackResource(protocol, MULTIPLEXED if multiplexed else RAW, self._clock)

    @_app.route("/containers/<ident>/attach/ws", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def attach_ws(self, request, identity, ident):
        row = yield self._get(identity, ident)
        if b"websocket" not in (request.getHeader(b"Upgrade") or b"").lower():
            # (Else the WebSocket library answers a 200 with a page of HTML.)
            raise BadRequest("attach/ws is a WebSocket: the request must ask for it (Upgrade: websocket)")
        options = {
            "stdin": qbool(request, "stdin"),
            "stdout": qbool(request, "stdout"),
            "stderr": qbool(request, "stderr"),
            "logs": qbool(request, "logs"),
        }
        self._relay.check_attachable(row, options)
        yield self._relay.check_session_quota(row)
        return self._relay.upgrade(request, row, options, raw_only=True)


class TransferSession:
    """
    An open transfer in the relay's sessions (counted per project) while
    its ``with`` block lasts.
    """

    def __init__(self, sessions, project_id):
        self.project_id = project_id
        self._sessions = sessions
        sessions.add(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._sessions.discard(self)
        return False


def _port_list(ports):
    """
    ``docker ps``'s ``Ports`` from inspect's ``NetworkSettings.Ports``.
    """
    out = []
    for port, bindings in sorted(ports.items()):
        number, _, kind = port.partition("/")
        for binding in bindings or []:
            entry = {"PrivatePort": int(number), "Type": kind or "tcp"}
            if binding.get("HostPort"):
                entry.update(IP=binding.get("HostIp") or "", PublicPort=int(binding["HostPort"]))
            out.append(entry)
    return out


#: Docker's CFS period when a CpuQuota comes without one (100 ms).
CPU_PERIOD = 100_000


def _cpus(host):
    """
    The CPUs a HostConfig's limit amounts to, as the quota counts them:
    ``NanoCpus``, else ``CpuQuota`` over ``CpuPeriod``; None without a limit
    (or with values of the wrong type, which validation reports).
    """
    nano = host.get("NanoCpus")
    if isinstance(nano, int) and not isinstance(nano, bool) and nano > 0:
        return nano / 1e9
    quota, period = host.get("CpuQuota"), host.get("CpuPeriod") or CPU_PERIOD
    if isinstance(quota, int) and not isinstance(quota, bool) and quota > 0 and isinstance(period, int) \
            and period > 0:
        return quota / period
    return None


def _memory_mib(memory):
    """
    A memory limit in bytes as the MiB the quota counts (at least Docker's
    minimum of 6 MiB).
    """
    return max(6, int(memory) // (1024 * 1024))


def _engine_words(message, row, ident):
    """
    The engine's message with its name of the container (``csvc-<uuid>``)
    replaced by the one the client used.
    """
    return message.replace(f"csvc-{row['uuid']}", ident)


def _has_healthcheck(row):
    test = (((row.get("docker_config") or {}).get("Config") or {}).get("Healthcheck") or {}).get("Test")
    return bool(test) and test != ["NONE"]


def _stop_timeout(row):
    """
    Docker's default for a stop without ``t``: the container's StopTimeout,
    else 10 seconds.
    """
    value = ((row.get("docker_config") or {}).get("Config") or {}).get("StopTimeout")
    return value if isinstance(value, int) else 10


def _volume_mounts(docker_config, container_uuid):
    """
    Inspect's (and the listing's) ``Mounts`` for a container's binds, named
    volumes and anonymous volumes of ``Config.Volumes`` (named by csvc, see
    ``csvc.agent.docker_config``; an image's own ``VOLUME`` paths are known
    only to its instance, and are not here).
    """
    host = docker_config.get("HostConfig") or {}
    out = []
    for entry in host.get("Binds") or []:
        parts = entry.split(":")
        options = parts[2].split(",") if len(parts) > 2 else []
        out.append({"Type": "bind" if parts[0].startswith("/") else "volume",
                    "Name": "" if parts[0].startswith("/") else parts[0],
                    "Source": parts[0] if parts[0].startswith("/") else "",
                    "Destination": parts[1], "Driver": "local", "Mode": ",".join(options),
                    "RW": "ro" not in options, "Propagation": ""})
    for mount in host.get("Mounts") or []:
        kind = mount.get("Type") or "volume"
        out.append({"Type": kind, "Name": mount.get("Source", "") if kind == "volume" else "",
                    "Source": mount.get("Source", "") if kind == "bind" else "",
                    "Destination": mount["Target"], "Driver": "local" if kind == "volume" else "",
                    "Mode": "", "RW": not mount.get("ReadOnly"), "Propagation": ""})
    for target in agent_docker_config.anonymous_targets((docker_config.get("Config") or {}).get("Volumes"), host):
        out.append({"Type": "volume", "Name": agent_docker_config.anonymous_volume(container_uuid, target),
                    "Source": "", "Destination": target, "Driver": "local", "Mode": "", "RW": True,
                    "Propagation": ""})
    return out


def _networks_of(row):
    """
    The project's networks a container is on (as created, connected and
    disconnected through csvc), known there by its name too: inspect's and
    the listing's ``NetworkSettings.Networks``.
    """
    endpoints = ((row.get("docker_config") or {}).get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    return {
        network: {"Aliases": [row["name"]] + [a for a in endpoint.get("Aliases") or [] if a != row["name"]],
                  "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "", "MacAddress": ""}
        for network, endpoint in endpoints.items()
    }


def _with_options(inspected, row):
    """
    Inspect with the client's honoured options reflected in ``Config`` and
    ``HostConfig`` (and ``Mounts``, ``NetworkSettings.Ports``).
    """
    docker_config = row.get("docker_config")
    if not docker_config:
        return inspected
    config = docker_config.get("Config") or {}
    host = docker_config.get("HostConfig") or {}
    inspected["Config"].update(config)
    inspected["HostConfig"].update(host)
    if (host.get("CpuQuota") or host.get("CpuPeriod")) and not host.get("NanoCpus"):
        # The quota's cpu came from the CFS quota, not from NanoCpus.
        inspected["HostConfig"]["NanoCpus"] = 0
    restart = host.get("RestartPolicy")
    if restart and not restart.get("Name"):
        inspected["HostConfig"]["RestartPolicy"] = {"Name": "no", "MaximumRetryCount": 0}
    inspected["Mounts"] = _volume_mounts(docker_config, row["uuid"])
    networks = _networks_of(row)
    if networks:
        inspected["NetworkSettings"]["Networks"] = networks
    if host.get("PortBindings"):
        inspected["NetworkSettings"]["Ports"] = {port: bindings for port, bindings in host["PortBindings"].items()}
    return inspected


def _frames(stream, data):
    from csvc.stdio.frames import encode_frame

    return encode_frame(stream, data) if data else b""


def _time_param(request, name):
    text = qstr(request, name)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise BadRequest(f"invalid value for {name}: {text!r}") from None
    return value if value > 0 else None


def _full_image(image):
    last = image.rsplit("/", 1)[-1]
    if "@" in image or ":" in last:
        return image
    return image + ":latest"


def _prune_filters(text):
    """
    ``(until, labels, not_labels)`` of a prune's ``filters``: ``until`` a
    Unix time (None: no limit), the others lists of ``key`` or
    ``key=value``.
    """
    filters = docker_events.parse_filters(text, ("until", "label", "label!"), "container prunes")
    until = filters.get("until", [])
    if len(until) > 1:
        raise BadRequest("filter until: only one value is allowed")
    return (_until(until[0]) if until else None), filters.get("label", []), filters.get("label!", [])


def _volume_prune_filters(text):
    """
    ``(all, labels, not_labels)`` of a volume prune's ``filters``.
    """
    filters = docker_events.parse_filters(text, ("all", "label", "label!"), "volume prunes")
    every = filters.get("all", [])
    if any(w not in ("true", "1", "false", "0") for w in every):
        raise BadRequest(f"filter all: {every!r} is not true or false")
    return any(w in ("true", "1") for w in every), filters.get("label", []), filters.get("label!", [])


def _prune_filters_any(text):
    """
    The filters of a prune that removes nothing, read all the same so that
    a malformed one is still a 400 naming it.
    """
    for value in docker_events.parse_filters(text, None).get("until", []):
        _until(value)


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
#: One term of a Go duration (``1h30m`` has two).
_GO_TERM = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
_GO_DURATION = re.compile(f"(?:{_GO_TERM.pattern})+")


def _until(value, now=None):
    """
    Docker's ``until``: a Unix time (``1700000000``, fractions allowed),
    an RFC 3339 time or date (UTC when it names no offset), or a Go
    duration before now (``10m``, ``1h30m``).
    """
    now = datetime.now(timezone.utc).timestamp() if now is None else now
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    if _GO_DURATION.fullmatch(value):
        return now - sum(float(n) * _GO_UNITS[unit] for n, unit in _GO_TERM.findall(value))
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(
            f"filter until: {value!r} is neither a Unix time, an RFC 3339 time nor a duration such as 10m"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _label_matches(labels, item):
    name, sep, value = item.partition("=")
    return name in labels and (not sep or labels[name] == value)


def _labels_match(labels, wanted, unwanted):
    """
    Docker's rule: every ``label`` matches, and not every ``label!`` does.
    """
    if not all(_label_matches(labels, item) for item in wanted):
        return False
    return not (unwanted and all(_label_matches(labels, item) for item in unwanted))


#: The filters ``GET /networks`` understands.
NETWORK_FILTERS = ("name", "id", "label", "driver", "type", "scope")


def _network_matches(network, filters):
    """
    Docker's network list filters: ``name`` and ``id`` match a part of
    each (``id`` its start), ``label`` as for containers, ``type`` custom or
    builtin, ``scope`` local (all of csvc's).
    """
    checks = {
        "name": lambda w: w in network["Name"],
        "id": lambda w: network["Id"].startswith(w),
        "label": lambda w: _label_matches(network.get("Labels") or {}, w),
        "driver": lambda w: network.get("Driver") == w,
        "type": lambda w: (w == "builtin") == (network["Name"] in RESERVED_NETWORKS),
        "scope": lambda w: network.get("Scope", "local") == w,
    }
    # Each label must match; of the other filters' values, any one.
    return all((all if key == "label" else any)(checks[key](w) for w in wanted) for key, wanted in filters.items())


def _network_options(body):
    """
    The options of a network create csvc honours (``Labels``, ``Internal``,
    ``Attachable``); a 400 naming any other that is set: csvc's networks are
    bridge networks of one instance, addressed by the engine's defaults.
    """
    if body.get("Driver") not in (None, "", "bridge"):
        raise BadRequest(f"Driver: only bridge networks are supported ({body['Driver']!r})")
    ipam = body.get("IPAM") or {}
    if not isinstance(ipam, dict) or ipam.get("Driver") not in (None, "", "default") or ipam.get("Config") \
            or ipam.get("Options"):
        raise BadRequest("IPAM: csvc chooses a network's addresses itself (no subnets, ranges or drivers)")
    for field in ("Options", "Ingress", "EnableIPv6", "ConfigOnly", "ConfigFrom"):
        if body.get(field):
            raise BadRequest(f"{field}: not supported by csvc's networks")
    if body.get("Scope") not in (None, "", "local"):
        raise BadRequest(f"Scope: csvc's networks are local to one instance ({body['Scope']!r})")
    labels = body.get("Labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise BadRequest("Labels: must be an object of strings")
    for field in ("Internal", "Attachable", "CheckDuplicate"):
        if not isinstance(body.get(field, False), bool):
            raise BadRequest(f"{field}: must be a boolean")
    return {"Labels": labels, "Internal": bool(body.get("Internal")), "Attachable": bool(body.get("Attachable"))}


def _body_container(body):
    ident = body.get("Container")
    if not isinstance(ident, str) or not ident:
        raise BadRequest("Container: the container's id or name is required")
    return ident


def _unix_rfc3339(text):
    """
    A Unix time from an RFC 3339 time as Docker writes one (nanoseconds and
    all); 0 for none.
    """
    if not text:
        return 0
    match = re.fullmatch(r"(.*?T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        return 0
    base, fraction, zone = match.groups()
    when = datetime.fromisoformat(base + (fraction or "")[:7] + ("+00:00" if zone == "Z" else zone))
    return when.timestamp()


#: The filters ``GET /containers/json`` understands.
LIST_FILTERS = ("label", "status", "name", "id", "ancestor")


def _list_filters(text):
    """
    The filters of a container list: ``parse_filters`` with
    ``LIST_FILTERS``, each ``name`` compiled once with RE2 (linear time; a
    400 naming the filter when invalid).
    """
    filters = docker_events.parse_filters(text, LIST_FILTERS, "container lists")
    if "name" in filters:
        filters["name"] = [docker_events.name_pattern(w) for w in filters["name"]]
    return filters


def _matches(row, filters):
    """
    ``filters`` from ``_list_filters``.
    """
    for key, wanted in filters.items():
        if key == "label":
            if not _labels_match(row["labels"] or {}, wanted, ()):
                return False
        elif key == "status":
            if DOCKER_STATUS.get(row["status"], row["status"]) not in wanted:
                return False
        elif key == "name":
            # Docker matches its names, which start with "/" (``^/web``);
            # csvc's own form without it matches too (``^web``).
            names = ("/" + row["name"], row["name"])
            if not any(pattern.search(name) for pattern in wanted for name in names):
                return False
        elif key == "id":
            ids = [row["uuid"], row["engine_id"] or ""]
            if not any(i.startswith(w) for w in wanted for i in ids):
                return False
        elif key == "ancestor":
            if not any(_full_image(w) == row["image"] for w in wanted):
                return False
    return True
