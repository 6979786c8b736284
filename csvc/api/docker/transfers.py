"""
The Docker Engine API's transfers, relayed from a container's agent: its
files (``archive`` both ways, ``export``, ``changes``) and its ``stats``
stream; each counts as one of the project's sessions while it lasts.
"""

import json

from twisted.internet.defer import inlineCallbacks

from csvc.wire.commands import NoSuchPath
from csvc.api.docker.app import MAX_ARCHIVE, DockerError, DockerRoutes, app, docker_endpoint, qbool, qstr
from csvc.api.docker.views import engine_words
from csvc.api.errors import PayloadTooLarge
from csvc.api.schemas import BadRequest


#: The longest path in a container (Linux's PATH_MAX).
PATH_MAX = 4096

class TransferRoutes(DockerRoutes):
    """
    ``archive``, ``export``, ``changes`` and ``stats``.
    """

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
                raise DockerError(404, engine_words(str(exc), row, ident)) from None
            request.setResponseCode(200)
            request.setHeader(b"Content-Type", content_type)
            if info.get("path_stat"):
                request.setHeader(b"X-Docker-Container-Path-Stat", info["path_stat"].encode("ascii"))
            request._csvc_streaming = True
            consumer.begin()
            yield consumer.done

    @app.route("/containers/<ident>/stats", methods=["GET"])
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

    @app.route("/containers/<ident>/changes", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def changes(self, request, identity, ident):
        row = yield self._get(identity, ident)
        yield self._download(request, row, ident, "changes", {}, b"application/json")
        return None

    @app.route("/containers/<ident>/export", methods=["GET"])
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
        # (the engine's lstat refuses both as a 500, naming its own host paths)
        if "\x00" in path:
            raise BadRequest("bad parameter: path must not contain a NUL character")
        if len(path.encode("utf-8")) > PATH_MAX:
            raise BadRequest(f"bad parameter: path is longer than {PATH_MAX} bytes")
        return path

    @app.route("/containers/<ident>/archive", methods=["GET", "HEAD"])
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
                raise DockerError(404, engine_words(str(exc), row, ident)) from None
            request.setHeader(b"X-Docker-Container-Path-Stat", stat.encode("ascii"))
            request.setHeader(b"Content-Type", b"application/json")
            return 200, None
        yield self._download(request, row, ident, "archive", {"path": path}, b"application/x-tar")
        return None

    @app.route("/containers/<ident>/archive", methods=["PUT"])
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
                raise DockerError(404, engine_words(str(exc), row, ident)) from None
        return 200, None
