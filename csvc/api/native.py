"""
The native REST API, ``/v1``, modelled on OpenStack Zun's.
"""

import json
import uuid as uuidlib
from datetime import datetime
from functools import wraps

from klein import Klein
from twisted.web.resource import IResource
from werkzeug.exceptions import HTTPException
from twisted.internet.defer import CancelledError, inlineCallbacks
from twisted.logger import Logger

from csvc.api.errors import Forbidden, PayloadTooLarge, classify
from csvc.api.front import redact_uri
from csvc.api.logs import LogStream, tail_position
from csvc.api.schemas import QUERY, CONTAINER_CREATE, BadRequest, read_query, validate
from csvc.api import openapi
from csvc.api.ui import TerminalUI
from csvc.api.auth import Unauthorized
from csvc.compute.service import NotFound, normalize_signal
from csvc.agents.hub import InstanceUnavailable
from csvc.api.schemas import EXEC_CREATE, QUOTA_UPDATE, SUBSCRIPTION_CREATE
from csvc.notify.subscriptions import SubscriptionNotFound
from csvc.policy import enforce
from csvc.api.schemas import INSTANCE_REGISTER
from csvc.scheduler.instances import InstanceConflict
from csvc.store.capacity import empty_usage, usage_of
from csvc.store.quotas import RESOURCES
from csvc.compute import states
from csvc.relay.exec_attach import exec_upgrade
from csvc.agents.execs import ExecClaimed, ExecSlot

#: Largest request body accepted, checked before it is parsed.
MAX_BODY = 1024 * 1024

API_VERSION = "1.0"

HTTP_STATUS_TITLES = {404: "Not Found", 405: "Method Not Allowed"}

log = Logger()


def _iso(value):
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds") + "Z"
    return value


def container_view(row):
    return {
        "uuid": row["uuid"],
        "name": row["name"],
        "project_id": row["project_id"],
        "user_id": row.get("user_id"),
        "image": row["image"],
        "command": row["command"],
        "environment": row["environment"],
        "workdir": row["workdir"],
        "labels": row["labels"],
        "tty": row["tty"],
        "interactive": row["interactive"],
        "memory": row["memory"],
        "cpu": row["cpu"],
        "auto_remove": row["auto_remove"],
        "status": row["status"],
        "status_reason": row["status_reason"],
        "exit_code": row["exit_code"],
        "instance": row["instance_uuid"],
        "created_at": _iso(row["created_at"]),
        "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
    }


def subscription_view(row):
    return {
        "uuid": row["uuid"],
        "project_id": row["project_id"],
        "url": row["url"],
        "event_types": list(row["event_types"]),
        "created_at": _iso(row["created_at"]),
    }


def instance_view(row, connected):
    return {
        "uuid": row["uuid"],
        "name": row["name"],
        "provider": row["provider"],
        "status": row["status"],
        # Whether its agent is connected to this control plane now (status
        # says what the store last knew: after a restart, "active" before
        # the agent has registered again).
        "connected": connected,
        # Its size: containers, memory (MiB) and cores (null: not known, not
        # limited); and what its containers use of it (memory and cpu: the
        # live ones', a container without limits counting 0).
        "capacity": row["capacity"],
        "memory": row.get("memory"),
        "cpus": row.get("cpus"),
        "usage": dict(row.get("usage") or empty_usage()),
        "containers": row.get("containers", 0),
        "hostname": row["hostname"],
        "engine": row["engine"],
        "shared": row["shared"],
        "project_id": row.get("project_id"),
        "created_at": _iso(row["created_at"]),
        "last_seen_at": _iso(row["last_seen_at"]),
    }


class Streamed:
    """
    The handler wrote the response itself.
    """


def send_json(request, status, body):
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(body, default=_iso).encode("utf-8")


def send_error(request, status, title, message, request_id):
    return send_json(
        request,
        status,
        {"error": {"code": status, "title": title, "message": message, "request_id": request_id}},
    )


def endpoint(public=False):
    """
    Owns a route's JSON out, authentication, query checking and error
    mapping.  The handler gets ``(request, identity, **route_args)``, and
    ``query=`` (the checked, typed query) when ``schemas.QUERY`` lists
    parameters for it; any query parameter it does not list is a 400.  It
    returns ``(status, body)`` (``body`` None for no content) or ``Streamed``.
    """

    def decorator(handler):
        parameters = QUERY.get(handler.__name__)

        @wraps(handler)
        @inlineCallbacks
        def route(self, request, **kwargs):
            request_id = "req-" + str(uuidlib.uuid4())
            request.setHeader(b"X-Openstack-Request-Id", request_id.encode())
            try:
                identity = None
                if not public:
                    identity = yield self.auth.authenticate(
                        _header(request, b"X-Auth-Token"), _header(request, b"X-Auth-Project-Id")
                    )
                query = read_query(request, parameters or {})
                if parameters is not None:
                    kwargs["query"] = query
                result = yield handler(self, request, identity, **kwargs)
            except Exception as exc:
                if isinstance(exc, CancelledError) and request.channel is None:
                    # Klein cancels the handler when the client goes away:
                    # there is no one left to answer.
                    return None
                known = classify(exc)
                if getattr(exc, "retry_after", None):
                    request.setHeader(b"Retry-After", b"%d" % exc.retry_after)
                if known is None:
                    log.failure("unexpected error in {path}", path=_logged_path(request), request_id=request_id)
                    known = (500, "Internal Server Error", f"unexpected error (request id {request_id})")
                elif known[0] >= 500:
                    log.warn("{path}: {message}", path=_logged_path(request), message=known[2])
                return send_error(request, *known, request_id)
            if result is Streamed:
                return None
            if IResource.providedBy(result):
                return result
            status, body = result
            if body is None:
                request.setResponseCode(status)
                return b""
            return send_json(request, status, body)

        return route

    return decorator


def _logged_path(request):
    # The one-time attach token is in its path: never in a log line.
    return redact_uri(request.path.decode("latin-1"))


def _is_websocket(request):
    upgrade = request.getHeader(b"Upgrade")
    return upgrade is not None and upgrade.strip().lower() == b"websocket"


def _header(request, name):
    value = request.getHeader(name)
    return value.decode("latin-1").strip() if value else None


def read_json(request, schema):
    length = request.getHeader(b"Content-Length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise PayloadTooLarge(f"the body is {int(length)} bytes; at most {MAX_BODY} are accepted")
    raw = request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise PayloadTooLarge(f"the body exceeds {MAX_BODY} bytes")
    try:
        document = json.loads(raw or b"null")
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest("the body must be a JSON object")
    validate(document, schema)
    return document


def _check_project(project):
    """
    A project id is at most 64 characters (what the store keeps).
    """
    if len(project) > 64:
        raise BadRequest("path segment 'project': must be at most 64 characters long")


class NativeAPI:
    _app = Klein()

    def __init__(self, auth, containers, store, journal, relay=None, subscriptions=None, instances=None,
                 networks=None):
        self.relay = relay
        #: ``csvc.compute.networks.ProjectNetworks``, to count a project's networks
        self._networks = networks
        #: ``csvc.scheduler.instances.InstanceMap``: registering and removing instances
        self.instances = instances
        #: ``csvc.notify.subscriptions.Subscriptions`` (webhooks), when notifying
        self._subscriptions = subscriptions
        self.auth = auth
        self._containers = containers
        self._store = store
        self._journal = journal
        self._ui = TerminalUI()
        self._openapi = None

    def resource(self):
        return self._app.resource()

    @_app.handle_errors(HTTPException)
    def routing_error(self, request, failure):
        """
        Unknown paths and methods get the API's error body, not HTML.
        """
        exc = failure.value
        code = exc.code or 500
        request_id = "req-" + str(uuidlib.uuid4())
        message = {
            404: f"no such resource: {request.path.decode('utf-8', 'replace')}",
            405: f"method {request.method.decode('ascii', 'replace')} is not allowed on "
            f"{request.path.decode('utf-8', 'replace')}",
        }.get(code, exc.description or exc.name)
        if code in (301, 302, 307, 308):
            code, message = 404, f"no such resource: {request.path.decode('utf-8', 'replace')}"
        return send_error(request, code, HTTP_STATUS_TITLES.get(code, exc.name), message, request_id)

    # -- versions ----------------------------------------------------------

    @_app.route("/", methods=["GET"])
    @endpoint(public=True)
    def versions(self, request, identity):
        base = request.URLPath().click(b"/").__str__()
        return 200, {
            "versions": [
                {
                    "id": "v1",
                    "status": "CURRENT",
                    "version": API_VERSION,
                    "links": [{"rel": "self", "href": base + "v1"}],
                }
            ]
        }

    @_app.route("/v1/openapi.json", methods=["GET"])
    @endpoint(public=True)
    def openapi_document(self, request, identity):
        """
        The OpenAPI document of this API.
        """
        if self._openapi is None:
            self._openapi = openapi.document()
        return 200, self._openapi

    # -- containers --------------------------------------------------------

    @_app.route("/v1/containers", methods=["POST"])
    @endpoint()
    @inlineCallbacks
    def create_container(self, request, identity):
        spec = read_json(request, CONTAINER_CREATE)
        enforce("container:create", identity, identity.project_id)
        if spec.get("instance"):
            instance = yield self._store.get_instance(spec["instance"])
            if instance is None or instance["status"] == "deleted":
                # Asking for a host that is not there is the client's error.
                raise NotFound(f"instance {spec['instance']} not found")
            owner = instance.get("project_id")
            enforce("container:create:instance", identity, owner, target={"shared": instance["shared"]})
            if owner is not None and owner != identity.project_id:
                # Created for another project: its containers only, whoever asks.
                raise Forbidden(f"instance {instance['name']} was created for another project")
        row = yield self._containers.create(identity, spec)
        return 202, container_view(row)

    @_app.route("/v1/containers", methods=["GET"])
    @endpoint()
    @inlineCallbacks
    def list_containers(self, request, identity, query):
        all_projects = query["all_projects"]
        enforce("container:list_all_projects" if all_projects else "container:list", identity, identity.project_id)
        rows = yield self._containers.list(identity, all_projects)
        return 200, {"containers": [container_view(r) for r in rows]}

    @_app.route("/v1/containers/<ident>", methods=["GET"])
    @endpoint()
    @inlineCallbacks
    def show_container(self, request, identity, ident, query):
        row = yield self._containers.get(identity, ident, query["all_projects"])
        return 200, container_view(row)

    @_app.route("/v1/containers/<ident>", methods=["DELETE"])
    @endpoint()
    @inlineCallbacks
    def delete_container(self, request, identity, ident, query):
        force = query["force"]
        row = yield self._containers.get(identity, ident, query["all_projects"])
        enforce("container:force_delete" if force else "container:delete", identity, row["project_id"])
        # The native API names no volumes: the anonymous ones its image
        # declared (VOLUME) go with the container instead of piling up.
        left = yield self._containers.delete(row, force=force, volumes=True)
        if left is not None:
            # Its instance's agent is away: the removal finishes when it
            # connects again.
            return 202, container_view(left)
        return 204, None

    @_app.route("/v1/containers/<ident>/start", methods=["POST"])
    @endpoint()
    @inlineCallbacks
    def start_container(self, request, identity, ident):
        row = yield self._containers.get(identity, ident)
        row = yield self._containers.start(row)
        return 202, container_view(row)

    @_app.route("/v1/containers/<ident>/stop", methods=["POST"])
    @endpoint()
    @inlineCallbacks
    def stop_container(self, request, identity, ident, query):
        row = yield self._containers.get(identity, ident)
        row = yield self._containers.stop(row, query["timeout"])
        return 202, container_view(row)

    @_app.route("/v1/containers/<ident>/kill", methods=["POST"])
    @endpoint()
    @inlineCallbacks
    def kill_container(self, request, identity, ident, query):
        try:
            signal = normalize_signal(query["signal"])
        except ValueError as exc:
            raise BadRequest(f"query parameter 'signal': {exc}") from None
        row = yield self._containers.get(identity, ident)
        row = yield self._containers.kill(row, signal)
        return 202, container_view(row)

    @_app.route("/v1/containers/<ident>/restart", methods=["POST"])
    @endpoint()
    @inlineCallbacks
    def restart_container(self, request, identity, ident, query):
        row = yield self._containers.get(identity, ident)
        row = yield self._containers.restart(row, query["timeout"])
        return 202, container_view(row)

    @_app.route("/v1/containers/<ident>/wait", methods=["POST"])
    @endpoint()
    @inlineCallbacks
    def wait_container(self, request, identity, ident):
        row = yield self._containers.get(identity, ident)
        row = yield self._containers.wait(row)
        return 200, {"exit_code": row["exit_code"], "status": row["status"], "status_reason": row["status_reason"]}

    @_app.route("/v1/containers/<ident>/logs", methods=["GET"])
    @endpoint()
    @inlineCallbacks
    def container_logs(self, request, identity, ident, query):
        stdout, stderr = query["stdout"], query["stderr"]
        if not (stdout or stderr):
            raise BadRequest("query parameters 'stdout' and 'stderr': at least one must be true")
        streams = {s for s, on in ((1, stdout), (2, stderr)) if on}
        since, tail, follow = query["since"], query["tail"], query["follow"]
        row = yield self._containers.get(identity, ident)
        first = None
        if tail != "all":
            if tail == 0:
                since = max(since, row["last_seq"])
            else:
                start, first = yield tail_position(self._store, row["uuid"], tail, streams)
                if start > since:
                    since = start
                elif first is not None and first[0] <= since:
                    first = None
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", b"application/octet-stream")
        stream = LogStream(request, self._store, self._journal, row["uuid"], since, streams, follow, first)
        yield stream.start()
        return Streamed

    # -- attach ------------------------------------------------------------

    def _attach_options(self, query):
        options = {name: query[name] for name in ("stdin", "stdout", "stderr", "logs")}
        if not (options["stdin"] or options["stdout"] or options["stderr"]):
            raise BadRequest("query parameters 'stdin', 'stdout', 'stderr': at least one must be true")
        return options

    @_app.route("/v1/containers/<ident>/attach", methods=["GET"])
    @endpoint()
    @inlineCallbacks
    def attach_container(self, request, identity, ident, query):
        """
        With a WebSocket upgrade: attach now.  Without: a one-time URL for
        clients that cannot set headers (browsers).
        """
        options = self._attach_options(query)
        row = yield self._containers.get(identity, ident)
        self.relay.check_attachable(row, options)
        if _is_websocket(request):
            yield self.relay.check_session_quota(row)
            return self.relay.upgrade(request, row, options)
        token, expires_at = yield self._store.create_attach_token(
            row["uuid"], identity.project_id, identity.user_id, options, self.relay.token_ttl
        )
        host = request.getHeader(b"Host").decode("latin-1") if request.getHeader(b"Host") else "127.0.0.1"
        scheme = "wss" if request.isSecure() else "ws"
        return 200, {"url": f"{scheme}://{host}/v1/attach/{token}", "expires_at": _iso(expires_at)}

    @_app.route("/v1/attach/<token>", methods=["GET"])
    @endpoint(public=True)
    @inlineCallbacks
    def attach_with_token(self, request, identity, token):
        if not _is_websocket(request):
            raise BadRequest("this URL takes a WebSocket upgrade")
        grant = yield self._store.redeem_attach_token(token)
        if grant is None:
            raise Unauthorized("the attach token is unknown, expired or already used")
        row = yield self._store.get_container(grant["container_uuid"], grant["project_id"])
        if row is None:
            raise NotFound("the container of this attach token no longer exists")
        yield self.relay.check_session_quota(row)
        if grant["options"].get("exec_id"):
            options = grant["options"]
            return self._exec_attach(request, row, options["exec_id"], options.get("tty"), options.get("stdin"))
        self.relay.check_attachable(row, grant["options"])
        return self.relay.upgrade(request, row, grant["options"])

    # -- browser terminal --------------------------------------------------

    @_app.route("/ui/", branch=True, methods=["GET"])
    def user_interface(self, request):
        return self._ui.resource()

    # -- exec --------------------------------------------------------------

    @_app.route("/v1/containers/<ident>/exec", methods=["POST"])
    @endpoint()
    @inlineCallbacks
    def exec_container(self, request, identity, ident):
        """
        Run a command in a running container.

        Non-interactive: 200 ``{"exec_id", "output", "exit_code"}`` once it
        exited, ``output`` being stdout and stderr together in arrival order,
        decoded as UTF-8 (bad bytes replaced).  At most 1 MiB (the
        operator's ``--exec-output-max``) is collected:
        beyond it the answer is 413 (title "Payload Too Large", the message
        names the cap) and the exec's output is dropped (the agent closes
        its stream).

        Interactive: 201 ``{"exec_id", "url", "expires_at"}``; the one-time
        URL (or ``GET .../exec/{exec_id}/attach`` with a WebSocket upgrade)
        starts the exec over the attach channel protocol.
        """
        spec = read_json(request, EXEC_CREATE)
        row = yield self._containers.get(identity, ident)
        states.check("exec", row["status"])
        if not spec.get("interactive"):
            # A running exec holds one of the project's attach sessions.
            sessions = self.relay.sessions if self.relay is not None else set()
            slot = ExecSlot(row["project_id"])
            if self.relay is not None:
                yield self.relay.hold_session(row, slot)
            try:
                result = yield self._containers.exec_run(row, spec)
            finally:
                sessions.discard(slot)
            return 200, result
        exec_id = yield self._containers.exec_create(row, spec)
        options = {"exec_id": exec_id, "stdin": True, "tty": bool(spec.get("tty", False))}
        token, expires_at = yield self._store.create_attach_token(
            row["uuid"], identity.project_id, identity.user_id, options, self.relay.token_ttl
        )
        host = request.getHeader(b"Host").decode("latin-1") if request.getHeader(b"Host") else "127.0.0.1"
        scheme = "wss" if request.isSecure() else "ws"
        return 201, {
            "exec_id": exec_id,
            "url": f"{scheme}://{host}/v1/attach/{token}",
            "expires_at": _iso(expires_at),
        }

    @_app.route("/v1/containers/<ident>/exec/<exec_id>/attach", methods=["GET"])
    @endpoint()
    @inlineCallbacks
    def exec_attach(self, request, identity, ident, exec_id):
        if not _is_websocket(request):
            raise BadRequest("this URL takes a WebSocket upgrade")
        row = yield self._containers.get(identity, ident)
        record = self._containers.execs.get(exec_id, row["uuid"])
        yield self.relay.check_session_quota(row)
        return self._exec_attach(request, row, exec_id, record.tty, record.interactive)

    def _exec_attach(self, request, row, exec_id, tty, stdin):
        states.check("exec", row["status"])
        record = self._containers.execs.get(exec_id, row["uuid"])
        if record.consumer is not None:
            raise ExecClaimed(f"exec {exec_id} is already started")
        return exec_upgrade(
            self.relay, self._containers, self._containers.execs, request, row, exec_id, bool(tty), bool(stdin)
        )

    # -- notification subscriptions (webhooks) -----------------------------

    def _webhooks(self):
        if self._subscriptions is None:
            raise NotFound("notifications are not enabled on this service")
        return self._subscriptions

    @_app.route("/v1/subscriptions", methods=["POST"])
    @endpoint()
    @inlineCallbacks
    def create_subscription(self, request, identity):
        """
        POST the project's events of ``event_types`` to ``url`` (JSON, one
        notification per request, retried with backoff; see csvc.notify).
        """
        body = read_json(request, SUBSCRIPTION_CREATE)
        enforce("subscription:create", identity, identity.project_id)
        row = yield self._webhooks().create(identity.project_id, body["url"], body["event_types"])
        return 201, subscription_view(row)

    @_app.route("/v1/subscriptions", methods=["GET"])
    @endpoint()
    @inlineCallbacks
    def list_subscriptions(self, request, identity, query):
        all_projects = query["all_projects"]
        rule = "subscription:list_all_projects" if all_projects else "subscription:list"
        enforce(rule, identity, identity.project_id)
        rows = yield self._webhooks().list(None if all_projects else identity.project_id)
        return 200, {"subscriptions": [subscription_view(r) for r in rows]}

    @_app.route("/v1/subscriptions/<subscription>", methods=["DELETE"])
    @endpoint()
    @inlineCallbacks
    def delete_subscription(self, request, identity, subscription, query):
        across = query["all_projects"] and identity.is_admin
        enforce("subscription:delete", identity, identity.project_id)
        try:
            yield self._webhooks().delete(subscription, None if across else identity.project_id)
        except SubscriptionNotFound as exc:
            raise NotFound(str(exc)) from None
        return 204, None

    # -- instances ---------------------------------------------------------

    @_app.route("/v1/instances", methods=["GET"])
    @endpoint()
    @inlineCallbacks
    def list_instances(self, request, identity):
        enforce("instance:list", identity)
        rows = yield self._store.list_instances()
        connected = self._containers.connected_instances()
        return 200, {"instances": [instance_view(r, r["uuid"] in connected) for r in rows]}

    def _instance_map(self):
        if self.instances is None:
            raise NotFound("this service does not manage instances")
        return self.instances

    @_app.route("/v1/instances/<ident>", methods=["GET"])
    @endpoint()
    @inlineCallbacks
    def show_instance(self, request, identity, ident):
        """
        An instance (by uuid or name) and the containers on it.
        """
        enforce("instance:get", identity)
        row = yield self._instance_map().get(ident)
        placed = yield self._store.list_containers(instance_uuid=row["uuid"])
        view = instance_view(
            dict(row, containers=len(placed), usage=usage_of(placed)),
            row["uuid"] in self._containers.connected_instances(),
        )
        view["container_list"] = [
            {k: container_view(c)[k] for k in ("uuid", "name", "project_id", "status", "status_reason")}
            for c in placed
        ]
        return 200, view

    @_app.route("/v1/instances", methods=["POST"])
    @endpoint()
    @inlineCallbacks
    def register_instance(self, request, identity):
        """
        An existing host joins (admin): its row and the enrollment token its
        agent presents (``CSVC_ENROLL_TOKEN``), shown this once.
        """
        enforce("instance:create", identity)
        body = read_json(request, INSTANCE_REGISTER)
        try:
            row, token = yield self._instance_map().register(
                body["name"], body.get("capacity", 10), body.get("shared", False), body.get("project_id")
            )
        except ValueError as exc:
            raise InstanceConflict(str(exc)) from None
        return 201, dict(instance_view(row, False), enroll_token=token)

    @_app.route("/v1/instances/<ident>", methods=["DELETE"])
    @endpoint()
    @inlineCallbacks
    def delete_instance(self, request, identity, ident, query):
        """
        Drain (no new placements) and remove an instance (admin); 409 while
        it holds containers, unless ``force`` (they are deleted first).
        """
        enforce("instance:delete", identity)
        yield self._instance_map().delete(ident, force=query["force"])
        return 204, None

    # -- quotas ------------------------------------------------------------

    @_app.route("/v1/quotas/<project>", methods=["GET"])
    @endpoint()
    @inlineCallbacks
    def show_quota(self, request, identity, project):
        _check_project(project)
        enforce("quota:get", identity, project)
        limits = yield self._store.get_quota(project)
        return 200, limits

    @_app.route("/v1/quotas/<project>", methods=["PUT"])
    @endpoint()
    @inlineCallbacks
    def update_quota(self, request, identity, project):
        _check_project(project)
        enforce("quota:update", identity, project)
        body = read_json(request, QUOTA_UPDATE)
        values = {k: (None if v is None else int(v)) for k, v in body.items()}
        limits = yield self._store.set_quota(project, values)
        return 200, limits

    @_app.route("/v1/quotas/<project>", methods=["DELETE"])
    @endpoint()
    @inlineCallbacks
    def delete_quota(self, request, identity, project):
        """
        Back to the service's defaults.
        """
        _check_project(project)
        enforce("quota:delete", identity, project)
        yield self._store.reset_quota(project)
        return 204, None

    @inlineCallbacks
    def _network_count(self, project):
        if self._networks is None:
            return None
        try:
            return (yield self._networks.count(project))
        except InstanceUnavailable:
            return None

    @_app.route("/v1/quotas/<project>/usage", methods=["GET"])
    @endpoint()
    @inlineCallbacks
    def quota_usage(self, request, identity, project):
        """
        Each resource's ``limit`` and ``in_use``, as Zun shows them.
        """
        _check_project(project)
        enforce("quota:usage", identity, project)
        limits, usage = yield self._store.quota_usage(project)
        usage["attach_sessions"] = self.relay.project_sessions(project) if self.relay is not None else 0
        # (null when no instance of the project is there to ask)
        usage["networks"] = yield self._network_count(project)
        return 200, {r: {"limit": limits[r], "in_use": usage[r]} for r in RESOURCES}
