"""
Instances whose agent stopped answering: marked ``down`` and their live
containers ``error``, so that nothing is placed there and whoever asks for
them is told at once (503, naming the instance).
"""

from twisted.application.service import Service
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.logger import Logger


class HeartbeatMonitor(Service):
    """
    Every heartbeat interval, looks for instances last heard of more than
    ``missed`` intervals ago.  For ``startup`` seconds after the service
    starts it looks at nothing: agents are still coming back after a restart.
    """

    log = Logger()

    def __init__(self, store, hub, lifecycle, clock, interval, missed=3, startup=None):
        self._store = store
        self._hub = hub
        #: the containers' life cycle (``csvc.compute.lifecycle.Lifecycle``):
        #: the one writer of their status
        self._lifecycle = lifecycle
        self._clock = clock
        self.interval = interval
        self.missed = missed
        self.startup = self.startup_for(interval, missed) if startup is None else startup
        self._started_at = None
        self._loop = LoopingCall(self.check)
        self._loop.clock = clock

    @staticmethod
    def startup_for(interval, missed=3):
        """
        How long after a start agents are given to come back: ``missed``
        heartbeat intervals, at least 10 s.
        """
        return max(missed * interval, 10.0)

    def startService(self):
        Service.startService(self)
        self._started_at = self._clock.seconds()
        self._loop.start(self.interval, now=False)

    def stopService(self):
        Service.stopService(self)
        if self._loop.running:
            self._loop.stop()

    @inlineCallbacks
    def check(self):
        """
        One look; a failure is logged and the next look happens anyway.
        """
        try:
            now = self._clock.seconds()
            if self._started_at is not None and now - self._started_at < self.startup:
                return
            silence = self.missed * self.interval
            for row in (yield self._store.stale_instances(now - silence)):
                if row["status"] != "active" and not row["live"]:
                    continue
                yield self._down(row, silence)
        except Exception:
            self.log.failure("checking the instances' heartbeats failed")

    @inlineCallbacks
    def _down(self, row, silence):
        reason = f"instance {row['name']} is down: its agent missed heartbeats for {silence:g} s"
        self._hub.drop(row["uuid"], reason)
        errored = yield self._lifecycle.instance_down(row["uuid"], reason)
        self.log.warn("{reason}; {n} containers marked error", reason=reason, n=len(errored))
