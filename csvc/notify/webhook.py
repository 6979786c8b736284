"""
Webhooks: each subscription's notifications POSTed (JSON) to its URL.

Per subscription, one ``WebhookQueue``: notifications wait in a bounded FIFO
(``max_queue``) and go one at a time, in order.  A delivery that fails (a
connection error, no answer within ``timeout`` seconds, any status other
than 2xx) is retried after ``backoff``, ``2 * backoff``, ``4 * backoff``...
seconds (at most ``max_backoff``), up to ``attempts`` attempts in all; then
it is given up (counted and warned about) and the next one goes.  When a
receiver falls so far behind that its queue is full, the *oldest* waiting
notification is dropped to make room, again counted and warned about.
Delivery is at least once: a receiver that answers too late may see a
notification twice (``message_id`` tells them apart).  Redirects are not
followed.  Nothing here ever blocks or fails an emitter.
"""

import json
from collections import deque
from urllib.parse import urlsplit, urlunsplit

from treq import collect
from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from zope.interface import implementer

from csvc.notify.sinks import ISink


class DeliveryRefused(Exception):
    """
    The receiver answered with a status other than 2xx.
    """


def _discard(_data):
    pass


def loggable_url(url):
    """
    A webhook URL as logs may show it: no query string, fragment or user
    information (receivers put their secrets there).
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "<a URL that does not parse>"
    query = "?<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, host + port, parts.path, "", "")) + query


def _without(text, url, shown):
    return text.replace(url, shown) if url else text


class WebhookQueue:
    """
    One subscription's deliveries.
    """

    log = Logger()

    def __init__(self, subscription, post, clock, counts, max_queue=1000, attempts=5, timeout=10.0,
                 backoff=1.0, max_backoff=60.0, on_idle=None):
        self.subscription_uuid = subscription["uuid"]
        self.url = subscription["url"]
        #: what log lines say of it
        self.logged_url = loggable_url(self.url)
        self._post = post
        self._clock = clock
        self._counts = counts
        self._max_queue = max_queue
        self._attempts = attempts
        self._timeout = timeout
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._on_idle = on_idle
        self._waiting = deque()
        self._current = None  # the envelope being delivered
        self._attempt = 0
        self._request = None
        self._timer = None
        self._closed = False

    def __len__(self):
        return len(self._waiting)

    @property
    def idle(self):
        return self._current is None and self._timer is None and not self._waiting

    def put(self, envelope):
        if self._closed:
            return
        if len(self._waiting) >= self._max_queue:
            dropped = self._waiting.popleft()
            self._counts["dropped"] += 1
            self.log.warn(
                "webhook {subscription} is behind (queue of {limit} full): dropped the oldest "
                "notification, {event_type} {message_id}",
                subscription=self.subscription_uuid, limit=self._max_queue,
                event_type=dropped["event_type"], message_id=dropped["message_id"],
            )
        self._waiting.append(envelope)
        if self._current is None and self._timer is None:
            self._next()

    def _next(self):
        self._timer = None
        if self._closed:
            return
        if not self._waiting:
            self._current = None
            if self._on_idle is not None:
                self._on_idle(self)
            return
        self._current = self._waiting.popleft()
        self._attempt = 0
        self._send()

    def _send(self):
        self._timer = None
        self._attempt += 1
        envelope = self._current
        body = json.dumps(envelope, separators=(",", ":"), default=str).encode("utf-8")
        headers = {
            b"Content-Type": [b"application/json"],
            b"User-Agent": [b"csvc-notifier"],
            b"X-Csvc-Event-Type": [envelope["event_type"].encode("ascii")],
            b"X-Csvc-Message-Id": [envelope["message_id"].encode("ascii")],
            b"X-Csvc-Subscription": [self.subscription_uuid.encode("ascii")],
        }
        try:
            d = self._post(self.url, data=body, headers=headers, allow_redirects=False)
        except Exception as exc:  # a URL the client refuses outright
            self._attempt_failed_now(exc)
            return
        d.addCallback(self._check)
        d.addTimeout(self._timeout, self._clock)
        self._request = d
        d.addCallbacks(self._delivered, self._failed)

    def _check(self, response):
        # The body is read and thrown away, so the connection can be reused.
        d = collect(response, _discard)

        def checked(_):
            if not 200 <= response.code < 300:
                raise DeliveryRefused(f"HTTP {response.code}")

        return d.addCallback(checked)

    def _delivered(self, _):
        self._request = None
        self._counts["delivered"] += 1
        self._advance()

    def _advance(self):
        # The next one goes from the reactor, not from within this call
        # chain: a client that answers synchronously cannot deepen the stack.
        self._current = None
        self._timer = self._clock.callLater(0, self._next)

    def _failed(self, failure):
        self._request = None
        if self._closed:
            return None
        if failure.check(CancelledError):
            why = f"no answer within {self._timeout:g}s"
        else:
            why = failure.getErrorMessage() or failure.type.__name__
        self._retry_or_give_up(why)
        return None

    def _attempt_failed_now(self, exc):
        self._retry_or_give_up(str(exc) or exc.__class__.__name__)

    def _retry_or_give_up(self, why):
        envelope = self._current
        why = _without(why, self.url, self.logged_url)
        if self._attempt >= self._attempts:
            self._counts["failed"] += 1
            self.log.warn(
                "webhook {subscription}: gave up delivering {event_type} {message_id} to {url} after "
                "{attempts} attempt(s): {why}",
                subscription=self.subscription_uuid, event_type=envelope["event_type"],
                message_id=envelope["message_id"], url=self.logged_url, attempts=self._attempt, why=why,
            )
            self._advance()
            return
        delay = min(self._backoff * 2 ** (self._attempt - 1), self._max_backoff)
        self._counts["retried"] += 1
        self.log.info(
            "webhook {subscription}: attempt {attempt} to {url} failed ({why}); retrying in {delay}s",
            subscription=self.subscription_uuid, attempt=self._attempt, url=self.logged_url, why=why, delay=delay,
        )
        self._timer = self._clock.callLater(delay, self._send)

    def close(self):
        """
        Stop: what waits is dropped, a retry is called off, a request in
        flight is cancelled.
        """
        if self._closed:
            return
        self._closed = True
        lost = len(self._waiting) + (1 if self._current is not None else 0)
        self._waiting.clear()
        self._current = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._request is not None:
            request, self._request = self._request, None
            request.cancel()
        if lost:
            self._counts["abandoned"] += lost


@implementer(ISink)
class WebhookSink:
    """
    Routes each notification of a project to that project's subscriptions
    whose event types select it.  The service's own notifications (no
    project, such as an instance's) go to no webhook.
    """

    log = Logger()

    def __init__(self, subscriptions, post, clock, max_queue=1000, attempts=5, timeout=10.0,
                 backoff=1.0, max_backoff=60.0):
        self._subscriptions = subscriptions
        self._post = post
        self._clock = clock
        self._settings = dict(
            max_queue=max_queue, attempts=attempts, timeout=timeout, backoff=backoff, max_backoff=max_backoff
        )
        self._queues = {}
        self._accepting = False
        #: delivered, retried (attempts that failed and were retried), failed
        #: (given up), dropped (queue full), abandoned (at stop or unsubscribe)
        self.counts = {"delivered": 0, "retried": 0, "failed": 0, "dropped": 0, "abandoned": 0}
        subscriptions.on_removed(self.forget)

    def start(self):
        self._accepting = True

    def stop(self):
        self._accepting = False
        for queue in list(self._queues.values()):
            queue.close()
        self._queues.clear()
        if self.counts["abandoned"]:
            self.log.info("webhooks: {count} notification(s) undelivered at stop", count=self.counts["abandoned"])

    def queue(self, subscription_uuid):
        """
        The subscription's queue while it has work, else None.
        """
        return self._queues.get(subscription_uuid)

    def deliver(self, envelope, project_id):
        if not self._accepting or project_id is None:
            return
        for subscription in self._subscriptions.matching(project_id, envelope["event_type"]):
            queue = self._queues.get(subscription["uuid"])
            if queue is None:
                queue = WebhookQueue(
                    subscription, self._post, self._clock, self.counts, on_idle=self._idle, **self._settings
                )
                self._queues[subscription["uuid"]] = queue
            queue.put(envelope)

    def _idle(self, queue):
        if self._queues.get(queue.subscription_uuid) is queue:
            del self._queues[queue.subscription_uuid]

    def forget(self, subscription_uuid):
        """
        The subscription is gone: nothing more goes to it.
        """
        queue = self._queues.pop(subscription_uuid, None)
        if queue is not None:
            queue.close()
