"""
A container's states and which action each allows: the one table the API
consults before acting.
"""

STATES = ("creating", "created", "running", "exited", "error", "deleting")

#: action -> states in which it is allowed
ALLOWED = {
    "start": ("created", "exited"),
    "stop": ("running",),
    "kill": ("running",),
    "restart": ("created", "running", "exited"),
    "delete": ("created", "exited", "error"),
    "force_delete": ("creating", "created", "running", "exited", "error"),
    "attach": ("creating", "created", "running"),
    "exec": ("running",),
    "pause": ("running",),
    "unpause": ("running",),
    "top": ("running",),
}

#: states in which the process can still produce output or exit
LIVE = ("creating", "created", "running")


class InvalidState(Exception):
    """
    The action is not allowed in the container's current state.
    """

    def __init__(self, action, status, detail=""):
        self.action = action
        self.status = status
        allowed = ", ".join(ALLOWED.get(action, ()))
        message = f"cannot {action.replace('_', ' ')} a container in status '{status}'"
        if allowed:
            message += f" ({action.replace('_', ' ')} is allowed in: {allowed})"
        if detail:
            message += f"; {detail}"
        super().__init__(message)


def check(action, status, detail=""):
    """
    Raise ``InvalidState`` unless ``action`` is allowed in ``status``.
    """
    if status not in ALLOWED[action]:
        raise InvalidState(action, status, detail)
