"""
The one place where domain errors become HTTP statuses.
"""

from csvc.wire.commands import EngineBusy, EngineError, InternalError, InvalidSpec, NoSuchContainer, NoSuchExec
from csvc.api.auth import AuthUnavailable, Unauthorized
from csvc.api.schemas import BadRequest
from csvc.compute.service import ImageNotFound, NotFound
from csvc.compute.states import InvalidState
from csvc.notify.destinations import UnsafeDestination
from csvc.agents.hub import InstanceUnavailable
from csvc.agents.execs import ExecClaimed, ExecOutputTooLarge
from csvc.policy import Forbidden
from csvc.scheduler.instances import InstanceConflict, NoSuchInstance
from csvc.store.db import ContainerTooLarge, NameInUse, NoRoom
from csvc.store.quotas import QuotaExceeded


class PayloadTooLarge(Exception):
    pass


#: exception class -> (status, title)
STATUS = [
    (BadRequest, 400, "Bad Request"),
    (InvalidSpec, 400, "Bad Request"),
    (UnsafeDestination, 400, "Bad Request"),
    # Before NoRoom (its base): no waiting would make it fit.
    (ContainerTooLarge, 400, "Bad Request"),
    (Unauthorized, 401, "Unauthorized"),
    (Forbidden, 403, "Forbidden"),
    (QuotaExceeded, 403, "Forbidden"),
    (NotFound, 404, "Not Found"),
    (NoSuchInstance, 404, "Not Found"),
    (ImageNotFound, 404, "Not Found"),
    (NoSuchContainer, 404, "Not Found"),
    (NoSuchExec, 404, "Not Found"),
    (ExecClaimed, 409, "Conflict"),
    (ExecOutputTooLarge, 413, "Payload Too Large"),
    (InvalidState, 409, "Conflict"),
    (NameInUse, 409, "Conflict"),
    (InstanceConflict, 409, "Conflict"),
    (PayloadTooLarge, 413, "Payload Too Large"),
    (EngineError, 502, "Bad Gateway"),
    (InternalError, 502, "Bad Gateway"),
    (EngineBusy, 503, "Service Unavailable"),
    (InstanceUnavailable, 503, "Service Unavailable"),
    (NoRoom, 503, "Service Unavailable"),
    (AuthUnavailable, 503, "Service Unavailable"),
]


def classify(exc):
    """
    ``(status, title, message)`` for a known error, else None.
    """
    for cls, status, title in STATUS:
        if isinstance(exc, cls):
            message = str(exc)
            if isinstance(exc, NameInUse):
                message = f"the name '{exc}' is already used by another container of this project"
            elif isinstance(exc, InvalidSpec):
                message = f"the container engine refused the container's configuration: {exc}"
            elif isinstance(exc, EngineError):
                message = f"the container engine refused: {exc}"
            return status, title, message
    return None
