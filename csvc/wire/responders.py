"""
Errors a responder does not declare, on both ends of agent links.

AMP answers them with ``UNKNOWN_ERROR_CODE`` in a ``QuitBox`` (and drops
the link when no answer was asked for), so one bug in one responder cut
every container's stream on the link.  ``SafeResponders`` (mixed in before
``amp.AMP``) wraps each responder AMP's ``locateResponder`` finds, through
public APIs only: such an error is logged with its traceback and answered
with ``commands.InternalError`` (which every command declares; its message
names the exception), and the link goes on; so is an answer that cannot be
written (a value too long, a value that is not bytes).  A declared error is
AMP's own (its description cut to ``DESCRIPTION_MAX``); a declared fatal
error still closes the link.  A command that asked for no answer and
failed is logged, and nothing is sent.

The fast path (``csvc.fastpath.boxes``) answers its fast commands the same
way, with its own dispatch.
"""

from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger
from twisted.protocols import amp

from csvc.wire.commands import INTERNAL_ERROR

#: The longest error description sent (AMP's value limit, with room).
DESCRIPTION_MAX = 4096

_ASK = b"_ask"

_log = Logger()


def internal_error(failure, name, log=_log):
    """
    An error the responder of ``name`` did not declare: logged with its
    traceback; ``(code, description, fatal)`` of its answer.
    """
    command = name.decode("ascii", "replace") if isinstance(name, bytes) else str(name)
    log.failure("while answering {command}", failure, command=command)
    error = failure.value
    if isinstance(error, amp.BadLocalReturn):
        # AMP's wrapper of an answer that could not be made: name its cause.
        error = getattr(error.enclosed, "value", error)
    description = f"{type(error).__name__} in the peer's responder to {command} (its log has the traceback)"
    return INTERNAL_ERROR, description.encode("utf-8", "replace"), False


class SafeResponders:
    """
    Mix in before ``amp.AMP`` (or any ``CommandLocator``).
    """

    log = Logger()

    def locateResponder(self, name):
        responder = super().locateResponder(name)
        if responder is None:
            return None

        def answer(box):
            d = maybeDeferred(responder, box)
            d.addCallback(_writable)
            return d.addErrback(self._undeclared, name, _ASK in box)

        return answer

    def _undeclared(self, failure, name, asked):
        if not asked:
            # Nothing to answer; AMP would drop the link.
            why = failure.value.description if failure.check(amp.RemoteAmpError) else None
            if why is None:
                internal_error(failure, name, self.log)
            else:
                self.log.info("{command} (no answer asked) failed: {why}", command=name.decode("ascii", "replace"),
                              why=why)
            return amp.AmpBox()
        if failure.check(amp.RemoteAmpError):
            error = failure.value
            description = error.description
            if isinstance(description, str):
                description = description.encode("utf-8", "replace")
            if len(description) <= DESCRIPTION_MAX:
                return failure
            raise amp.RemoteAmpError(error.errorCode, description[:DESCRIPTION_MAX], error.fatal)
        code, description, fatal = internal_error(failure, name, self.log)
        raise amp.RemoteAmpError(code, description, fatal)


def _writable(box):
    """
    ``box`` if AMP can write it (``serialize`` checks its keys and values
    as ``sendBox`` would); its ``TooLong`` or ``TypeError`` otherwise.
    """
    box.serialize()
    return box
