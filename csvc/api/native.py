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
from csvc.api.logs import LogStream, tail_position
from csvc.api.schemas import CONTAINER_CREATE, BadRequest, query_bool, query_int, query_str, validate
from csvc.api.ui import TerminalUI
from csvc.api.auth import Unauthorized
from csvc.compute.service import NotFound, normalize_signal
from csvc.api.schemas import EXEC_CREATE, QUOTA_UPDATE
from csvc.policy import enforce
from csvc.store.quotas import RESOURCES
from csvc.compute import states
from csvc.relay.exec_attach import exec_upgrade
from csvc.relay.execs import ExecClaimed

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


def instance_view(row):
    return {
        "uuid": row["uuid"],
        "name": row["name"],
        "provider": row["provider"],
        "status": row["status"],
        "capacity": row["capacity"],
        "containers": row.get("containers", 0),
        "hostname": row["hostname"],
        "engine": row["engine"],
        "shared": row["shared"],
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
    Owns a route's JSON out, authentication and error mapping.  The handler
    gets ``(request, identity, **route_args)`` and returns ``(status, body)``
    (``body`` None for no content) or ``Streamed``.
    """

    def decorator(handler):
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
                result = yield handler(self, request, identity, **kwargs)
            except Exception as exc:
                if isinstance(exc, CancelledError) and request.channel is None:
                    # Klein cancels the handler when the client goes away:
                    # there is no one left to answer.
                    return None
                known = classify(exc)
                if known is None:
                    log.failure("unexpected error in {path}", path=request.path, request_id=request_id)
                    known = (500, "Internal Server Error", f"unexpected error (request id {request_id})")
                elif known[0] >= 500:
                    log.warn("{path}: {message}", path=request.path, message=known[2])
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


class NativeAPI:
    _app = Klein()

    def __init__(self, auth, containers, store, journal, relay=None):
        self.relay = relay
        self.auth = auth
        self._containers = containers
        self._store = store
        self._journal = journal
        self._ui = TerminalUI()

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

    # -- containers --------------------------------------------------------

    @_app.route("/v1/containers", methods=["POST"])
    @endpoint()
    @inlineCallbacks
    def create_container(self, request, identity):
        spec = read_json(request, CONTAINER_CREATE)
        enforce("container:create", identity, identity.project_id)
        if spec.get("instance"):
            instance = yield self._store.get_instance(spec["instance"])
            if instance is not None:
                enforce("container:create:instance", identity, target={"shared": instance["shared"]})
        row = yield self._containers.create(identity, spec)
        return 202, container_view(row)

    @_app.route("/v1/containers", methods=["GET"])
    @endpoint()
    @inlineCallbacks
    def list_containers(self, request, identity):
        all_projects = query_bool(request, "all_projects")
        enforce("container:list_all_projects" if all_projects else "container:list", identity, identity.project_id)
        rows = yield self._containers.list(identity, all_projects)
        return 200, {"containers": [container_view(r) for r in rows]}

    @_app.route("/v1/containers/<ident>", methods=["GET"])
    @endpoint()
    @inlineCallbacks
    def show_container(self, request, identity, ident):
        row = yield self._containers.get(identity, ident, query_bool(request, "all_projects"))
        return 200, container_view(row)

    @_app.route("/v1/containers/<ident>", methods=["DELETE"])
    @endpoint()
    @inlineCallbacks
    def delete_container(self, request, identity, ident):
        force = query_bool(request, "force")
        row = yield self._containers.get(identity, ident, query_bool(request, "all_projects"))
        enforce("container:force_delete" if force else "container:delete", identity, row["project_id"])
        yield self._containers.delete(row, force=force)
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
    def stop_container(self, request, identity, ident):
        timeout = query_int(request, "timeout", 10, minimum=0, maximum=3600)
        row = yield self._containers.get(identity, ident)
        row = yield self._containers.stop(row, timeout)
        return 202, container_view(row)

    @_app.route("/v1/containers/<ident>/kill", methods=["POST"])
    @endpoint()
    @inlineCallbacks
    def kill_container(self, request, identity, ident):
        try:
            signal = normalize_signal(query_str(request, "signal", "SIGKILL"))
        except ValueError as exc:
            raise BadRequest(f"query parameter 'signal': {exc}") from None
        row = yield self._containers.get(identity, ident)
        row = yield self._containers.kill(row, signal)
        return 202, container_view(row)

    @_app.route("/v1/containers/<ident>/restart", methods=["POST"])
    @endpoint()
    @inlineCallbacks
    def restart_container(self, request, identity, ident):
        timeout = query_int(request, "timeout", 10, minimum=0, maximum=3600)
        row = yield self._containers.get(identity, ident)
        row = yield self._containers.restart(row, timeout)
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
    def container_logs(self, request, identity, ident):
        stdout = query_bool(request, "stdout", True)
        stderr = query_bool(request, "stderr", True)
        if not (stdout or stderr):
            raise BadRequest("query parameters 'stdout' and 'stderr': at least one must be true")
        streams = {s for s, on in ((1, stdout), (2, stderr)) if on}
        since = query_int(request, "since", 0, minimum=0)
        tail_text = query_str(request, "tail", "all")
        follow = query_bool(request, "follow")
        row = yield self._containers.get(identity, ident)
        first = None
        if tail_text != "all":
            tail = query_int(request, "tail", minimum=0)
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

    def _attach_options(self, request):
        options = {
            "stdin": query_bool(request, "stdin", False),
            "stdout": query_bool(request, "stdout", True),
            "stderr": query_bool(request, "stderr", True),
            "logs": query_bool(request, "logs", False),
        }
        if not (options["stdin"] or options["stdout"] or options["stderr"]):
            raise BadRequest("query parameters 'stdin', 'stdout', 'stderr': at least one must be true")
        return options

    @_app.route("/v1/containers/<ident>/attach", methods=["GET"])
    @endpoint()
    @inlineCallbacks
    def attach_container(self, request, identity, ident):
        """
        With a WebSocket upgrade: attach now.  Without: a one-time URL for
        clients that cannot set headers (browsers).
        """
        options = self._attach_options(request)
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
        decoded as UTF-8 (bad bytes replaced).  At most 16 MiB is collected:
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
            result = yield self._containers.exec_run(row, spec)
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

    # -- instances ---------------------------------------------------------

    @_app.route("/v1/instances", methods=["GET"])
    @endpoint()
    @inlineCallbacks
    def list_instances(self, request, identity):
        enforce("instance:list", identity)
        rows = yield self._store.list_instances()
        return 200, {"instances": [instance_view(r) for r in rows]}

    # -- quotas ------------------------------------------------------------

    @_app.route("/v1/quotas/<project>", methods=["GET"])
    @endpoint()
    @inlineCallbacks
    def show_quota(self, request, identity, project):
        enforce("quota:get", identity, project)
        limits = yield self._store.get_quota(project)
        return 200, limits

    @_app.route("/v1/quotas/<project>", methods=["PUT"])
    @endpoint()
    @inlineCallbacks
    def update_quota(self, request, identity, project):
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
        enforce("quota:delete", identity, project)
        yield self._store.reset_quota(project)
        return 204, None

    @_app.route("/v1/quotas/<project>/usage", methods=["GET"])
    @endpoint()
    @inlineCallbacks
    def quota_usage(self, request, identity, project):
        """
        Each resource's ``limit`` and ``in_use``, as Zun shows them.
        """
        enforce("quota:usage", identity, project)
        limits, usage = yield self._store.quota_usage(project)
        usage["attach_sessions"] = self.relay.project_sessions(project) if self.relay is not None else 0
        return 200, {r: {"limit": limits[r], "in_use": usage[r]} for r in RESOURCES}
