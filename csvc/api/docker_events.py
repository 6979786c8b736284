"""
Docker's ``GET /events`` for a project's containers, fed by csvc's own
notifications: ``DockerEvents`` is a notification sink (``ISink``) that
turns each container notification into Docker's event and writes it to the
open event streams of that container's project.

Only events from the moment a stream opens (there is no history for
``since``); ``until`` ends the stream then.  Each stream is the push
producer of its response: while the client's connection is backed up,
events wait, at most ``EventStream.limit`` of them; beyond that the stream
ends (an event stream that silently skips events would mislead).
"""

import json
from collections import deque

import re2
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from csvc.api.schemas import BadRequest
from csvc.notify import events as notices
from csvc.notify.sinks import ISink

#: notification -> Docker's container action
ACTIONS = {
    notices.CONTAINER_CREATE_END: "create",
    notices.CONTAINER_START: "start",
    notices.CONTAINER_EXIT: "die",
    notices.CONTAINER_DELETE_END: "destroy",
}

#: The filters ``GET /events`` understands.
FILTERS = ("type", "event", "container", "image")

#: Most values one filter takes, and the longest value (characters).
MAX_FILTER_VALUES = 64
MAX_FILTER_VALUE = 4096
#: The longest pattern a ``name`` filter takes (characters).
MAX_PATTERN = 1024
#: Memory RE2 may use for one compiled pattern (its program and DFA cache).
_PATTERN_MEMORY = 1024 * 1024


def _pattern_options():
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _PATTERN_MEMORY
    return options


_PATTERN_OPTIONS = _pattern_options()


def name_pattern(value, who="name"):
    """
    A client's regular expression (Docker's ``name`` filter) compiled with
    RE2: Go's syntax, as Docker reads it, matched in time linear in the
    subject whatever the pattern (Python's ``re`` backtracks: ``(a+)+$``
    takes exponential time on the reactor).  A 400 naming the filter for a
    pattern that is too long or invalid.
    """
    if len(value) > MAX_PATTERN:
        raise BadRequest(f"filter {who}: a pattern of {len(value)} characters is longer than {MAX_PATTERN}")
    try:
        return re2.compile(value, _PATTERN_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else ""
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise BadRequest(f"filter {who}: invalid regular expression {value!r}: {reason or 'not RE2 syntax'}") from None


def docker_event(envelope, seconds):
    """
    Docker's event for a container notification, or None.
    """
    payload = envelope.get("payload") or {}
    action = ACTIONS.get(envelope.get("event_type"))
    if envelope.get("event_type") == notices.CONTAINER_STOP:
        action = "kill" if payload.get("action") == "kill" else "stop"
    if action is None or not payload.get("engine_id"):
        return None
    ident = payload["engine_id"]
    attributes = {"image": payload.get("image") or "", "name": payload.get("name") or ""}
    if action == "die":
        attributes["exitCode"] = str(payload.get("exit_code") if payload.get("exit_code") is not None else -1)
    if action == "kill" and payload.get("signal"):
        attributes["signal"] = str(payload["signal"])
    return {
        "status": action, "id": ident, "from": attributes["image"], "Type": "container", "Action": action,
        "Actor": {"ID": ident, "Attributes": attributes}, "scope": "local",
        "time": int(seconds), "timeNano": int(seconds * 1e9),
    }


def parse_filters(text, allowed=FILTERS, who="events"):
    """
    ``{name: [values]}`` from the ``filters`` query parameter (values as a
    list or as Docker's ``{value: true}``; names with no value left out);
    a 400 naming what is wrong.  ``allowed``: the names ``who`` takes
    (None: any).
    """
    if not text:
        return {}
    try:
        filters = json.loads(text)
    except ValueError:
        raise BadRequest(f"invalid filters: {text!r} is not JSON") from None
    if not isinstance(filters, dict):
        raise BadRequest("filters must be a JSON object")
    out = {}
    for key, wanted in filters.items():
        if allowed is not None and key not in allowed:
            raise BadRequest(f"invalid filter '{key}' ({who} take {', '.join(allowed)})")
        if isinstance(wanted, dict):
            wanted = [k for k, v in wanted.items() if v]
        if not isinstance(wanted, list) or not all(isinstance(w, str) for w in wanted):
            raise BadRequest(f"filter {key}: must be a list of strings")
        if len(wanted) > MAX_FILTER_VALUES:
            raise BadRequest(f"filter {key}: {len(wanted)} values, more than {MAX_FILTER_VALUES}")
        for w in wanted:
            if len(w) > MAX_FILTER_VALUE:
                raise BadRequest(f"filter {key}: a value of {len(w)} characters is longer than {MAX_FILTER_VALUE}")
        if wanted:
            out[key] = wanted
    return out


def matches(event, filters):
    actor = event["Actor"]
    checks = {
        "type": lambda w: w == event["Type"],
        "event": lambda w: w == event["Action"],
        "container": lambda w: actor["ID"].startswith(w) or actor["Attributes"]["name"] == w.lstrip("/"),
        "image": lambda w: actor["Attributes"]["image"] in (w, w + ":latest"),
    }
    return all(any(checks[key](w) for w in wanted) for key, wanted in filters.items())


@implementer(IPushProducer)
class EventStream:
    """
    One client's ``GET /events``: the project's events that pass its
    filters, one JSON document per line.  ``done`` fires when it is over.
    """

    log = Logger()

    #: Events held while the client is backed up.
    limit = 256

    def __init__(self, request, project_id, filters, on_end):
        self.project_id = project_id
        self._request = request
        self._filters = filters
        self._on_end = on_end
        self._paused = False
        self._held = deque()
        self.over = False
        self.done = Deferred()
        request.registerProducer(self, True)
        request.notifyFinish().addErrback(lambda _: self._end(client_gone=True))

    def offer(self, event):
        if self.over or not matches(event, self._filters):
            return
        if self._paused:
            if len(self._held) >= self.limit:
                self.log.info("an event stream of {project} fell {n} events behind: ended", project=self.project_id,
                              n=self.limit)
                self.end()
                return
            self._held.append(event)
            return
        self._request.write(json.dumps(event).encode("utf-8") + b"\n")

    def end(self):
        """
        End the response (``until`` reached, the service stopping).
        """
        self._end(client_gone=False)

    def _end(self, client_gone):
        if self.over:
            return
        self.over = True
        self._held.clear()
        if self._request.channel is not None:
            self._request.unregisterProducer()
        else:
            self._request.producer = None
        self._on_end(self)
        self.done.callback(None)

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        while self._held and not self._paused and not self.over:
            self._request.write(json.dumps(self._held.popleft()).encode("utf-8") + b"\n")

    def stopProducing(self):
        self._end(client_gone=True)


@implementer(ISink)
class DockerEvents:
    """
    The open event streams, fed by the notifier.
    """

    def __init__(self, clock):
        self._clock = clock
        self._streams = set()

    def __len__(self):
        return len(self._streams)

    def start(self):
        pass

    def stop(self):
        for stream in list(self._streams):
            stream.end()
        return None

    def open(self, request, project_id, filters):
        stream = EventStream(request, project_id, filters, self._streams.discard)
        self._streams.add(stream)
        return stream

    def deliver(self, envelope, project_id):
        if project_id is None:
            return
        try:
            event = docker_event(envelope, self._clock.seconds())
        except Exception:
            return
        if event is None:
            return
        for stream in [s for s in self._streams if s.project_id == project_id]:
            try:
                stream.offer(event)
            except Exception:
                Logger().failure("an event stream failed")
