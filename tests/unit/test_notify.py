"""
Notifications (csvc.notify): the envelope, the JSON-lines log, webhook
delivery (retries with backoff, timeouts, bounded queues), routing to a
project's own subscriptions, and the periodic exists audit.  Time is a
``Clock``; webhooks are a tiny ``Resource`` behind ``StubTreq``.
"""

import json
import re
from datetime import datetime

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from zope.interface.verify import verifyObject

from csvc.notify import events
from csvc.notify.notifier import ExistsAudit, Notifier
from csvc.notify.sinks import ISink, JsonLinesSink
from csvc.notify.subscriptions import Subscriptions, SubscriptionNotFound
from csvc.notify.webhook import WebhookSink
from csvc.notify.destinations import Destinations
from tests.resolvers import TableResolver

#: every name resolves to a public address
PUBLIC_ONLY = Destinations(TableResolver(), clock=Clock())

EPOCH = 1_700_000_000  # 2023-11-14T22:13:20Z

ROW = {
    "uuid": "c-1",
    "name": "web",
    "project_id": "alpha",
    "user_id": "alice",
    "image": "busybox:latest",
    "status": "exited",
    "status_reason": None,
    "instance_uuid": "i-1",
    "exit_code": 3,
    "memory": 64,
    "cpu": None,
    "environment": {"SECRET": "s3cret"},
    "command": ["sh", "-c", "exit 3"],
    "created_at": datetime(2023, 11, 14, 22, 13, 20),
    "started_at": datetime(2023, 11, 14, 22, 13, 21, 500000),
    "finished_at": None,
}


class Recording:
    def __init__(self):
        self.received = []

    def start(self):
        pass

    def stop(self):
        return None

    def deliver(self, envelope, project_id):
        self.received.append((project_id, envelope))


class Broken(Recording):
    def deliver(self, envelope, project_id):
        raise RuntimeError("sink exploded")


class Immediate:
    """
    An executor that runs each job at once on the calling thread.
    """

    def __init__(self):
        self.started = self.stopped = False

    def start(self):
        self.started = True

    def stop(self):
        self.stopped = True

    def run(self, f, *args):
        try:
            return succeed(f(*args))
        except Exception:
            return fail(Failure())


class Manual(Immediate):
    """
    An executor whose jobs run when the test says (a slow disk).
    """

    def __init__(self):
        super().__init__()
        self.jobs = []

    def run(self, f, *args):
        d = Deferred()
        self.jobs.append((f, args, d))
        return d

    def finish_one(self):
        f, args, d = self.jobs.pop(0)
        d.callback(f(*args))


class MemoryStore:
    """
    The store's subscription and container calls, in memory.
    """

    def __init__(self, containers=()):
        self.rows = []
        self.containers = list(containers)
        self.failing = False
        self.n = 0

    def create_subscription(self, project_id, url, event_types, limit):
        from csvc.store.quotas import QuotaExceeded

        in_use = sum(1 for r in self.rows if r["project_id"] == project_id)
        if in_use >= limit:
            return fail(QuotaExceeded("subscriptions", limit, in_use))
        self.n += 1
        row = {"uuid": f"s-{self.n}", "project_id": project_id, "url": url, "event_types": list(event_types),
               "created_at": datetime(2023, 11, 14)}
        self.rows.append(row)
        return succeed(dict(row))

    def list_subscriptions(self, project_id=None):
        return succeed([dict(r) for r in self.rows if project_id in (None, r["project_id"])])

    def delete_subscription(self, uuid, project_id=None):
        for r in self.rows:
            if r["uuid"] == uuid and project_id in (None, r["project_id"]):
                self.rows.remove(r)
                return succeed(r)
        return succeed(None)

    def list_containers(self, project_id=None, instance_uuid=None):
        if self.failing:
            return fail(RuntimeError("database is gone"))
        return succeed([dict(r) for r in self.containers])


def result_of(d):
    out = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


@pytest.fixture
def logged():
    seen = []
    globalLogPublisher.addObserver(seen.append)
    yield seen
    globalLogPublisher.removeObserver(seen.append)


def texts(logged):
    from twisted.logger import formatEvent

    return [formatEvent(e) for e in logged]


def clock_at(seconds=EPOCH):
    clock = Clock()
    clock.advance(seconds)
    return clock


# -- the envelope ------------------------------------------------------------


def test_the_envelope_is_an_openstack_notification():
    clock = clock_at(EPOCH + 0.25)
    sink = Recording()
    notifier = Notifier(clock, [sink], publisher_id="csvc.node-1")
    notifier.startService()
    notifier.container(events.CONTAINER_EXIT, ROW)
    [(project, envelope)] = sink.received
    assert project == "alpha"
    assert set(envelope) == {"event_type", "publisher_id", "priority", "timestamp", "message_id", "payload"}
    assert envelope["event_type"] == "compute.container.exit"
    assert envelope["publisher_id"] == "csvc.node-1"
    assert envelope["priority"] == "INFO"
    assert envelope["timestamp"] == "2023-11-14 22:13:20.250000"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", envelope["message_id"])
    payload = envelope["payload"]
    assert payload["project_id"] == "alpha"
    assert payload["container_uuid"] == "c-1"
    assert payload["image"] == "busybox:latest"
    assert payload["state"] == "exited"
    assert payload["exit_code"] == 3
    assert payload["created_at"] == "2023-11-14T22:13:20.000000Z"
    assert payload["started_at"] == "2023-11-14T22:13:21.500000Z"
    assert payload["finished_at"] is None
    # Never what may hold secrets.
    assert "environment" not in payload and "command" not in payload
    json.dumps(envelope)


def test_publisher_id_names_the_host_by_default():
    import socket

    assert Notifier(Clock()).publisher_id == f"csvc.{socket.gethostname()}"


def test_failures_are_error_priority_and_say_why():
    sink = Recording()
    notifier = Notifier(clock_at(), [sink], publisher_id="csvc.x")
    notifier.container_failed(events.CONTAINER_CREATE_ERROR, ROW, "no room")
    [(_p, envelope)] = sink.received
    assert envelope["priority"] == "ERROR"
    assert envelope["payload"]["reason"] == "no room"


def test_message_ids_differ():
    sink = Recording()
    notifier = Notifier(clock_at(), [sink], publisher_id="csvc.x")
    for _ in range(3):
        notifier.container(events.CONTAINER_START, ROW)
    assert len({e["message_id"] for _p, e in sink.received}) == 3


def test_emit_never_fails_the_caller_and_other_sinks_still_get_it(logged):
    good = Recording()
    notifier = Notifier(clock_at(), [Broken(), good], publisher_id="csvc.x")
    notifier.emit("compute.container.start", {"project_id": "alpha"}, "alpha")
    notifier.container(events.CONTAINER_START, None)  # not even a row
    assert [e["event_type"] for _p, e in good.received] == ["compute.container.start"]
    assert any("sink failed" in t for t in texts(logged))


def test_instance_hooks():
    sink = Recording()
    notifier = Notifier(clock_at(), [sink], publisher_id="csvc.x")
    row = {"uuid": "i-1", "name": "local-1", "provider": "local", "status": "pending", "capacity": 10,
           "shared": True, "created_at": datetime(2023, 11, 14)}
    notifier.instance_created(row)
    notifier.instance_deleted(row, "alpha")
    assert [(p, e["event_type"], e["payload"]["instance_uuid"]) for p, e in sink.received] == [
        (None, "compute.instance.create", "i-1"),
        ("alpha", "compute.instance.delete", "i-1"),
    ]


@pytest.mark.parametrize(
    "pattern,event_type,expected",
    [
        ("compute.container.exit", "compute.container.exit", True),
        ("compute.container.exit", "compute.container.exists", False),
        ("compute.container.*", "compute.container.exists", True),
        ("compute.container.create.*", "compute.container.create.end", True),
        ("compute.container.create.*", "compute.container.start", False),
        ("compute.*", "compute.instance.create", True),
        ("*", "compute.container.stop", True),
    ],
)
def test_wildcards(pattern, event_type, expected):
    assert events.matches(pattern, event_type) is expected


def test_wildcards_are_prefixes_of_known_types():
    assert "compute.container.*" in events.WILDCARDS
    assert "compute.container.create.*" in events.WILDCARDS
    assert "compute.container.exit.*" not in events.WILDCARDS
    assert all(w == "*" or any(events.matches(w, t) for t in events.EVENT_TYPES) for w in events.WILDCARDS)


# -- JSON lines ----------------------------------------------------------------


def test_sinks_provide_the_interface(tmp_path):
    assert verifyObject(ISink, JsonLinesSink(str(tmp_path / "n.jsonl"), Immediate()))
    assert verifyObject(ISink, WebhookSink(Subscriptions(MemoryStore(), PUBLIC_ONLY), None, Clock()))


def test_json_lines_one_object_per_line(tmp_path):
    path = tmp_path / "sub" / "notifications.jsonl"
    executor = Immediate()
    sink = JsonLinesSink(str(path), executor)
    notifier = Notifier(clock_at(), [sink], publisher_id="csvc.x")
    notifier.startService()
    assert executor.started
    notifier.container(events.CONTAINER_CREATE_START, ROW)
    notifier.container(events.CONTAINER_EXIT, ROW)
    lines = path.read_text().splitlines()
    assert [json.loads(line)["event_type"] for line in lines] == [
        "compute.container.create.start",
        "compute.container.exit",
    ]
    assert json.loads(lines[1])["payload"]["exit_code"] == 3
    result_of(notifier.stopService())
    assert executor.stopped
    # Stopped: nothing more is written.
    notifier.container(events.CONTAINER_EXIT, ROW)
    assert len(path.read_text().splitlines()) == 2


def test_json_lines_appends_to_what_is_there(tmp_path):
    path = tmp_path / "notifications.jsonl"
    path.write_text('{"earlier":true}\n')
    sink = JsonLinesSink(str(path), Immediate())
    sink.start()
    sink.deliver({"event_type": "x"}, None)
    assert path.read_text().splitlines() == ['{"earlier":true}', '{"event_type":"x"}']


def test_json_lines_writes_in_batches_off_the_caller_and_stop_drains(tmp_path):
    path = tmp_path / "notifications.jsonl"
    executor = Manual()
    sink = JsonLinesSink(str(path), executor, batch=2)
    sink.start()
    for n in range(5):
        sink.deliver({"n": n}, None)
    # One write at a time: the first line went at once, the rest wait.
    assert len(executor.jobs) == 1
    assert not path.exists()
    stopped = sink.stop()
    while executor.jobs:
        executor.finish_one()
    assert result_of(stopped) is None
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [0, 1, 2, 3, 4]
    assert sink.written == 5 and sink.dropped == 0


def test_json_lines_buffer_is_bounded_dropping_the_oldest(tmp_path, logged):
    path = tmp_path / "notifications.jsonl"
    executor = Manual()
    sink = JsonLinesSink(str(path), executor, max_pending=3)
    sink.start()
    for n in range(10):
        sink.deliver({"n": n}, None)
    # 0 is being written; 1..9 wanted the buffer of 3: 1..6 dropped.
    assert sink.dropped == 6
    while executor.jobs:
        executor.finish_one()
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [0, 7, 8, 9]
    warnings = [t for t in texts(logged) if "notification log" in t]
    assert any("buffer of 3 lines is full" in t for t in warnings)
    assert any("6 line(s) dropped" in t for t in warnings)


def test_json_lines_write_failure_is_logged_and_counted(tmp_path, logged):
    blocker = tmp_path / "file"
    blocker.write_text("")
    sink = JsonLinesSink(str(blocker / "notifications.jsonl"), Immediate())
    sink.start()
    sink.deliver({"n": 1}, None)
    assert sink.dropped == 1
    assert any("writing 1 notification(s)" in t for t in texts(logged))


# -- webhooks ------------------------------------------------------------------


class Receiver(Resource):
    """
    A webhook receiver answering with the scripted statuses (then 204).
    """

    isLeaf = True

    def __init__(self, statuses=()):
        super().__init__()
        self.statuses = list(statuses)
        self.received = []

    def render_POST(self, request):
        self.received.append(
            (json.loads(request.content.read()), request.getHeader(b"content-type"),
             request.getHeader(b"x-csvc-event-type"))
        )
        request.setResponseCode(self.statuses.pop(0) if self.statuses else 204)
        return b""


class Webhooks:
    """
    A notifier with a webhook sink over ``StubTreq`` and subscriptions in memory.
    """

    def __init__(self, receiver, **settings):
        self.clock = clock_at()
        self.store = MemoryStore()
        self.subscriptions = Subscriptions(self.store, PUBLIC_ONLY, limit=3)
        self.http = StubTreq(receiver)
        self.sink = WebhookSink(self.subscriptions, self.http.post, self.clock, **settings)
        self.notifier = Notifier(self.clock, [self.sink], self.subscriptions, publisher_id="csvc.x")
        self.notifier.startService()

    def subscribe(self, project, url="http://hooks.test/in", event_types=("compute.container.*",)):
        return result_of(self.subscriptions.create(project, url, event_types))

    def settle(self, seconds=0.0):
        self.http.flush()
        self.clock.advance(seconds)
        self.http.flush()
        self.clock.advance(0)
        self.http.flush()


def test_webhook_delivers_json_with_its_headers():
    receiver = Receiver()
    hooks = Webhooks(receiver)
    hooks.subscribe("alpha")
    hooks.notifier.container(events.CONTAINER_EXIT, ROW)
    hooks.settle()
    [(body, content_type, event_type)] = receiver.received
    assert content_type == b"application/json"
    assert event_type == b"compute.container.exit"
    assert body["event_type"] == "compute.container.exit"
    assert body["payload"]["exit_code"] == 3
    assert hooks.sink.counts["delivered"] == 1
    # Idle queues are let go.
    assert hooks.sink.queue("s-1") is None


def test_webhook_retries_with_exponential_backoff():
    receiver = Receiver([500, 503, 502])
    hooks = Webhooks(receiver, backoff=1.0)
    hooks.subscribe("alpha")
    hooks.notifier.container(events.CONTAINER_EXIT, ROW)
    hooks.settle()
    assert len(receiver.received) == 1
    hooks.settle(0.99)
    assert len(receiver.received) == 1
    hooks.settle(0.01)  # 1 s after the first failure
    assert len(receiver.received) == 2
    hooks.settle(1.99)
    assert len(receiver.received) == 2
    hooks.settle(0.01)  # 2 s after the second
    assert len(receiver.received) == 3
    hooks.settle(4)  # 4 s after the third: delivered
    assert len(receiver.received) == 4
    assert hooks.sink.counts == {"delivered": 1, "retried": 3, "failed": 0, "dropped": 0, "abandoned": 0}
    # The same notification each time.
    assert len({body["message_id"] for body, _c, _e in receiver.received}) == 1


def test_webhook_gives_up_after_its_attempts_and_goes_on(logged):
    receiver = Receiver([500] * 5)
    hooks = Webhooks(receiver, attempts=5, backoff=1.0, max_backoff=60.0)
    hooks.subscribe("alpha")
    hooks.notifier.container(events.CONTAINER_START, ROW)
    hooks.notifier.container(events.CONTAINER_EXIT, ROW)
    hooks.settle()
    for delay in (1, 2, 4, 8):
        hooks.settle(delay)
    assert len(receiver.received) == 6  # five of the first, then the next
    assert [e for _b, _c, e in receiver.received] == [b"compute.container.start"] * 5 + [b"compute.container.exit"]
    assert hooks.sink.counts["failed"] == 1 and hooks.sink.counts["delivered"] == 1
    assert any("gave up delivering compute.container.start" in t and "after 5 attempt(s)" in t for t in texts(logged))


def test_webhook_backoff_is_capped():
    receiver = Receiver([500] * 4)
    hooks = Webhooks(receiver, attempts=5, backoff=10.0, max_backoff=15.0)
    hooks.subscribe("alpha")
    hooks.notifier.container(events.CONTAINER_START, ROW)
    hooks.settle()
    hooks.settle(10)
    assert len(receiver.received) == 2
    hooks.settle(15)  # 20 capped at 15
    assert len(receiver.received) == 3


def test_webhook_times_out_and_retries():
    posted = []

    def post(url, **kwargs):
        d = Deferred()
        posted.append((url, kwargs, d))
        return d

    clock = clock_at()
    store = MemoryStore()
    subscriptions = Subscriptions(store, PUBLIC_ONLY)
    result_of(subscriptions.create("alpha", "http://slow.test/", ["*"]))
    sink = WebhookSink(subscriptions, post, clock, timeout=10.0, backoff=1.0)
    sink.start()
    sink.deliver(events.envelope("compute.container.start", {}, "csvc.x", "INFO", EPOCH), "alpha")
    assert len(posted) == 1
    assert posted[0][1]["allow_redirects"] is False
    clock.advance(10)
    assert posted[0][2].called  # cancelled
    clock.advance(1)
    assert len(posted) == 2
    assert sink.counts["retried"] == 1


def test_webhook_queue_is_bounded_dropping_the_oldest(logged):
    posted = []

    def post(url, **kwargs):
        d = Deferred()
        posted.append((json.loads(kwargs["data"]), d))
        return d

    clock = clock_at()
    subscriptions = Subscriptions(MemoryStore(), PUBLIC_ONLY)
    result_of(subscriptions.create("alpha", "http://slow.test/", ["*"]))
    sink = WebhookSink(subscriptions, post, clock, max_queue=3)
    sink.start()
    for n in range(6):
        sink.deliver(events.envelope("compute.container.exists", {"n": n}, "csvc.x", "INFO", EPOCH), "alpha")
    # 0 in flight; 1..5 for a queue of 3: 1 and 2 dropped.
    assert sink.counts["dropped"] == 2
    assert len(sink.queue("s-1")) == 3
    assert any("queue of 3 full" in t and "dropped the oldest" in t for t in texts(logged))

    sent = []
    while posted:
        body, d = posted.pop(0)
        sent.append(body["payload"]["n"])
        d.callback(Answer())
        clock.advance(0)
    assert sent == [0, 3, 4, 5]
    assert sink.counts["delivered"] == 4


class Answer:
    """
    A 200 answer with an empty body, as an ``IResponse`` delivers it.
    """

    code = 200
    length = None  # unknown: the body is read

    def deliverBody(self, protocol):
        from twisted.web.client import ResponseDone

        protocol.connectionLost(Failure(ResponseDone()))


def test_webhook_delivered_order_after_drops():
    order = []

    def post(url, **kwargs):
        order.append(json.loads(kwargs["data"])["payload"]["n"])
        return Deferred()

    clock = clock_at()
    subscriptions = Subscriptions(MemoryStore(), PUBLIC_ONLY)
    result_of(subscriptions.create("alpha", "http://slow.test/", ["*"]))
    sink = WebhookSink(subscriptions, post, clock, max_queue=2, attempts=1, timeout=1.0)
    sink.start()
    for n in range(5):
        sink.deliver(events.envelope("compute.container.exists", {"n": n}, "csvc.x", "INFO", EPOCH), "alpha")
    for _ in range(4):
        clock.advance(1)
        clock.advance(0)
    # Each attempt times out and is given up; the oldest waiting were dropped.
    assert order == [0, 3, 4]
    assert sink.counts["dropped"] == 2 and sink.counts["failed"] == 3


def test_a_project_receives_only_its_own_events():
    receiver = Receiver()
    hooks = Webhooks(receiver)
    hooks.subscribe("alpha", event_types=["compute.container.exit"])
    hooks.subscribe("beta", url="http://hooks.test/beta", event_types=["*"])
    hooks.notifier.container(events.CONTAINER_EXIT, ROW)
    hooks.notifier.container(events.CONTAINER_START, ROW)  # alpha did not ask for it
    hooks.notifier.container(events.CONTAINER_EXIT, dict(ROW, project_id="gamma"))
    hooks.notifier.instance_created({"uuid": "i-9"})  # the service's own: no project
    hooks.settle()
    assert [(b["event_type"], b["payload"]["project_id"]) for b, _c, _e in receiver.received] == [
        ("compute.container.exit", "alpha")
    ]


def test_unsubscribing_stops_delivery_and_retries():
    receiver = Receiver([500, 500])
    hooks = Webhooks(receiver, backoff=1.0)
    sub = hooks.subscribe("alpha")
    hooks.notifier.container(events.CONTAINER_EXIT, ROW)
    hooks.settle()
    assert len(receiver.received) == 1
    result_of(hooks.subscriptions.delete(sub["uuid"], "alpha"))
    hooks.settle(100)
    hooks.notifier.container(events.CONTAINER_EXIT, ROW)
    hooks.settle(100)
    assert len(receiver.received) == 1
    assert hooks.sink.counts["abandoned"] == 1
    assert not hooks.clock.getDelayedCalls()


def test_subscriptions_load_from_the_store_at_start():
    store = MemoryStore()
    result_of(Subscriptions(store, PUBLIC_ONLY).create("alpha", "http://a.test/", ["*"]))
    fresh = Subscriptions(store, PUBLIC_ONLY)
    notifier = Notifier(Clock(), [], fresh, publisher_id="csvc.x")
    notifier.startService()
    assert [s["url"] for s in fresh.matching("alpha", "compute.container.start")] == ["http://a.test/"]
    assert fresh.matching("beta", "compute.container.start") == []


def test_subscriptions_are_bounded_per_project():
    from csvc.store.quotas import QuotaExceeded

    subscriptions = Subscriptions(MemoryStore(), PUBLIC_ONLY, limit=2)
    for _ in range(2):
        result_of(subscriptions.create("alpha", "http://a.test/", ["*"]))
    with pytest.raises(QuotaExceeded):
        result_of(subscriptions.create("alpha", "http://a.test/", ["*"]))
    result_of(subscriptions.create("beta", "http://b.test/", ["*"]))


def test_deleting_another_projects_subscription_is_not_found():
    subscriptions = Subscriptions(MemoryStore(), PUBLIC_ONLY)
    sub = result_of(subscriptions.create("alpha", "http://a.test/", ["*"]))
    with pytest.raises(SubscriptionNotFound):
        result_of(subscriptions.delete(sub["uuid"], "beta"))
    assert subscriptions.matching("alpha", "compute.container.start")


def test_stop_abandons_what_waits():
    posted = []
    clock = clock_at()
    subscriptions = Subscriptions(MemoryStore(), PUBLIC_ONLY)
    result_of(subscriptions.create("alpha", "http://slow.test/", ["*"]))
    sink = WebhookSink(subscriptions, lambda url, **kw: posted.append(1) or Deferred(), clock)
    sink.start()
    for _ in range(3):
        sink.deliver(events.envelope("compute.container.start", {}, "csvc.x", "INFO", EPOCH), "alpha")
    sink.stop()
    assert sink.counts["abandoned"] == 3
    assert not clock.getDelayedCalls()
    sink.deliver(events.envelope("compute.container.start", {}, "csvc.x", "INFO", EPOCH), "alpha")
    assert len(posted) == 1


# -- exists audit ----------------------------------------------------------------


def test_exists_every_interval_for_every_container(logged):
    clock = clock_at()
    store = MemoryStore(containers=[ROW, dict(ROW, uuid="c-2", project_id="beta")])
    sink = Recording()
    notifier = Notifier(clock, [sink], publisher_id="csvc.x")
    audit = ExistsAudit(store, notifier, 3600, clock, chunk=1, pause=0.5)
    audit.startService()
    clock.advance(3599)
    assert sink.received == []
    clock.advance(1)
    clock.advance(0.5)
    assert [(p, e["event_type"], e["payload"]["container_uuid"]) for p, e in sink.received] == [
        ("alpha", "compute.container.exists", "c-1"),
        ("beta", "compute.container.exists", "c-2"),
    ]
    payload = sink.received[0][1]["payload"]
    assert payload["audit_period_beginning"] == "2023-11-14 22:13:20.000000"
    assert payload["audit_period_ending"] == "2023-11-14 23:13:20.000000"
    # A failed round is logged; the next one runs.
    store.failing = True
    clock.advance(3600)
    assert any("exists audit round failed" in t for t in texts(logged))
    store.failing = False
    clock.advance(3600)
    clock.advance(0.5)
    assert len(sink.received) == 4
    audit.stopService()
    assert not clock.getDelayedCalls()


# -- settings ------------------------------------------------------------------


def test_notification_settings(tmp_path):
    from csvc import config

    settings = config.resolve({"data-dir": str(tmp_path)})
    assert settings["notifications-log"] == str(tmp_path / "notifications.jsonl")
    assert settings["notifications-exists-interval"] == 3600
    assert settings["notifications-webhook-attempts"] == 5
    assert config.resolve({"data-dir": str(tmp_path), "notifications-log": "off"})["notifications-log"] is None
    assert config.resolve({"notifications-exists-interval": "0"})["notifications-exists-interval"] == 0
    with pytest.raises(config.ConfigError, match="notifications-webhook-queue must be at least 1"):
        config.resolve({"notifications-webhook-queue": "0"})
    with pytest.raises(config.ConfigError, match="notifications-exists-interval must be a number"):
        config.resolve({"notifications-exists-interval": "hourly"})


def test_webhook_logs_show_no_query_string_or_user_information(logged):
    receiver = Receiver([500] * 3)
    hooks = Webhooks(receiver, attempts=2, backoff=1.0)
    hooks.subscribe("alpha", url="http://hook-user:pa55word@hooks.test:8080/in?sig=S3CR3T-SIG&x=1")
    hooks.notifier.container(events.CONTAINER_EXIT, ROW)
    hooks.settle()
    hooks.settle(1)
    assert hooks.sink.counts["failed"] == 1
    lines = [t for t in texts(logged) if "webhook" in t]
    assert any("retrying" in t for t in lines) and any("gave up" in t for t in lines)
    for line in lines:
        assert "S3CR3T-SIG" not in line and "pa55word" not in line and "hook-user" not in line
    assert any("http://hooks.test:8080/in?<redacted>" in t for t in lines)


def test_loggable_url():
    from csvc.notify.webhook import loggable_url

    assert loggable_url("https://h.test/p") == "https://h.test/p"
    assert loggable_url("https://u:p@h.test/p?token=t#frag") == "https://h.test/p?<redacted>"
    assert loggable_url("http://[2001:db8::1]:81/p?a=b") == "http://[2001:db8::1]:81/p?<redacted>"
    assert loggable_url("http://h.test:notaport/p?a=b") == "<a URL that does not parse>"
