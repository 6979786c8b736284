"""
The front door of the API listener: the ``Site`` that bounds request bodies
before any handler (or authentication) runs, and writes an access log
without secrets.

Bodies.  twisted.web reads a request's whole body (spooled to a temporary
file past 100 KiB) before its resource is asked anything.  Here each request
gets a limit from its request line (``BodyLimits``): a body declared longer
(``Content-Length``) is refused with a 413 as soon as the headers are in,
and nothing of it is read; a chunked body is counted as it comes and
refused the moment it would pass the limit.  Either way the connection is
closed after the 413, and no more than the limit is ever written to the
request's content.  The Docker archive upload (``PUT
/containers/{id}/archive``) has a larger limit of its own; hijacked and
WebSocket attach streams carry no request body, so the limit does not touch
them.

To know the route before the body, ``FrontChannel`` notes each request's
line as it reads it (through ``HTTPChannel``'s public ``lineReceived`` and
``requests``); the 413 is written to the transport directly, as
``HTTPChannel`` answers a malformed request.

Access log.  twisted.web's combined log line holds the request's path and
query and the Referer: the one-time attach token (``/v1/attach/TOKEN``) and
any query parameter that names a secret (``token=``, ``password=``...) are
replaced by ``<redacted>``.  Headers (``X-Auth-Token``,
``X-Registry-Auth``) are never in the line.
"""

import json
import re
from io import BytesIO
from urllib.parse import parse_qsl, urlencode

from twisted.logger import Logger
from twisted.web import http
from twisted.web.server import Request, Site

from csvc.relay.hijack import HijackableChannel

#: JSON bodies of the native and Docker APIs (both read at most this).
BODY_LIMIT = 1024 * 1024
#: Docker archive uploads: csvc.api.docker.app.MAX_ARCHIVE.
UPLOAD_LIMIT = 1024 * 1024 * 1024

_UPLOAD = re.compile(rb"^(?:/v[0-9]+(?:\.[0-9]+)?)?/containers/[^/]+/archive$")
_NATIVE = re.compile(rb"^/(?:v1(?:/|$)|ui(?:/|$)|$)")
_ATTACH_TOKEN = re.compile(r"(/v1/attach/)[^/?#]+")
#: A query parameter whose name has one of these in it is a secret.
_SECRET_NAMES = re.compile(r"token|secret|passw|auth|key|sig|credential", re.IGNORECASE)
REDACTED = "<redacted>"

log = Logger()


class BodyLimits:
    """
    The largest body a request may carry, by its method and path.
    """

    def __init__(self, body=BODY_LIMIT, upload=UPLOAD_LIMIT):
        self.body = body
        self.upload = upload

    def for_request(self, method, path):
        if method == b"PUT" and _UPLOAD.match(path):
            return self.upload
        return self.body


def _request_line(line):
    """
    ``(method, path)`` of a request line (path without its query), or
    ``(b"", b"")`` for a line twisted.web will refuse itself.
    """
    parts = line.split(b" ")
    if len(parts) != 3:
        return b"", b""
    target = parts[1].split(b"?", 1)[0].split(b"#", 1)[0]
    return parts[0], target


class BoundedRequest(Request):
    """
    A request whose body is refused past its limit (see the module).
    """

    #: (method, path) of the request line, set by FrontChannel.
    request_line = (b"", b"")
    body_limit = BODY_LIMIT
    body_refused = False
    _body_received = 0

    def gotLength(self, length):
        limits = getattr(self.channel.site, "body_limits", None) or BodyLimits()
        method, path = self.request_line
        self.body_limit = limits.for_request(method, path)
        if length is not None and length > self.body_limit:
            self._refuse(f"the request body is {length} bytes; at most {self.body_limit} are accepted here")
            return
        Request.gotLength(self, length)

    def handleContentChunk(self, data):
        if self.body_refused:
            return
        self._body_received += len(data)
        if self._body_received > self.body_limit:
            self._refuse(f"the request body exceeds {self.body_limit} bytes, the most accepted here")
            return
        Request.handleContentChunk(self, data)

    def requestReceived(self, command, path, version):
        if self.body_refused:
            # Answered and closing: the body was cut, nothing is processed.
            return
        Request.requestReceived(self, command, path, version)

    def _refuse(self, message):
        self.body_refused = True
        self.content = BytesIO()
        # No "100 Continue" after the 413 (the channel sends one after
        # gotLength when the client asked for it).
        self.requestHeaders.removeHeader(b"Expect")
        method, path = self.request_line
        if _NATIVE.match(path):
            body = {"error": {"code": 413, "title": "Payload Too Large", "message": message}}
        else:
            body = {"message": message}
        payload = json.dumps(body).encode("utf-8")
        log.info("refused a request body: {message} ({method} {path})", message=message,
                 method=method.decode("latin-1"), path=redact_uri(path.decode("latin-1")))
        transport = self.channel.transport
        transport.write(
            b"HTTP/1.1 413 Payload Too Large\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % len(payload) + payload
        )
        self.channel.loseConnection()


class FrontChannel(HijackableChannel):
    """
    An ``HTTPChannel`` that gives each request its request line before its
    headers are parsed, so that ``gotLength`` knows the route, and whose
    connection Docker's attach and exec streams can take over.
    """

    def lineReceived(self, line):
        before = len(self.requests)
        http.HTTPChannel.lineReceived(self, line)
        if len(self.requests) > before:
            request = self.requests[-1]
            if isinstance(request, BoundedRequest):
                request.request_line = _request_line(line)


def redact_uri(uri):
    """
    ``uri`` (a path with its query, or a whole URL) without secrets: the
    attach token of ``/v1/attach/TOKEN`` and the values of query parameters
    named like a secret.
    """
    text = _ATTACH_TOKEN.sub(lambda m: m.group(1) + REDACTED, uri)
    base, sep, query = text.partition("?")
    if not sep:
        return text
    query, hashmark, fragment = query.partition("#")
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_SECRET_NAMES.search(name) for name, _ in pairs):
        return text
    cleaned = urlencode([(name, REDACTED if _SECRET_NAMES.search(name) else value) for name, value in pairs],
                        safe="<>")
    return base + "?" + cleaned + (hashmark + fragment if hashmark else "")


class _RedactedRequest:
    """
    What the combined log formatter reads of a request, its secrets out.
    """

    def __init__(self, request):
        self._request = request
        self.method = request.method
        self.uri = redact_uri(request.uri.decode("latin-1")).encode("latin-1")
        self.clientproto = request.clientproto
        self.code = request.code
        self.sentLength = request.sentLength

    def getClientAddress(self):
        return self._request.getClientAddress()

    def getHeader(self, name):
        value = self._request.getHeader(name)
        if value is not None and name.lower() == b"referer":
            return redact_uri(value.decode("latin-1")).encode("latin-1")
        return value


def redacted_log_formatter(timestamp, request):
    """
    twisted.web's combined log line of ``request``, without its secrets.
    """
    return http.combinedLogFormatter(timestamp, _RedactedRequest(request))


class FrontSite(Site):
    """
    The API listener's ``Site``: bounded bodies, a redacted access log, no
    tracebacks.
    """

    protocol = FrontChannel
    requestFactory = BoundedRequest
    displayTracebacks = False

    def __init__(self, resource, body_limits=None, **kwargs):
        kwargs.setdefault("logFormatter", redacted_log_formatter)
        Site.__init__(self, resource, **kwargs)
        self.body_limits = body_limits or BodyLimits()
