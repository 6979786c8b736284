"""
The Docker Engine API's common ground: the Klein app every route registers
on, version handling, query parameters, errors in Docker's terms
(``classify``) and the ``docker_endpoint`` decorator that applies them.
"""

import json
import re
import uuid as uuidlib
from datetime import datetime
from functools import wraps

from klein import Klein
from twisted.internet.defer import CancelledError, inlineCallbacks
from twisted.logger import Logger
from twisted.web.resource import IResource
from werkzeug.exceptions import HTTPException

from csvc.wire.commands import (
    Conflict, EngineBusy, EngineError, InternalError, InvalidSpec, NoSuchContainer, NoSuchNetwork,
)
from csvc.api import engine_body
from csvc.api.auth import AuthUnavailable, Unauthorized
from csvc.api.errors import Forbidden, PayloadTooLarge
from csvc.api.schemas import BadRequest
from csvc.compute.images import TooManyPulls
from csvc.compute.networks import BuiltinNetwork, WrongInstance
from csvc.compute.service import ImageNotFound, NotFound
from csvc.compute.states import InvalidState
from csvc.agents.hub import InstanceUnavailable
from csvc.agents.execs import ExecClaimed
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


def time_param(request, name):
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


def unserved(method, path):
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
    if isinstance(exc, (TooManyTransfers, TooManyPulls)):
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


#: The one Klein app of the Docker Engine API: every route of the parts
#: below registers on it, and ``DockerAPI`` holds it as ``_app``.
app = Klein()


#: Dropped fields named one by one in a create's answer (the rest counted).
WARNED = 20


class DockerRoutes:
    """
    What every part of the Docker API shares: the version check, the
    caller's identity, routing errors, request bodies, the container a path
    names, and transfer sessions.  The parts (``containers``, ``execs``,
    ``images``...) are mixins of this class, composed by ``DockerAPI``,
    whose constructor sets the collaborators they use.
    """

    _app = app

    def resource(self):
        return self._app.resource()

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

    @app.handle_errors(HTTPException)
    def routing_error(self, request, failure):
        exc = failure.value
        code = exc.code or 500
        if code in (301, 302, 307, 308):
            code = 404
        path = request.path.decode("utf-8", "replace")
        method = request.method.decode("ascii", "replace")
        # A 405 is a path csvc routes for other methods: the one operation
        # of the Engine API there is DELETE /images/{name} (DELETE
        # /images/json removes the image "json"); TRACE or POST /images/json
        # is no operation csvc leaves out, but a method not allowed.
        if code == 404 or (code == 405 and method == "DELETE" and re.match(r"(/v[0-9.]+)?/images/", path)):
            why = unserved(method, path)
            if why is not None:
                return send(request, 501, {"message": why})
        message = {404: f"page not found: {path}", 405: f"method not allowed on {path}"}.get(code, exc.name)
        return send(request, code, {"message": message})

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
                warnings.extend(f"{path} is not supported by csvc and was ignored" for path in dropped[:WARNED])
                if len(dropped) > WARNED:
                    warnings.append(f"{len(dropped) - WARNED} more fields are not supported by csvc and were ignored")
            else:
                log.warn("{operation}: ignored fields {fields}", operation=operation, fields=dropped[:10])
        return body

    @inlineCallbacks
    def _get(self, identity, ident):
        try:
            row = yield self._containers.get(identity, ident)
        except NotFound:
            raise DockerError(404, f"No such container: {ident}") from None
        return row

    @inlineCallbacks
    def _transfer_session(self, row):
        """
        A transfer holds an engine stream on the instance while it lasts:
        it counts as one of the project's open sessions (the
        ``attach_sessions`` quota) until the context it is ends.
        """
        yield self._relay.check_session_quota(row)
        return TransferSession(self._relay.sessions, row["project_id"])


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
