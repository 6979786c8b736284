"""
Following the engine's event stream: each csvc container ``start``, ``die``
and ``destroy`` becomes a call on the agent core, so containers started by
the engine itself (restart policies) have their output followed too, and a
container removed from the engine behind the service's back is reported.
"""

import json
from datetime import datetime, timezone

from twisted.internet.protocol import Protocol
from twisted.logger import Logger


def _rfc3339(time_nano):
    """
    An event's ``timeNano`` as the engine writes times in inspect (RFC 3339,
    UTC, 'Z'); "" when there is none.
    """
    try:
        ns = int(time_nano)
    except (TypeError, ValueError):
        return ""
    seconds, fraction = divmod(ns, 10**9)
    stamp = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:09d}Z"


class EventLines(Protocol):
    """
    JSON lines from the engine's ``/events`` stream; at most one line of
    ``max_line`` bytes is buffered.
    """

    log = Logger()
    max_line = 256 * 1024

    def __init__(self, on_event, on_end):
        self._buffer = b""
        self._on_event = on_event
        self._on_end = on_end

    def dataReceived(self, data):
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        if len(self._buffer) > self.max_line:
            self.log.error("engine event line over {n} bytes dropped", n=self.max_line)
            self._buffer = b""
        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                self.log.error("unreadable engine event")
                continue
            self._on_event(event)

    def connectionLost(self, reason):
        self._on_end()


class EngineEvents:
    """
    Keeps one event stream open, reopening it after a pause when it ends.
    """

    log = Logger()

    def __init__(self, engine, core, clock, retry_delay=1.0):
        self._engine = engine
        self._core = core
        self._clock = clock
        self._retry_delay = retry_delay
        self._running = False
        self._protocol = None
        self._retry = None

    def start(self):
        self._running = True
        self._open()

    def stop(self):
        self._running = False
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.stopProducing()

    def _open(self):
        self._protocol = EventLines(self._event, self._ended)
        d = self._engine.follow_events(self._protocol)
        d.addErrback(self._failed)

    def _failed(self, failure):
        self.log.warn("engine event stream unavailable: {why}", why=failure.getErrorMessage())
        self._ended()

    def _ended(self):
        if self._running:
            self._retry = self._clock.callLater(self._retry_delay, self._open)

    def _event(self, event):
        action = event.get("Action")
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        uuid = attributes.get("csvc.uuid")
        if not uuid:
            return
        if action == "start":
            self._core.engine_started(uuid, str(event.get("timeNano", "")))
        elif action == "die":
            try:
                exit_code = int(attributes.get("exitCode"))
            except (TypeError, ValueError):
                return
            self._core.engine_died(uuid, exit_code, _rfc3339(event.get("timeNano")))
        elif action == "destroy":
            self._core.engine_destroyed(uuid)
