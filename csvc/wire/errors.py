"""
The errors the contract declares: what a command may be answered with, and
the codes they travel under.  ``csvc.wire.commands`` re-exports every name
here.
"""


class EngineError(Exception):
    """
    The engine refused an operation; the message is the engine's own text.
    """


class InvalidSpec(Exception):
    """
    The engine refused the container's configuration (its 400 answer).
    """


class EngineBusy(Exception):
    """
    The project already has as many engine calls waiting on this agent as
    it may (``csvc.agent.shares``): try again soon.
    """

    #: seconds the API's answer (503) tells the client to wait
    retry_after = 1


class Refused(Exception):
    """
    The agent's wall refused what no member may have (a host bind, a
    privileged container, another project's network...), whatever the
    control plane asked: the message names the rules broken.
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


class NoSuchNetwork(Exception):
    """
    The engine has no network of this name.
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


class ProtocolMismatch(Exception):
    """
    The agent speaks another version of this contract than the control plane.
    """


class CertificateRefused(Exception):
    """
    The control plane will not sign the agent's certificate signing request,
    or will not take the certificate it presented (the message says why).
    """


class InternalError(Exception):
    """
    The peer's responder failed with an error its command does not declare
    (a bug): the message names the exception, the peer logged its
    traceback, and the link goes on.  Every command declares it.
    """


#: ``InternalError``'s code on the wire.
INTERNAL_ERROR = b"INTERNAL"


#: What a report (output, a start, an exit) may be refused with: a link that
#: has not registered (or whose instance was revoked), a contract broken.
REPORT_ERRORS = {OutputRefused: b"OUTPUT_REFUSED", NotEnrolled: b"NOT_ENROLLED"}

ENGINE_ERRORS = {
    EngineError: b"ENGINE_ERROR",
    InvalidSpec: b"INVALID_SPEC",
    Refused: b"REFUSED",
    EngineBusy: b"ENGINE_BUSY",
    NoSuchImage: b"NO_SUCH_IMAGE",
    NoSuchContainer: b"NO_SUCH_CONTAINER",
    Conflict: b"CONFLICT",
    NoSuchVolume: b"NO_SUCH_VOLUME",
    NoSuchNetwork: b"NO_SUCH_NETWORK",
}


class NoSuchExec(Exception):
    """
    The agent has no exec of this id (never started here, or over).
    """


EXEC_ERRORS = dict(ENGINE_ERRORS)
EXEC_ERRORS[NoSuchExec] = b"NO_SUCH_EXEC"


class NoSuchPath(Exception):
    """
    The path asked for is not in the container (the engine's 404 text).
    """


class NoSuchTransfer(Exception):
    """
    The transfer is unknown (never opened here, over, or cancelled).
    """


TRANSFER_ERRORS = dict(ENGINE_ERRORS)
TRANSFER_ERRORS[NoSuchPath] = b"NO_SUCH_PATH"
TRANSFER_ERRORS[NoSuchTransfer] = b"NO_SUCH_TRANSFER"
