"""
The projects' webhook subscriptions: stored (``subscriptions`` table) and
kept in memory too, so routing a notification never waits for the store.
The control plane is the only writer; it loads them all when it starts.
"""

from twisted.internet.defer import inlineCallbacks
from twisted.logger import Logger

from csvc.notify.events import matches

#: Subscriptions a project may hold: with each queue bounded, memory is too.
MAX_PER_PROJECT = 20


class SubscriptionNotFound(Exception):
    pass


class Subscriptions:
    log = Logger()

    def __init__(self, store, destinations, limit=MAX_PER_PROJECT):
        """
        ``destinations``: the ``csvc.notify.destinations.Destinations`` a
        subscription's URL is checked against before it is stored.
        """
        self._store = store
        self._destinations = destinations
        self._limit = limit
        self._by_project = {}
        self._removed = []

    def on_removed(self, callback):
        """
        ``callback(uuid)`` whenever a subscription is deleted.
        """
        self._removed.append(callback)

    @inlineCallbacks
    def load(self):
        rows = yield self._store.list_subscriptions()
        by_project = {}
        for row in rows:
            by_project.setdefault(row["project_id"], {})[row["uuid"]] = row
        self._by_project = by_project
        return len(rows)

    @inlineCallbacks
    def create(self, project_id, url, event_types):
        """
        Store a subscription; ``UnsafeDestination`` when its URL names, or
        resolves to, an internal address.
        """
        yield self._destinations.check_url(url)
        row = yield self._store.create_subscription(project_id, url, list(event_types), self._limit)
        self._by_project.setdefault(project_id, {})[row["uuid"]] = row
        return row

    def list(self, project_id=None):
        """
        A project's subscriptions (everyone's when None), from the store.
        """
        return self._store.list_subscriptions(project_id)

    @inlineCallbacks
    def delete(self, subscription_uuid, project_id=None):
        """
        Delete one of ``project_id``'s subscriptions (anyone's when None);
        ``SubscriptionNotFound`` when there is none such.
        """
        row = yield self._store.delete_subscription(subscription_uuid, project_id)
        if row is None:
            raise SubscriptionNotFound(f"subscription {subscription_uuid} not found")
        project = self._by_project.get(row["project_id"], {})
        project.pop(row["uuid"], None)
        if not project:
            self._by_project.pop(row["project_id"], None)
        for callback in self._removed:
            try:
                callback(row["uuid"])
            except Exception:
                self.log.failure("a subscription observer failed")
        return row

    def matching(self, project_id, event_type):
        """
        ``project_id``'s subscriptions that select ``event_type``.
        """
        return [
            row
            for row in self._by_project.get(project_id, {}).values()
            if any(matches(pattern, event_type) for pattern in row["event_types"])
        ]
