"""
The one writer of a container's status: ``Lifecycle.transition`` moves a
container along ``states.TRANSITIONS`` with the store's conditional update,
then tells the notifier and the journal (whose waiters read the new state).
"""

from twisted.internet.defer import inlineCallbacks

from csvc.compute import states
from csvc.notify import events as notices
from csvc.notify.notifier import NullNotifier

#: event -> the notice a transition on it sends (before the journal wakes
#: waiters: a stop's waiter tells that it ended the run after the exit)
NOTICES = {
    "created": notices.CONTAINER_CREATE_END,
    "start_requested": notices.CONTAINER_START,
    "agent_started": notices.CONTAINER_START,
    "exited": notices.CONTAINER_EXIT,
}


def marked_down(row):
    """
    Whether a container's error is only its instance having been marked
    down (``instance_down``, csvc.scheduler.health), not something of its
    own: its agent's return may take it back.
    """
    reason = row.get("status_reason") or ""
    return row["status"] == "error" and reason.startswith("instance ") and " is down: " in reason


class Lifecycle:
    """
    Container status writes, each one a transition of the table.
    """

    def __init__(self, store, journal, notifier=None):
        self._store = store
        self._journal = journal
        self._notifier = notifier if notifier is not None else NullNotifier()

    @inlineCallbacks
    def transition(self, container_uuid, event, announce=True, **values):
        """
        Move the container on ``event`` if its stored status is one the
        event may leave, writing ``values`` with it.  Fires with the new row,
        or None when the row is gone or in another state (nothing written,
        nothing told).  ``announce=False`` leaves telling to ``announce``
        (a start is told once the engine has started it).
        """
        row = yield self._store.update_container(
            container_uuid, expect_status=states.sources(event), status=states.target(event), **values
        )
        if row is not None and announce:
            self.announce(event, row)
        return row

    def announce(self, event, row):
        """
        Tell the notifier (when the event has a notice) and the journal's
        waiters that ``row`` went through ``event``.
        """
        notice = NOTICES.get(event)
        if notice is not None:
            self._notifier.container(notice, row)
        self._journal.state_changed(row["uuid"])

    @inlineCallbacks
    def instance_down(self, instance_uuid, reason):
        """
        The instance's agent is gone: the store marks the instance down and
        its containers ``instance_down`` in one transaction.  Fires with
        their uuids.
        """
        errored = yield self._store.mark_instance_down(
            instance_uuid, reason, states.sources("instance_down"), states.target("instance_down")
        )
        for container_uuid in errored:
            self._journal.state_changed(container_uuid)
        return errored
