"""
What agents report about containers, and who hears it.

The hub calls agents for the container service (``csvc.compute``), and
agents report back what happened to containers; the one that hears those
reports is the container service.  Each agent link is given it when the
link is made (``AgentLink(hub, journal, events)``), after the container
service exists, so neither the hub nor the service is told about the other
after construction.
"""

from zope.interface import Interface


class IContainerEvents(Interface):
    """
    The container reports an agent link delivers, each answered (its
    Deferred fired) once recorded.
    """

    def on_started(container_uuid):
        """
        The engine started the container (by itself: a restart policy).
        """

    def on_exited(container_uuid, exit_code, last_seq, finished_at):
        """
        The container's process exited; its output up to ``last_seq`` is sent.
        """

    def on_vanished(container_uuid, instance_name, seen, exit_code, last_seq):
        """
        The container was removed from the engine by something other than csvc.
        """

    def on_found(row, engine_state):
        """
        The instance's agent has registered and its engine has the container
        (``engine_state``: the engine's word for its state).
        """

    def on_missing(row, instance_name):
        """
        The instance's agent has registered and its engine does not have
        the container.
        """

    def finish_deletions(rows):
        """
        The instance's agent has registered: its ``deleting`` containers
        (``rows``) are to be removed from its engine.
        """
