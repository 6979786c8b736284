"""
Instances created for a project that stay empty for the grace period are
removed through their provider.  Shared instances and an operator's hosts are
never reaped.
"""

from twisted.application.service import Service
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.logger import Logger


class IdleReaper(Service):
    log = Logger()

    def __init__(self, store, instances, placement, providers, clock, grace, interval=None):
        self._store = store
        self._instances = instances
        self._placement = placement
        self._providers = set(providers)
        self._clock = clock
        self.grace = grace
        self.interval = interval if interval is not None else min(max(grace / 4, 0.5), 30.0)
        #: instance uuid -> when it was first seen empty
        self._empty_since = {}
        self._loop = LoopingCall(self.check)
        self._loop.clock = clock

    def startService(self):
        Service.startService(self)
        self._loop.start(self.interval, now=False)

    def stopService(self):
        Service.stopService(self)
        if self._loop.running:
            self._loop.stop()

    def _reapable(self, row):
        return (
            row.get("project_id") is not None
            and row["provider"] in self._providers
            and row["status"] in ("pending", "active", "down")
        )

    @inlineCallbacks
    def check(self):
        """
        One pass; a failure is logged and the next pass happens anyway.
        """
        try:
            now = self._clock.seconds()
            waited_on = self._placement.pending() if self._placement is not None else set()
            seen = set()
            for row in (yield self._store.list_instances()):
                uuid = row["uuid"]
                if not self._reapable(row) or row["containers"] or uuid in waited_on:
                    continue
                seen.add(uuid)
                since = self._empty_since.setdefault(uuid, now)
                if now - since < self.grace:
                    continue
                if (yield self._instances.drain_if_empty(row)):
                    self.log.info("instance {name} was empty for {grace:g} s: removing it", name=row["name"],
                                  grace=self.grace)
                    yield self._instances.remove(row)
                seen.discard(uuid)
            self._empty_since = {u: t for u, t in self._empty_since.items() if u in seen}
        except Exception:
            self.log.failure("removing idle instances failed")
