"""
What reaches a running container's processes through ``ContainerService``
(``csvc.compute.service``): its stdin and terminal, and execs (a second
process: created, started, fed, resized, or run to collect its output).
"""

from twisted.internet.defer import inlineCallbacks

from csvc.agents.execs import CollectedOutput
from csvc.compute import states
from csvc.wire import commands


class ContainerExecs:
    """
    The stdin, terminal and execs of ``ContainerService``, which mixes this
    in: it reads the service's ``_hub``, ``exec_output_max``, ``_started``
    (a row once its start reached the engine) and ``_refused`` (the agent's
    wall's refusal as the API's error).
    """

    # -- stdin and terminal ------------------------------------------------

    def write_stdin(self, row, data):
        return self._hub.call(row["instance_uuid"], commands.Input, uuid=row["uuid"], data=data)

    def close_stdin(self, row):
        return self._hub.call(row["instance_uuid"], commands.CloseInput, uuid=row["uuid"])

    def resize(self, row, rows, cols):
        return self._hub.call(row["instance_uuid"], commands.Resize, uuid=row["uuid"], height=rows, width=cols)

    # -- exec --------------------------------------------------------------

    @property
    def execs(self):
        """
        The ``ExecRegistry``: execs created here and not over yet.
        """
        return self._hub.execs

    @inlineCallbacks
    def exec_create(self, row, spec):
        """
        Create (not start) an exec in a running container; fires with its id.
        ``spec``: ``command``, ``tty``, ``interactive``, ``environment``,
        ``workdir``, ``user``.
        """
        row = yield self._started(row)
        states.check("exec", row["status"])
        engine_spec = {
            "command": list(spec["command"]),
            "tty": bool(spec.get("tty", False)),
            "interactive": bool(spec.get("interactive", False)),
            "environment": dict(spec.get("environment") or {}),
            "workdir": spec.get("workdir"),
            "user": spec.get("user"),
        }
        try:
            result = yield self._hub.call(row["instance_uuid"], commands.ExecCreate, uuid=row["uuid"],
                                          spec=engine_spec)
        except commands.Refused as exc:
            raise self._refused("exec", row, exc) from None
        exec_id = result["exec_id"]
        self._hub.execs.register(
            exec_id, row["uuid"], row["instance_uuid"], engine_spec["tty"], engine_spec["interactive"],
            project_id=row["project_id"],
        )
        return exec_id

    def exec_start(self, row, exec_id, tty):
        """
        Start an exec whose consumer is claimed in ``self._hub.execs``.
        """
        return self._hub.call(row["instance_uuid"], commands.ExecStart, exec_id=exec_id, tty=bool(tty))

    def exec_input(self, row, exec_id, data):
        return self._hub.call(row["instance_uuid"], commands.ExecInput, exec_id=exec_id, data=data)

    def exec_close_input(self, row, exec_id):
        return self._hub.call(row["instance_uuid"], commands.ExecCloseInput, exec_id=exec_id)

    def exec_resize(self, row, exec_id, rows, cols):
        return self._hub.call(row["instance_uuid"], commands.ExecResize, exec_id=exec_id, height=rows, width=cols)

    @inlineCallbacks
    def exec_run(self, row, spec, limit=None):
        """
        Create and start a non-interactive exec and collect its output: fires
        with ``{"exec_id", "output", "exit_code"}`` once it exited; fails with
        ``ExecOutputTooLarge`` past ``limit`` bytes (``exec_output_max``).
        Cancelling it abandons the exec's output.
        """
        spec = dict(spec, interactive=False)
        exec_id = yield self.exec_create(row, spec)
        registry = self._hub.execs
        limit = self.exec_output_max if limit is None else limit
        kwargs = {} if limit is None else {"limit": limit}
        collected = CollectedOutput(lambda: registry.discard(exec_id), **kwargs)
        registry.claim(exec_id, collected)
        try:
            yield self.exec_start(row, exec_id, spec.get("tty", False))
        except Exception:
            registry.discard(exec_id)
            raise
        result = yield collected.done
        return dict(result, exec_id=exec_id)
