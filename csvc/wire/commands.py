"""
The AMP contract between the control plane and its agents.

Both sides import this module and nothing else of each other.  An AMP value is
at most 65,535 bytes, so output travels in chunks of at most ``CHUNK_SIZE``
bytes, each split by ``Bytes`` over several values of one box, and structured
values (container specs, inventories) travel as JSON in a single bounded value.

Direction:
  agent -> service: Enroll, Register, Renew, Heartbeat, Output, Exited, Started,
                    ExecOutput, ExecExited
  service -> agent: CreateContainer, StartContainer, StopContainer,
                    KillContainer, RemoveContainer, ResumeOutput,
                    Input, CloseInput, Resize,
                    ExecCreate, ExecStart, ExecInput, ExecCloseInput, ExecResize,
                    ListImages, InspectImage, PullImage, ContainerHealth,
                    PauseContainer, ContainerPaused, ContainerTop, ContainerStats,
                    ListVolumes, CreateVolume, InspectVolume, RemoveVolume,
                    UpdateContainer, ContainerPorts,
                    OpenDownload, CancelDownload, ArchiveStat,
                    OpenUpload, UploadChunk, FinishUpload, CancelUpload
  agent -> service: DownloadChunk, DownloadEnd (a download's bytes)
"""

from twisted.protocols import amp

# The contract's argument types, errors, sizes and windows live in modules of
# their own; they are imported here for the commands and for every importer
# of ``commands`` (``commands.CHUNK_SIZE``, ``commands.EngineError``...).
from csvc.wire.arguments import AMP_VALUE_MAX, JSON, Bytes
from csvc.wire.errors import (
    ENGINE_ERRORS,
    EXEC_ERRORS,
    INTERNAL_ERROR,
    REPORT_ERRORS,
    TRANSFER_ERRORS,
    CertificateRefused,
    Conflict,
    EngineBusy,
    EngineError,
    InternalError,
    InvalidSpec,
    NoSuchContainer,
    NoSuchExec,
    NoSuchImage,
    NoSuchNetwork,
    NoSuchPath,
    NoSuchTransfer,
    NoSuchVolume,
    NotEnrolled,
    OutputRefused,
    ProtocolMismatch,
    Refused,
)
from csvc.wire.windows import (
    BOX_KEYS,
    BOX_MAX,
    CHUNK_SIZE,
    EXEC_WINDOW,
    OUTPUT_WINDOW,
    STDIN_PIECE,
    STDIN_WINDOW,
    TRANSFER_WINDOW,
    stdin_pieces,
)

#: The version of this contract.  1: output in chunks of at most 60 KiB, one
#: AMP value each.  2: chunks of up to CHUNK_SIZE in ``Bytes`` pieces.
#: 3: Enroll and Renew (agents' certificates from the control plane's CA).
#: 4: the agent's wall (``csvc.agent.wall``): ``Refused``, and a create's
#: ``spec["admin"]``.  5: ``EngineBusy`` (a project's share of the engine).
#: 6: ``InternalError`` on every command (a responder's undeclared error
#: is answered, the link kept).
PROTOCOL = 6


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
        # PROTOCOL; agents before version 2 do not send it.
        (b"protocol", amp.Integer(optional=True)),
    ]
    response = [
        (b"instance_uuid", amp.Unicode()),
        (b"resume", JSON()),
        (b"heartbeat_interval", amp.Float()),
    ]
    errors = {NotEnrolled: b"NOT_ENROLLED", ProtocolMismatch: b"PROTOCOL_MISMATCH"}


class Enroll(amp.Command):
    """
    Where the control plane is the agents' certificate authority, the first
    box of an agent that has no certificate of its own yet: its instance's
    one-time enrollment token and a certificate signing request (PEM).  The
    answer is its certificate (PEM), naming its instance; the token is used
    up.  The agent then connects again presenting the certificate, and
    registers by it.
    """

    arguments = [
        (b"enroll_token", amp.Unicode()),
        (b"csr", amp.String()),
        (b"protocol", amp.Integer()),
    ]
    response = [
        (b"instance_uuid", amp.Unicode()),
        (b"certificate", amp.String()),
    ]
    errors = {
        NotEnrolled: b"NOT_ENROLLED",
        ProtocolMismatch: b"PROTOCOL_MISMATCH",
        CertificateRefused: b"CERTIFICATE_REFUSED",
    }


class Renew(amp.Command):
    """
    An agent registered by its certificate asks for a new one (its own
    expires soon): a certificate signing request, answered with the new
    certificate (PEM), which replaces the old one.
    """

    arguments = [(b"csr", amp.String())]
    response = [(b"certificate", amp.String())]
    errors = {NotEnrolled: b"NOT_ENROLLED", CertificateRefused: b"CERTIFICATE_REFUSED"}


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
        (b"data", Bytes(CHUNK_SIZE)),
        (b"cursor", amp.Unicode()),
    ]
    response = []
    errors = REPORT_ERRORS


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
    errors = REPORT_ERRORS


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
    errors = REPORT_ERRORS


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
    errors = REPORT_ERRORS


# -- service -> agent -------------------------------------------------------


class CreateContainer(amp.Command):
    """
    Create (not start) a container.  ``spec`` is the container as the store
    has it: ``uuid``, ``project_id``, ``image``, ``command``, ``environment``,
    ``workdir``, ``labels``, ``tty``, ``interactive``, ``memory``, ``cpu``,
    ``name``, ``auto_remove``; ``admin`` (true: made by an admin, whom
    the agent's wall lets have what policy lets them have).
    """

    arguments = [(b"spec", JSON())]
    response = [(b"engine_id", amp.Unicode())]
    errors = ENGINE_ERRORS


class StartContainer(amp.Command):
    arguments = [(b"uuid", amp.Unicode())]
    response = []
    errors = ENGINE_ERRORS


class StopContainer(amp.Command):
    arguments = [(b"uuid", amp.Unicode()), (b"timeout", amp.Integer())]
    response = []
    errors = ENGINE_ERRORS


class KillContainer(amp.Command):
    arguments = [(b"uuid", amp.Unicode()), (b"signal", amp.Unicode())]
    response = []
    errors = ENGINE_ERRORS


class RemoveContainer(amp.Command):
    """
    Remove a container; with ``volumes``, its anonymous volumes too (an
    agent older than the argument ignores it and leaves them, listed).
    """

    arguments = [(b"uuid", amp.Unicode()), (b"force", amp.Boolean()), (b"volumes", amp.Boolean(optional=True))]
    response = []
    errors = ENGINE_ERRORS


class Input(amp.Command):
    """
    Bytes for a container's stdin.  The answer comes once the engine has
    taken them: the control plane keeps at most ``STDIN_WINDOW`` of these
    unanswered per container.
    """

    arguments = [(b"uuid", amp.Unicode()), (b"data", amp.String())]
    response = []
    errors = ENGINE_ERRORS


class CloseInput(amp.Command):
    """
    Close a container's stdin (the process reads EOF; its output goes on).
    """

    arguments = [(b"uuid", amp.Unicode())]
    response = []
    errors = ENGINE_ERRORS


class Resize(amp.Command):
    arguments = [(b"uuid", amp.Unicode()), (b"height", amp.Integer()), (b"width", amp.Integer())]
    response = []
    errors = ENGINE_ERRORS


class ListImages(amp.Command):
    """
    The images on the instance's engine, as Docker's ``GET /images/json``.
    """

    arguments = []
    response = [(b"images", JSON())]
    errors = ENGINE_ERRORS


class ContainerHealth(amp.Command):
    """
    A container's health as the engine tracks it (Docker's ``State.Health``:
    ``Status``, ``FailingStreak``, the last results in ``Log``), or null when
    it has no healthcheck.
    """

    arguments = [(b"uuid", amp.Unicode())]
    response = [(b"health", JSON())]
    errors = ENGINE_ERRORS


class InspectImage(amp.Command):
    arguments = [(b"name", amp.Unicode())]
    response = [(b"image", JSON())]
    errors = ENGINE_ERRORS


class PullImage(amp.Command):
    """
    Pull an image onto the instance; the error is the registry's own text.
    """

    arguments = [(b"image", amp.Unicode())]
    response = [(b"id", amp.Unicode())]
    errors = ENGINE_ERRORS


class PauseContainer(amp.Command):
    """
    Freeze (``paused`` true) or thaw a running container's processes.
    """

    arguments = [(b"uuid", amp.Unicode()), (b"paused", amp.Boolean())]
    response = []
    errors = ENGINE_ERRORS


class ContainerPaused(amp.Command):
    """
    Whether the engine has the container paused.
    """

    arguments = [(b"uuid", amp.Unicode())]
    response = [(b"paused", amp.Boolean())]
    errors = ENGINE_ERRORS


class ContainerTop(amp.Command):
    """
    The container's processes as the engine's ``top`` gives them
    (``{"Titles": [...], "Processes": [[...]]}``).
    """

    arguments = [(b"uuid", amp.Unicode()), (b"ps_args", amp.Unicode())]
    response = [(b"top", JSON())]
    errors = ENGINE_ERRORS


class ContainerStats(amp.Command):
    """
    One sample of the container's resource usage, the engine's stats JSON.
    """

    arguments = [(b"uuid", amp.Unicode())]
    response = [(b"stats", JSON())]
    errors = ENGINE_ERRORS


# Volumes: ``name`` is always the engine's (``csvc-<project>-<name>``).


class ListVolumes(amp.Command):
    """
    The engine's volumes whose names start with ``prefix``.
    """

    arguments = [(b"prefix", amp.Unicode())]
    response = [(b"volumes", JSON())]
    errors = ENGINE_ERRORS


class CreateVolume(amp.Command):
    arguments = [(b"name", amp.Unicode()), (b"labels", JSON())]
    response = [(b"volume", JSON())]
    errors = ENGINE_ERRORS


class InspectVolume(amp.Command):
    arguments = [(b"name", amp.Unicode())]
    response = [(b"volume", JSON())]
    errors = ENGINE_ERRORS


class RemoveVolume(amp.Command):
    arguments = [(b"name", amp.Unicode()), (b"force", amp.Boolean())]
    response = []
    errors = ENGINE_ERRORS


# Networks: ``name`` is always the engine's (``csvc-<project>-<name>``, or
# one of the engine's own: ``bridge``, ``none``).


class ListNetworks(amp.Command):
    """
    The engine's networks whose names start with ``prefix`` or are in
    ``names``: Docker's list entries.
    """

    arguments = [(b"prefix", amp.Unicode()), (b"names", JSON())]
    response = [(b"networks", JSON())]
    errors = ENGINE_ERRORS


class CreateNetwork(amp.Command):
    """
    A bridge network; ``options``: ``Labels``, ``Internal``, ``Attachable``.
    Fires with its inspect.
    """

    arguments = [(b"name", amp.Unicode()), (b"options", JSON())]
    response = [(b"network", JSON())]
    errors = ENGINE_ERRORS


class InspectNetwork(amp.Command):
    arguments = [(b"name", amp.Unicode())]
    response = [(b"network", JSON())]
    errors = ENGINE_ERRORS


class RemoveNetwork(amp.Command):
    arguments = [(b"name", amp.Unicode())]
    response = []
    errors = ENGINE_ERRORS


class ConnectNetwork(amp.Command):
    """
    Connect a container to a network, known on it by ``aliases`` too.
    """

    arguments = [(b"uuid", amp.Unicode()), (b"name", amp.Unicode()), (b"aliases", JSON())]
    response = []
    errors = ENGINE_ERRORS


class DisconnectNetwork(amp.Command):
    arguments = [(b"uuid", amp.Unicode()), (b"name", amp.Unicode()), (b"force", amp.Boolean())]
    response = []
    errors = ENGINE_ERRORS


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

class ExecCreate(amp.Command):
    """
    Create (not start) an exec in the container ``uuid``.  ``spec``:
    ``command`` (list), ``tty``, ``interactive`` (stdin attached),
    ``environment`` (object), ``workdir``, ``user``.
    """

    arguments = [(b"uuid", amp.Unicode()), (b"spec", JSON())]
    response = [(b"exec_id", amp.Unicode())]
    errors = EXEC_ERRORS


class ExecStart(amp.Command):
    """
    Start an exec and stream its output (ExecOutput, then ExecExited).  The
    answer comes once the engine's stream is open.
    """

    arguments = [(b"exec_id", amp.Unicode()), (b"tty", amp.Boolean())]
    response = []
    errors = EXEC_ERRORS


class ExecInput(amp.Command):
    """
    Bytes for a started exec's stdin; answered once the engine took them.
    """

    arguments = [(b"exec_id", amp.Unicode()), (b"data", amp.String())]
    response = []
    errors = EXEC_ERRORS


class ExecCloseInput(amp.Command):
    """
    Close a started exec's stdin (a write-close of its stream).
    """

    arguments = [(b"exec_id", amp.Unicode())]
    response = []
    errors = EXEC_ERRORS


class ExecResize(amp.Command):
    arguments = [(b"exec_id", amp.Unicode()), (b"height", amp.Integer()), (b"width", amp.Integer())]
    response = []
    errors = EXEC_ERRORS


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
        (b"data", Bytes(CHUNK_SIZE)),
    ]
    response = []
    errors = REPORT_ERRORS


class ExecExited(amp.Command):
    """
    An exec's process exited and every chunk of its output was answered.
    """

    arguments = [(b"exec_id", amp.Unicode()), (b"exit_code", amp.Integer())]
    response = []
    errors = REPORT_ERRORS


class UpdateContainer(amp.Command):
    """
    Change a container's resources and restart policy on the engine
    (Docker's ``POST /containers/{id}/update`` body, validated by the
    control plane); the answer carries the engine's warnings.
    """

    arguments = [(b"uuid", amp.Unicode()), (b"update", JSON())]
    response = [(b"warnings", JSON())]
    errors = ENGINE_ERRORS


class ContainerSizes(amp.Command):
    """
    The sizes of a project's containers on the engine (``docker ps -s``):
    ``{uuid: [SizeRw, SizeRootFs]}`` in bytes.  The engine walks each
    container's files for it: asked for only when a client asks.
    """

    arguments = [(b"project_id", amp.Unicode())]
    response = [(b"sizes", JSON())]
    errors = ENGINE_ERRORS


class ContainerPorts(amp.Command):
    """
    The engine's published ports of a container (its
    ``NetworkSettings.Ports``: ``{"80/tcp": [{"HostIp", "HostPort"}]}``).
    """

    arguments = [(b"uuid", amp.Unicode())]
    response = [(b"ports", JSON())]
    errors = ENGINE_ERRORS


# -- transfers: byte streams larger than one AMP value ----------------------
#
# A download (export, archive get, changes, streamed stats) is read by the
# agent from the engine and sent as DownloadChunk boxes, at most
# ``TRANSFER_WINDOW`` unanswered; the control plane answers a chunk once its
# consumer (an HTTP response) took it, so a client that stops reading stops
# the answers, the agent's window fills and it stops reading the engine.  The
# control plane picks the ``transfer_id`` and registers the consumer before it
# sends OpenDownload (chunks may come before the answer).  DownloadEnd
# follows once every chunk is answered; its ``error`` is "" for a clean end.
#
# An upload (archive put) goes the other way: UploadChunk boxes, at most
# ``TRANSFER_WINDOW`` unanswered, each answered once the engine's connection
# took it; FinishUpload is answered with the engine's answer.

class OpenDownload(amp.Command):
    """
    Open a download of ``kind`` from the container ``uuid``: ``export`` (a
    tar of its filesystem), ``archive`` (a tar of ``options["path"]``),
    ``changes`` (the JSON of its filesystem changes) or ``stats`` (the
    engine's stats stream, one JSON document per chunk).  Answered once the
    engine accepted it, with what its headers say (``{"path_stat": ...}``
    for an archive).
    """

    arguments = [
        (b"transfer_id", amp.Unicode()),
        (b"uuid", amp.Unicode()),
        (b"kind", amp.Unicode()),
        (b"options", JSON()),
    ]
    response = [(b"info", JSON())]
    errors = TRANSFER_ERRORS


class CancelDownload(amp.Command):
    """
    No one wants the rest of the download: the agent closes the engine's
    stream.  Answered at once, known or not.
    """

    arguments = [(b"transfer_id", amp.Unicode())]
    response = []


class DownloadChunk(amp.Command):
    """
    At most ``CHUNK_SIZE`` bytes of a download; ``seq`` from 1 without gaps.
    Answered once the consumer took it; refused when no one wants it.
    """

    arguments = [(b"transfer_id", amp.Unicode()), (b"seq", amp.Integer()), (b"data", Bytes(CHUNK_SIZE))]
    response = []
    errors = REPORT_ERRORS


class DownloadEnd(amp.Command):
    """
    The download is over and every chunk was answered; ``error`` is "" for
    a complete one, else why it broke off.
    """

    arguments = [(b"transfer_id", amp.Unicode()), (b"error", amp.Unicode())]
    response = []
    errors = REPORT_ERRORS


class ArchiveStat(amp.Command):
    """
    The engine's ``X-Docker-Container-Path-Stat`` of ``path`` in the
    container (base64 JSON), as for ``HEAD /containers/{id}/archive``.
    """

    arguments = [(b"uuid", amp.Unicode()), (b"path", amp.Unicode())]
    response = [(b"path_stat", amp.Unicode())]
    errors = TRANSFER_ERRORS


class OpenUpload(amp.Command):
    """
    Open an upload of a tar of ``length`` bytes to extract at
    ``options["path"]`` in the container (``noOverwriteDirNonDir``,
    ``copyUIDGID`` as the engine takes them).  Answered once the agent is
    ready for chunks.
    """

    arguments = [
        (b"transfer_id", amp.Unicode()),
        (b"uuid", amp.Unicode()),
        (b"length", amp.Integer()),
        (b"options", JSON()),
    ]
    response = []
    errors = TRANSFER_ERRORS


class UploadChunk(amp.Command):
    """
    At most ``CHUNK_SIZE`` bytes of an upload; answered once the engine's
    connection took them (a full one holds the answer).
    """

    arguments = [(b"transfer_id", amp.Unicode()), (b"data", Bytes(CHUNK_SIZE))]
    response = []
    errors = TRANSFER_ERRORS


class FinishUpload(amp.Command):
    """
    Every byte is sent: answered with the engine's answer (an error is the
    engine's).
    """

    arguments = [(b"transfer_id", amp.Unicode())]
    response = []
    errors = TRANSFER_ERRORS


class CancelUpload(amp.Command):
    """
    The client went away: drop the engine's request.  Answered at once.
    """

    arguments = [(b"transfer_id", amp.Unicode())]
    response = []


#: What every output chunk, keystroke and file transfer piece travels by:
#: dispatched and called by ``csvc.fastpath.boxes`` without AMP's generic
#: machinery, at both ends of the link.
STREAM_COMMANDS = (Output, Input, ExecOutput, ExecInput, DownloadChunk, UploadChunk)


def _declare_internal_error(namespace):
    """
    Every command of this contract declares ``InternalError`` (the
    command's own errors dict is copied: several share one).
    """
    for command in list(namespace.values()):
        if isinstance(command, type) and issubclass(command, amp.Command) and command is not amp.Command:
            command.errors = {**command.errors, InternalError: INTERNAL_ERROR}
            command.allErrors[InternalError] = INTERNAL_ERROR
            command.reverseErrors[INTERNAL_ERROR] = InternalError


_declare_internal_error(globals())
