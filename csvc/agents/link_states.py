"""
An agent link's life (``hub.AgentLink``): one explicit state, moved only
through ``link_step``.

``unregistered`` (connected, may send a Register or an Enroll box and at
most a Register box's worth of bytes, until its deadline) -> ``registered``
(the hub named its instance); ``unregistered`` -> ``dropped`` (late, or too
many bytes: nothing more is read); any -> ``closed`` (the connection is
lost), which ignores every event.
"""

from csvc.wire.states import InvalidEvent, StateTable

UNREGISTERED, REGISTERED, DROPPED, CLOSED = "unregistered", "registered", "dropped", "closed"

#: Every state a link may be in.
LINK_STATES = (UNREGISTERED, REGISTERED, DROPPED, CLOSED)

#: (state, event) -> state.  A closed link ignores every event; any other
#: pair not here is a bug (``link_step`` raises).
LINK_TRANSITIONS = {
    (UNREGISTERED, "registered"): REGISTERED,
    # The agent registered again on the same link: its answer is the last.
    (REGISTERED, "registered"): REGISTERED,
    # A registration that was under way when the link was dropped: the
    # link is going all the same.
    (DROPPED, "registered"): DROPPED,
    # No Register box within the deadline, or more bytes than one before it.
    (UNREGISTERED, "drop"): DROPPED,
    (UNREGISTERED, "lost"): CLOSED,
    (REGISTERED, "lost"): CLOSED,
    (DROPPED, "lost"): CLOSED,
}



class InvalidLinkEvent(InvalidEvent):
    """
    An event the link's state does not take (a bug of the link).
    """


_TABLE = StateTable("link", LINK_TRANSITIONS, absorbing=[CLOSED], invalid=InvalidLinkEvent)
LINK_EVENTS = _TABLE.events
#: The state an event moves a link in a state to.
link_step = _TABLE.step
