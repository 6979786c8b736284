"""
The Docker Engine API's system routes: ``/_ping``, ``/version`` (both
unauthenticated), ``/info`` and the project's ``/events``.
"""

import platform

from twisted.internet.defer import inlineCallbacks

from csvc.api import docker_events
from csvc.api.docker.app import (
    API_VERSION, MIN_API_VERSION, SERVER_VERSION, DockerError, DockerRoutes, app, docker_endpoint, qstr, time_param,
)
from csvc.api.docker.views import DOCKER_STATUS


class SystemRoutes(DockerRoutes):
    """
    ``/_ping``, ``/version``, ``/info`` and ``/events``.
    """

    def _ping_headers(self, request):
        request.setHeader(b"Api-Version", API_VERSION.encode())
        request.setHeader(b"Ostype", b"linux")
        request.setHeader(b"Docker-Experimental", b"false")
        request.setHeader(b"Cache-Control", b"no-cache, no-store, must-revalidate")
        request.setHeader(b"Pragma", b"no-cache")

    @app.route("/_ping", methods=["GET", "HEAD"])
    @docker_endpoint(public=True)
    def ping(self, request, identity):
        self._ping_headers(request)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setResponseCode(200)
        return b"OK" if request.method == b"GET" else b""

    @app.route("/version", methods=["GET"])
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

    @app.route("/info", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def info(self, request, identity):
        rows = yield self._containers.list(identity)
        instances = yield self._store.list_instances()
        states = [DOCKER_STATUS.get(r["status"], r["status"]) for r in rows]
        facts = self._hub.engine_facts()
        images = yield self._project_images.list(identity)
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

    @app.route("/events", methods=["GET"])
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
        until = time_param(request, "until")
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
