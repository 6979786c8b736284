"""
A lifecycle as one table: ``(state, event) -> state``.

The agent's output follower, the control plane's agent link and the relay's
attach session each keep their life in such a table; this is the one piece
that steps them.
"""


class InvalidEvent(Exception):
    """
    An event a state does not take (a bug of whatever keeps that state).
    """


class StateTable:
    """
    ``transitions`` maps ``(state, event)`` to the next state.  A state in
    ``absorbing`` ignores every event (it stays); any other pair not in the
    table raises ``invalid`` (an ``InvalidEvent``), whose message names
    ``subject``.
    """

    def __init__(self, subject, transitions, absorbing=(), invalid=InvalidEvent):
        self.subject = subject
        self.transitions = transitions
        self.absorbing = frozenset(absorbing)
        self.invalid = invalid
        #: Every event some state takes.
        self.events = frozenset(event for _, event in self.transitions)

    def step(self, state, event):
        """
        The state ``event`` moves ``state`` to.
        """
        if state in self.absorbing:
            return state
        try:
            return self.transitions[(state, event)]
        except KeyError:
            raise self.invalid(f"a {self.subject} {state} takes no {event!r}") from None
