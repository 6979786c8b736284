"""
The Docker Engine API's routes that move a container through its life
cycle (start, stop, kill, restart, pause, unpause), resize its terminal and
wait for it.
"""

import json

from twisted.internet.defer import inlineCallbacks

from csvc.api.docker.app import DockerError, DockerRoutes, app, docker_endpoint, qint, qstr
from csvc.api.docker.views import stop_timeout
from csvc.api.schemas import BadRequest
from csvc.compute.service import normalize_signal
from csvc.compute import states
from csvc.compute.states import LIVE


class LifecycleRoutes(DockerRoutes):
    """
    start, stop, kill, restart, pause, unpause, resize and wait.
    """

    @app.route("/containers/<ident>/start", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def start(self, request, identity, ident):
        row = yield self._get(identity, ident)
        if row["status"] == "running":
            return 304, None
        yield self._containers.start(row)
        return 204, None

    @app.route("/containers/<ident>/stop", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def stop(self, request, identity, ident):
        timeout = qint(request, "t")
        row = yield self._get(identity, ident)
        if timeout is None:
            timeout = stop_timeout(row)
        if not states.may("stop", row["status"]):
            return 304, None
        yield self._containers.stop(row, max(0, timeout))
        return 204, None

    @app.route("/containers/<ident>/kill", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def kill(self, request, identity, ident):
        try:
            signal = normalize_signal(qstr(request, "signal") or "SIGKILL")
        except ValueError as exc:
            raise BadRequest(f"Invalid signal: {exc}") from None
        row = yield self._get(identity, ident)
        if not states.may("kill", row["status"]):
            raise DockerError(409, f"Container {ident} is not running")
        yield self._containers.kill(row, signal)
        return 204, None

    @app.route("/containers/<ident>/restart", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def restart(self, request, identity, ident):
        timeout = qint(request, "t")
        row = yield self._get(identity, ident)
        if timeout is None:
            timeout = stop_timeout(row)
        yield self._containers.restart(row, max(0, timeout))
        return 204, None

    @app.route("/containers/<ident>/pause", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def pause(self, request, identity, ident):
        row = yield self._get(identity, ident)
        if not states.may("pause", row["status"]):
            raise DockerError(409, f"Container {ident} is not running")
        yield self._containers.pause(row, True)
        return 204, None

    @app.route("/containers/<ident>/unpause", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def unpause(self, request, identity, ident):
        row = yield self._get(identity, ident)
        # The engine's answer for a container that is not paused is a 500.
        if not states.may("unpause", row["status"]) or not (yield self._containers.paused(row)):
            raise DockerError(409, f"Container {ident} is not paused")
        yield self._containers.pause(row, False)
        return 204, None

    @app.route("/containers/<ident>/resize", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def resize(self, request, identity, ident):
        height, width = qint(request, "h", 0), qint(request, "w", 0)
        row = yield self._get(identity, ident)
        if height > 0 and width > 0 and row["status"] == "running":
            yield self._containers.resize(row, height, width)
        return 200, None

    @app.route("/containers/<ident>/wait", methods=["POST"])
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
