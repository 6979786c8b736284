"""
The AMP contract between the control plane and its agents.

Both sides import this module and nothing else of each other.  An AMP value is
at most 65,535 bytes, so output travels in chunks of at most ``CHUNK_SIZE``
bytes and structured values (container specs, inventories) travel as JSON in a
single bounded value.

Direction:
  agent -> service: Register, Heartbeat, Output, Exited, Started,
                    ExecOutput, ExecExited
  service -> agent: CreateContainer, StartContainer, StopContainer,
                    KillContainer, RemoveContainer, ResumeOutput,
                    Input, CloseInput, Resize,
                    ExecCreate, ExecStart, ExecInput, ExecCloseInput, ExecResize,
                    ListImages, InspectImage, PullImage, ContainerHealth,
                    PauseContainer, ContainerPaused, ContainerTop, ContainerStats,
                    ListVolumes, CreateVolume, InspectVolume, RemoveVolume
"""

import json

from twisted.protocols import amp

#: Largest output chunk the agent sends in one Output box.
CHUNK_SIZE = 60 * 1024

#: Output boxes an agent may have unacknowledged per container.
OUTPUT_WINDOW = 32

#: Input boxes the control plane may have unanswered per container.
STDIN_WINDOW = 4


class JSON(amp.Argument):
    """
    A JSON document in one AMP value (so at most 64 KiB encoded).
    """

    def toString(self, inObject):
        return json.dumps(inObject, separators=(",", ":")).encode("utf-8")

    def fromString(self, inString):
        return json.loads(inString.decode("utf-8"))


class EngineError(Exception):
    """
    The engine refused an operation; the message is the engine's own text.
    """


class InvalidSpec(Exception):
    """
    The engine refused the container's configuration (its 400 answer).
    """


class NoSuchImage(Exception):
    """
    The image named in a create is not on the instance.
    """


class NoSuchContainer(Exception):
    """
    The engine has no container with this csvc uuid.
    """


class Conflict(Exception):
    """
    The engine refused an operation for the state its target is in (its 409
    answer: pausing a paused container, removing a volume in use).
    """


class NoSuchVolume(Exception):
    """
    The engine has no volume of this name.
    """


class OutputRefused(Exception):
    """
    An output chunk broke the contract (a gap in seq, too large, a window
    overrun, a container of another instance).
    """


class NotEnrolled(Exception):
    """
    The agent's enrollment token is unknown or revoked.
    """


#: What a report (output, a start, an exit) may be refused with: a link that
#: has not registered (or whose instance was revoked), a contract broken.
_REPORT_ERRORS = {OutputRefused: b"OUTPUT_REFUSED", NotEnrolled: b"NOT_ENROLLED"}

_ENGINE_ERRORS = {
    EngineError: b"ENGINE_ERROR",
    InvalidSpec: b"INVALID_SPEC",
    NoSuchImage: b"NO_SUCH_IMAGE",
    NoSuchContainer: b"NO_SUCH_CONTAINER",
    Conflict: b"CONFLICT",
    NoSuchVolume: b"NO_SUCH_VOLUME",
}


# -- agent -> service -------------------------------------------------------


class Register(amp.Command):
    """
    The first box an agent sends on a new connection.

    ``containers`` is the agent's inventory: a list of
    ``{"uuid", "engine_id", "state", "exit_code", "started_at",
    "finished_at"}`` for every csvc-labelled container on its engine.

    The answer carries, per container the service knows on this instance,
    where its persisted output ends (``{"uuid": {"seq": N, "cursor": C}}``);
    the agent resumes reading the engine's stream from there.
    """

    arguments = [
        (b"enroll_token", amp.Unicode()),
        (b"engine", amp.Unicode()),
        (b"capacity", amp.Integer()),
        (b"hostname", amp.Unicode()),
        (b"containers", JSON()),
        # What the engine says of itself (NCPU, MemTotal, ServerVersion).
        (b"facts", JSON(optional=True)),
    ]
    response = [
        (b"instance_uuid", amp.Unicode()),
        (b"resume", JSON()),
        (b"heartbeat_interval", amp.Float()),
    ]
    errors = {NotEnrolled: b"NOT_ENROLLED"}


class Heartbeat(amp.Command):
    arguments = []
    response = []
    errors = {NotEnrolled: b"NOT_ENROLLED"}


class Output(amp.Command):
    """
    One chunk of a container's output.

    ``seq`` numbers the chunks of a container from 1, without gaps.
    ``stream`` is 1 (stdout) or 2 (stderr).  ``cursor`` is the agent's opaque
    position in the engine's log after this chunk, stored with it so that a
    restarted agent resumes exactly there.  The answer comes only once the
    chunk is persisted.
    """

    arguments = [
        (b"uuid", amp.Unicode()),
        (b"seq", amp.Integer()),
        (b"stream", amp.Integer()),
        (b"data", amp.String()),
        (b"cursor", amp.Unicode()),
    ]
    response = []
    errors = _REPORT_ERRORS


class Started(amp.Command):
    """
    A container's process started (by the service's request or by the
    engine's restart policy).
    """

    arguments = [
        (b"uuid", amp.Unicode()),
        (b"started_at", amp.Unicode()),
    ]
    response = []
    errors = _REPORT_ERRORS


class Exited(amp.Command):
    """
    A container's process exited and every chunk of its output up to
    ``last_seq`` has been sent.
    """

    arguments = [
        (b"uuid", amp.Unicode()),
        (b"exit_code", amp.Integer()),
        (b"last_seq", amp.Integer()),
        (b"finished_at", amp.Unicode()),
        (b"removed", amp.Boolean()),
    ]
    response = []
    errors = _REPORT_ERRORS


class Vanished(amp.Command):
    """
    A container the agent follows was removed from its engine by something
    other than the service (``docker rm -f`` on the host): ``seen`` says how
    the agent knows (``destroy``: the engine's destroy event; ``missing``:
    the engine no longer knows it).  ``exit_code`` is its process's exit
    when the engine told it (-1: not known); every chunk of its output up
    to ``last_seq`` has been sent.
    """

    arguments = [
        (b"uuid", amp.Unicode()),
        (b"seen", amp.Unicode()),
        (b"exit_code", amp.Integer()),
        (b"last_seq", amp.Integer()),
    ]
    response = []
    errors = _REPORT_ERRORS


# -- service -> agent -------------------------------------------------------


class CreateContainer(amp.Command):
    """
    Create (not start) a container.  ``spec`` is the container as the store
    has it: ``uuid``, ``project_id``, ``image``, ``command``, ``environment``,
    ``workdir``, ``labels``, ``tty``, ``interactive``, ``memory``, ``cpu``,
    ``name``, ``auto_remove``.
    """

    arguments = [(b"spec", JSON())]
    response = [(b"engine_id", amp.Unicode())]
    errors = _ENGINE_ERRORS


class StartContainer(amp.Command):
    arguments = [(b"uuid", amp.Unicode())]
    response = []
    errors = _ENGINE_ERRORS


class StopContainer(amp.Command):
    arguments = [(b"uuid", amp.Unicode()), (b"timeout", amp.Integer())]
    response = []
    errors = _ENGINE_ERRORS


class KillContainer(amp.Command):
    arguments = [(b"uuid", amp.Unicode()), (b"signal", amp.Unicode())]
    response = []
    errors = _ENGINE_ERRORS


class RemoveContainer(amp.Command):
    arguments = [(b"uuid", amp.Unicode()), (b"force", amp.Boolean())]
    response = []
    errors = _ENGINE_ERRORS


class Input(amp.Command):
    """
    Bytes for a container's stdin.  The answer comes once the engine has
    taken them: the control plane keeps at most ``STDIN_WINDOW`` of these
    unanswered per container.
    """

    arguments = [(b"uuid", amp.Unicode()), (b"data", amp.String())]
    response = []
    errors = _ENGINE_ERRORS


class CloseInput(amp.Command):
    """
    Close a container's stdin (the process reads EOF; its output goes on).
    """

    arguments = [(b"uuid", amp.Unicode())]
    response = []
    errors = _ENGINE_ERRORS


class Resize(amp.Command):
    arguments = [(b"uuid", amp.Unicode()), (b"height", amp.Integer()), (b"width", amp.Integer())]
    response = []
    errors = _ENGINE_ERRORS


class ListImages(amp.Command):
    """
    The images on the instance's engine, as Docker's ``GET /images/json``.
    """

    arguments = []
    response = [(b"images", JSON())]
    errors = _ENGINE_ERRORS


class ContainerHealth(amp.Command):
    """
    A container's health as the engine tracks it (Docker's ``State.Health``:
    ``Status``, ``FailingStreak``, the last results in ``Log``), or null when
    it has no healthcheck.
    """

    arguments = [(b"uuid", amp.Unicode())]
    response = [(b"health", JSON())]
    errors = _ENGINE_ERRORS


class InspectImage(amp.Command):
    arguments = [(b"name", amp.Unicode())]
    response = [(b"image", JSON())]
    errors = _ENGINE_ERRORS


class PullImage(amp.Command):
    """
    Pull an image onto the instance; the error is the registry's own text.
    """

    arguments = [(b"image", amp.Unicode())]
    response = [(b"id", amp.Unicode())]
    errors = _ENGINE_ERRORS


class PauseContainer(amp.Command):
    """
    Freeze (``paused`` true) or thaw a running container's processes.
    """

    arguments = [(b"uuid", amp.Unicode()), (b"paused", amp.Boolean())]
    response = []
    errors = _ENGINE_ERRORS


class ContainerPaused(amp.Command):
    """
    Whether the engine has the container paused.
    """

    arguments = [(b"uuid", amp.Unicode())]
    response = [(b"paused", amp.Boolean())]
    errors = _ENGINE_ERRORS


class ContainerTop(amp.Command):
    """
    The container's processes as the engine's ``top`` gives them
    (``{"Titles": [...], "Processes": [[...]]}``).
    """

    arguments = [(b"uuid", amp.Unicode()), (b"ps_args", amp.Unicode())]
    response = [(b"top", JSON())]
    errors = _ENGINE_ERRORS


class ContainerStats(amp.Command):
    """
    One sample of the container's resource usage, the engine's stats JSON.
    """

    arguments = [(b"uuid", amp.Unicode())]
    response = [(b"stats", JSON())]
    errors = _ENGINE_ERRORS


# Volumes: ``name`` is always the engine's (``csvc-<project>-<name>``).


class ListVolumes(amp.Command):
    """
    The engine's volumes whose names start with ``prefix``.
    """

    arguments = [(b"prefix", amp.Unicode())]
    response = [(b"volumes", JSON())]
    errors = _ENGINE_ERRORS


class CreateVolume(amp.Command):
    arguments = [(b"name", amp.Unicode()), (b"labels", JSON())]
    response = [(b"volume", JSON())]
    errors = _ENGINE_ERRORS


class InspectVolume(amp.Command):
    arguments = [(b"name", amp.Unicode())]
    response = [(b"volume", JSON())]
    errors = _ENGINE_ERRORS


class RemoveVolume(amp.Command):
    arguments = [(b"name", amp.Unicode()), (b"force", amp.Boolean())]
    response = []
    errors = _ENGINE_ERRORS


class ResumeOutput(amp.Command):
    """
    Read the container's output again from ``cursor`` on, numbering chunks
    from ``seq + 1``.  Sent when the service finds a gap.
    """

    arguments = [
        (b"uuid", amp.Unicode()),
        (b"seq", amp.Integer()),
        (b"cursor", amp.Unicode()),
    ]
    response = []


# -- exec: a second process in a running container --------------------------
#
# service -> agent: ExecCreate, ExecStart, ExecInput, ExecCloseInput, ExecResize
# agent -> service: ExecOutput, ExecExited
#
# The service registers who consumes an exec's output before it sends
# ExecStart; the agent then streams the output with ExecOutput, at most
# ``EXEC_WINDOW`` unanswered (an answer means the consumer took the chunk, so
# the window is the backpressure), and sends ExecExited once the stream has
# ended and every chunk is answered.

#: ExecOutput boxes an agent may have unanswered per exec.
EXEC_WINDOW = OUTPUT_WINDOW


class NoSuchExec(Exception):
    """
    The agent has no exec of this id (never started here, or over).
    """


_EXEC_ERRORS = dict(_ENGINE_ERRORS)
_EXEC_ERRORS[NoSuchExec] = b"NO_SUCH_EXEC"


class ExecCreate(amp.Command):
    """
    Create (not start) an exec in the container ``uuid``.  ``spec``:
    ``command`` (list), ``tty``, ``interactive`` (stdin attached),
    ``environment`` (object), ``workdir``, ``user``.
    """

    arguments = [(b"uuid", amp.Unicode()), (b"spec", JSON())]
    response = [(b"exec_id", amp.Unicode())]
    errors = _EXEC_ERRORS


class ExecStart(amp.Command):
    """
    Start an exec and stream its output (ExecOutput, then ExecExited).  The
    answer comes once the engine's stream is open.
    """

    arguments = [(b"exec_id", amp.Unicode()), (b"tty", amp.Boolean())]
    response = []
    errors = _EXEC_ERRORS


class ExecInput(amp.Command):
    """
    Bytes for a started exec's stdin; answered once the engine took them.
    """

    arguments = [(b"exec_id", amp.Unicode()), (b"data", amp.String())]
    response = []
    errors = _EXEC_ERRORS


class ExecCloseInput(amp.Command):
    """
    Close a started exec's stdin (a write-close of its stream).
    """

    arguments = [(b"exec_id", amp.Unicode())]
    response = []
    errors = _EXEC_ERRORS


class ExecResize(amp.Command):
    arguments = [(b"exec_id", amp.Unicode()), (b"height", amp.Integer()), (b"width", amp.Integer())]
    response = []
    errors = _EXEC_ERRORS


class ExecOutput(amp.Command):
    """
    One chunk (at most ``CHUNK_SIZE``) of an exec's output; ``seq`` from 1
    without gaps, ``stream`` 1 (stdout) or 2 (stderr).  Answered once the
    consumer took it; refused when no one wants it any more.
    """

    arguments = [
        (b"exec_id", amp.Unicode()),
        (b"seq", amp.Integer()),
        (b"stream", amp.Integer()),
        (b"data", amp.String()),
    ]
    response = []
    errors = _REPORT_ERRORS


class ExecExited(amp.Command):
    """
    An exec's process exited and every chunk of its output was answered.
    """

    arguments = [(b"exec_id", amp.Unicode()), (b"exit_code", amp.Integer())]
    response = []
    errors = _REPORT_ERRORS
