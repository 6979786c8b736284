"""
A container's life cycle as data: its states, the events that move it from
one to another (``TRANSITIONS``), and the actions each state allows
(``ALLOWED``).  Every status write goes through ``csvc.compute.lifecycle``,
which reads the table here; every "may I do X in this state" asks ``may`` or
``check``.  Docker's wording for the states stays in the Docker API's error
mapping.
"""

STATES = ("creating", "created", "running", "exited", "error", "deleting")

#: The state a container's row is inserted in (placed, being made on the
#: engine); the row's removal ends the life cycle (no state: it is gone).
INITIAL = "creating"

#: (state, event) -> state.  Each event leads to one state, whichever state
#: it leaves: the store's conditional update is "status in the event's
#: sources -> its target" in one statement.
TRANSITIONS = {
    # The engine made it (compute.service.create).
    ("creating", "created"): "created",
    # A client's start, recorded before the engine is asked.
    ("created", "start_requested"): "running",
    ("exited", "start_requested"): "running",
    # The engine refused that start: back where it was.
    ("running", "start_failed_created"): "created",
    ("running", "start_failed_exited"): "exited",
    # The agent reports a start the service did not ask for (a restart policy).
    ("created", "agent_started"): "running",
    ("exited", "agent_started"): "running",
    # The agent reports the process's exit.
    ("running", "exited"): "exited",
    # Something other than csvc removed it from the engine.
    ("creating", "vanished"): "error",
    ("created", "vanished"): "error",
    ("running", "vanished"): "error",
    ("exited", "vanished"): "error",
    # Its instance's agent missed its heartbeats (csvc.scheduler.health).
    ("creating", "instance_down"): "error",
    ("created", "instance_down"): "error",
    ("running", "instance_down"): "error",
    # The agent registered again and its engine still has the container
    # (only after ``instance_down``: ``lifecycle.marked_down``).
    ("error", "agent_found_created"): "created",
    ("error", "agent_found_running"): "running",
    # The agent registered again and its engine no longer has it.
    ("created", "missing_at_registration"): "error",
    ("running", "missing_at_registration"): "error",
    # A delete (or an interrupted create) waits for the agent's return.
    ("creating", "delete_deferred"): "deleting",
    ("created", "delete_deferred"): "deleting",
    ("running", "delete_deferred"): "deleting",
    ("exited", "delete_deferred"): "deleting",
    ("error", "delete_deferred"): "deleting",
}

EVENTS = tuple(sorted({event for _state, event in TRANSITIONS}))


class InvalidTransition(Exception):
    """
    The event cannot happen to a container in that state (or is no event of
    the table).
    """

    def __init__(self, state, event):
        self.state = state
        self.event = event
        super().__init__(f"no transition from state {state!r} on event {event!r}")


def next_state(state, event):
    """
    The state ``event`` leads to from ``state``; ``InvalidTransition`` when
    the table has no such transition.
    """
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(state, event) from None


def sources(event):
    """
    The states ``event`` may leave, in ``STATES`` order.
    """
    found = tuple(s for s in STATES if (s, event) in TRANSITIONS)
    if not found:
        raise InvalidTransition(None, event)
    return found


def target(event):
    """
    The one state ``event`` leads to.
    """
    return next_state(sources(event)[0], event)


def happens(event, state):
    """
    Whether ``event`` moves a container in ``state``.
    """
    return (state, event) in TRANSITIONS


def start_failed(previous):
    """
    The event that takes a refused start back to ``previous``.
    """
    return f"start_failed_{previous}"


#: action -> states in which it is allowed
ALLOWED = {
    "start": sources("start_requested"),
    "stop": ("running",),
    "kill": ("running",),
    "restart": ("created", "running", "exited"),
    "delete": ("created", "exited", "error"),
    "force_delete": sources("delete_deferred"),
    "attach": ("creating", "created", "running"),
    # An attach that only replays the stored output (``logs``).
    "attach_replay": ("exited", "error"),
    "exec": ("running",),
    "pause": ("running",),
    "unpause": ("running",),
    "top": ("running",),
    # Stdin reaches the process.
    "input": ("running",),
    # The removal of a deferred delete is carried out (the agent is back,
    # or the instance goes).
    "finish_delete": ("deleting",),
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


def may(action, status):
    """
    Whether ``action`` is allowed in ``status``.
    """
    return status in ALLOWED[action]


def check(action, status, detail=""):
    """
    Raise ``InvalidState`` unless ``action`` is allowed in ``status``.
    """
    if not may(action, status):
        raise InvalidState(action, status, detail)
