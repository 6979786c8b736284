"""
The Docker Engine API's exec and attach routes: execs created, started
(detached, or as a hijacked stream), inspected and resized; attach as
Docker's hijacked stream or a WebSocket.
"""

from twisted.internet.defer import inlineCallbacks

from csvc.api.docker.app import DockerError, DockerRoutes, app, docker_endpoint, qbool, qint, version_tuple
from csvc.api.docker.views import env_dict, string_list
from csvc.api.schemas import BadRequest
from csvc.agents.execs import ExecSlot
from csvc.compute import states
from csvc.compute.states import LIVE
from csvc.relay.dockerexec import DetachedExec, DockerExecStream, ExecState
from csvc.relay.dockerstream import DockerAttachStream
from csvc.relay.hijack import MULTIPLEXED, RAW, HijackResource


class ExecRoutes(DockerRoutes):
    """
    ``/containers/{id}/exec``, ``/exec/...`` and ``/containers/{id}/attach``.
    """

    @app.route("/containers/<ident>/exec", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def exec_create(self, request, identity, ident):
        body = self._read_body(request, "POST /containers/{id}/exec")
        command = string_list(body.get("Cmd"), "Cmd")
        if not command:
            raise BadRequest("No exec command specified")
        row = yield self._get(identity, ident)
        if not states.may("exec", row["status"]):
            raise DockerError(409, f"Container {row['engine_id']} is not running")
        spec = {
            "command": command,
            "tty": bool(body.get("Tty")),
            "interactive": bool(body.get("AttachStdin")),
            "environment": env_dict(body.get("Env")),
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

    @app.route("/exec/<exec_id>/start", methods=["POST"])
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

    @app.route("/exec/<exec_id>/json", methods=["GET"])
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

    @app.route("/exec/<exec_id>/resize", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def exec_resize(self, request, identity, exec_id):
        height, width = qint(request, "h", 0), qint(request, "w", 0)
        state = self._exec(identity, exec_id)
        if state.context is not None and height > 0 and width > 0:
            yield state.context.resize(height, width)
        return 200, None

    def _stream_options(self, request):
        return {
            "stdin": qbool(request, "stdin"),
            "stdout": qbool(request, "stdout"),
            "stderr": qbool(request, "stderr"),
            "logs": qbool(request, "logs"),
            "stream": qbool(request, "stream"),
        }

    @app.route("/containers/<ident>/attach", methods=["POST"])
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

    @app.route("/containers/<ident>/attach/ws", methods=["GET"])
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
