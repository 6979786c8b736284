"""
``Notifier``: the one place notifications are emitted from.  ``emit`` wraps
a payload in its envelope and hands it to every sink; it returns at once and
never raises, whatever a sink does, so an API call or an agent event is
never held up or failed by a notification.

``ExistsAudit``: every ``interval`` seconds, ``compute.container.exists``
for every container (Nova's periodic ``exists``, for billing and audit).
"""

import socket

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from csvc.notify import events
from csvc.notify.events import ERROR, INFO


def default_publisher_id():
    return f"csvc.{socket.gethostname()}"


class Notifier(Service):
    log = Logger()

    def __init__(self, clock, sinks=(), subscriptions=None, publisher_id=None):
        self._clock = clock
        self.sinks = list(sinks)
        self.subscriptions = subscriptions
        self.publisher_id = publisher_id or default_publisher_id()

    def startService(self):
        Service.startService(self)
        for sink in self.sinks:
            sink.start()
        if self.subscriptions is not None:
            d = self.subscriptions.load()
            d.addCallback(lambda n: self.log.info("notifications: {count} webhook subscription(s)", count=n))
            d.addErrback(lambda f: self.log.failure("loading the webhook subscriptions failed", f))

    def stopService(self):
        Service.stopService(self)
        stopping = [maybeDeferred(sink.stop) for sink in self.sinks]
        for d in stopping:
            d.addErrback(lambda f: self.log.failure("stopping a notification sink failed", f))
        return DeferredList(stopping)

    def emit(self, event_type, payload, project_id, priority=INFO):
        """
        Tell every sink.  Returns at once, never raises.
        """
        try:
            envelope = events.envelope(event_type, payload, self.publisher_id, priority, self._clock.seconds())
        except Exception:
            self.log.failure("building the {event_type} notification failed", event_type=event_type)
            return
        for sink in self.sinks:
            try:
                sink.deliver(envelope, project_id)
            except Exception:
                self.log.failure("a notification sink failed on {event_type}", event_type=event_type)

    # -- what emitters call ------------------------------------------------

    def container(self, event_type, row, priority=INFO, **extra):
        """
        A container's event: its payload from its row (plus ``extra``), to
        its project.
        """
        try:
            payload = events.container_payload(row, **extra)
            project_id = row.get("project_id")
        except Exception:
            self.log.failure("building the {event_type} payload failed", event_type=event_type)
            return
        self.emit(event_type, payload, project_id, priority)

    def container_failed(self, event_type, row, reason):
        self.container(event_type, row, ERROR, reason=reason)

    def instance_created(self, row, project_id=None):
        """
        A provider created an instance (``project_id``: the project it was
        created for, when it is not shared).
        """
        self.emit(events.INSTANCE_CREATE, events.instance_payload(row, project_id), project_id)

    def instance_deleted(self, row, project_id=None):
        self.emit(events.INSTANCE_DELETE, events.instance_payload(row, project_id), project_id)


class NullNotifier:
    """
    Emits nothing: for a ``ContainerService`` or a provider not given one.
    """

    def emit(self, event_type, payload, project_id, priority=INFO):
        pass

    def container(self, event_type, row, priority=INFO, **extra):
        pass

    def container_failed(self, event_type, row, reason):
        pass

    def instance_created(self, row, project_id=None):
        pass

    def instance_deleted(self, row, project_id=None):
        pass


class ExistsAudit(Service):
    """
    ``compute.container.exists`` for each container every ``interval``
    seconds (the first after one interval), with the audit period; emitted
    ``chunk`` at a time with ``pause`` seconds between, so that a sink's
    bounded buffer keeps up.  A failed round is logged; the next one runs.
    """

    log = Logger()

    def __init__(self, store, notifier, interval, clock, chunk=200, pause=0.05):
        self._store = store
        self._notifier = notifier
        self._interval = interval
        self._clock = clock
        self._chunk = chunk
        self._pause = pause
        self._loop = None
        self._last = None

    def startService(self):
        Service.startService(self)
        self._last = self._clock.seconds()
        self._loop = LoopingCall(self._round)
        self._loop.clock = self._clock
        d = self._loop.start(self._interval, now=False)
        d.addErrback(lambda f: self.log.failure("the exists audit stopped", f))

    def stopService(self):
        Service.stopService(self)
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def _round(self):
        d = self.audit()
        d.addErrback(lambda f: self.log.failure("an exists audit round failed", f))
        return d

    @inlineCallbacks
    def audit(self):
        beginning = self._last
        ending = self._clock.seconds()
        self._last = ending
        period = {
            "audit_period_beginning": events.timestamp(beginning),
            "audit_period_ending": events.timestamp(ending),
        }
        rows = yield self._store.list_containers()
        for start in range(0, len(rows), self._chunk):
            if start and self._pause:
                pause = Deferred()
                self._clock.callLater(self._pause, pause.callback, None)
                yield pause
            for row in rows[start:start + self._chunk]:
                self._notifier.container(events.CONTAINER_EXISTS, row, **period)
        return len(rows)
