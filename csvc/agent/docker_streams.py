"""
What ``DockerEngine`` asks over the engine's UNIX socket with Twisted's HTTP
client rather than through the SDK's threads (``DockerStreams``, a mixin of
it): the long-lived streams (a container's log, the engine's events,
hijacked attaches and execs) and the transfers (downloads, a path's stat,
uploads).  A paused transport is the backpressure, and no thread is held
per stream.
"""

import json
from urllib.parse import urlencode

from twisted.internet.defer import inlineCallbacks, returnValue
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.web.client import readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from csvc.agent.docker_labels import LABEL_UUID, engine_name
from csvc.agent.hijack import HijackedStream
from csvc.wire.commands import Conflict, EngineError, InvalidSpec, NoSuchContainer, NoSuchPath


class _QuietUNIXEndpoint(UNIXClientEndpoint):
    def connect(self, protocolFactory):
        # One connection per log stream: do not log each one's start and
        # stop (``Factory.noisy``).
        protocolFactory.noisy = False
        return super().connect(protocolFactory)


@implementer(IAgentEndpointFactory)
class UNIXEndpoints:
    def __init__(self, reactor, path):
        self._reactor = reactor
        self._path = path

    def endpointForURI(self, uri):
        return _QuietUNIXEndpoint(self._reactor, self._path)


def _http_error(code, message):
    """
    The engine's error answer (status and message) as a contract error.
    """
    if code == 404:
        if "No such container" in message:
            return NoSuchContainer(message)
        return NoSuchPath(message)
    if code == 400:
        return InvalidSpec(message)
    if code == 409:
        return Conflict(message)
    return EngineError(message)


#: Largest error body read from the engine.
_ERROR_BODY = 64 * 1024


def _message(body):
    try:
        return str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        return body[:_ERROR_BODY].decode("utf-8", "replace")


#: kind -> (path, query) of a download on the engine
_DOWNLOADS = {
    "export": ("/containers/{}/export", lambda options: {}),
    "archive": ("/containers/{}/archive", lambda options: {"path": options["path"]}),
    "changes": ("/containers/{}/changes", lambda options: {}),
    "stats": ("/containers/{}/stats", lambda options: {"stream": 1}),
}


def _path_stat(response):
    values = response.headers.getRawHeaders(b"X-Docker-Container-Path-Stat") or [b""]
    return values[0].decode("ascii", "replace")


class DockerStreams:
    """
    ``DockerEngine``'s streams and transfers (it mixes this in): requests on
    its ``_http`` (an ``Agent`` on the engine's socket), hijacked
    connections to its ``_socket_path`` made with its ``_reactor``.
    """

    # -- transfers ---------------------------------------------------------

    @inlineCallbacks
    def _checked(self, response):
        if response.code < 300:
            return response
        body = b"" if response.code == 304 else (yield readBody(response))
        raise _http_error(response.code, _message(body) or f"the engine answered {response.code}")

    @inlineCallbacks
    def download(self, uuid, kind, options, protocol):
        """
        GET the body of a download (``_DOWNLOADS``) into ``protocol``;
        fires with ``{"path_stat": ...}`` (archives) once the engine answered.
        """
        path, query = _DOWNLOADS[kind]
        response = yield self._http.request(b"GET", self._url(path.format(engine_name(uuid)), query(options)))
        yield self._checked(response)
        info = {}
        if kind == "archive":
            info["path_stat"] = _path_stat(response)
        response.deliverBody(protocol)
        return info

    @inlineCallbacks
    def archive_stat(self, uuid, path):
        """
        Fires with the engine's ``X-Docker-Container-Path-Stat`` of ``path``.
        """
        url = self._url(f"/containers/{engine_name(uuid)}/archive", {"path": path})
        response = yield self._http.request(b"HEAD", url)
        if response.code == 404:
            raise NoSuchPath(f"Could not find the file {path} in container {engine_name(uuid)}")
        yield self._checked(response)
        return _path_stat(response)

    @inlineCallbacks
    def upload(self, uuid, options, body):
        """
        PUT ``body`` (an ``IBodyProducer`` of a tar) to be extracted at
        ``options["path"]``; fires once the engine answered 200.
        """
        query = {"path": options["path"]}
        for name in ("noOverwriteDirNonDir", "copyUIDGID"):
            if options.get(name):
                query[name] = "1"
        url = self._url(f"/containers/{engine_name(uuid)}/archive", query)
        headers = Headers({b"Content-Type": [b"application/x-tar"]})
        response = yield self._http.request(b"PUT", url, headers, body)
        yield self._checked(response)
        yield readBody(response)

    # -- streams -----------------------------------------------------------

    def _url(self, path, query):
        return f"http://docker{path}?{urlencode(query)}".encode("ascii")

    @inlineCallbacks
    def _stream(self, path, query, protocol):
        response = yield self._http.request(b"GET", self._url(path, query))
        if response.code != 200:
            body = yield readBody(response)
            try:
                message = json.loads(body)["message"]
            except (ValueError, KeyError, TypeError):
                message = body.decode("utf-8", "replace")
            if response.code == 404:
                raise NoSuchContainer(message)
            raise EngineError(message)
        response.deliverBody(protocol)
        returnValue(response)

    def follow_logs(self, engine_id, protocol):
        """
        Stream the container's whole log into ``protocol``, following while
        the container runs.
        """
        query = {"follow": 1, "stdout": 1, "stderr": 1}
        return self._stream(f"/containers/{engine_id}/logs", query, protocol)

    def _hijack(self, method, path, query, body, protocol):
        stream = HijackedStream(method, f"{path}?{urlencode(query)}", body, protocol)
        d = connectProtocol(UNIXClientEndpoint(self._reactor, self._socket_path), stream)
        d.addCallback(lambda _: stream.ready)
        return d

    def attach(self, engine_id, protocol, stdin=False, output=True):
        """
        Attach ``protocol`` to the container's streams: its output (stdout
        and stderr, multiplexed unless TTY) when ``output``, and its stdin
        (what the protocol writes; a write-close closes the container's
        stdin if it was created with ``StdinOnce``) when ``stdin``.
        """
        query = {"stream": 1, "stdout": int(output), "stderr": int(output), "stdin": int(stdin)}
        return self._hijack("POST", f"/containers/{engine_id}/attach", query, None, protocol)

    def follow_events(self, protocol):
        """
        Stream the engine's container ``start``, ``die`` and ``destroy``
        events for csvc containers into ``protocol`` (JSON lines).
        """
        filters = {"type": ["container"], "label": [LABEL_UUID], "event": ["start", "die", "destroy"]}
        return self._stream("/events", {"filters": json.dumps(filters)}, protocol)
