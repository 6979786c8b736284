"""
Webhook subscriptions through /v1/subscriptions: create, list, delete,
validation (400s naming the field), isolation between projects (404), and
the notifications a container's life emits, delivered to its own project's
webhooks only.
"""

import json

import pytest
from treq.testing import StubTreq
from twisted.web.resource import Resource

from csvc.notify.webhook import WebhookSink

HOOK = {"url": "https://hooks.example/csvc", "event_types": ["compute.container.exit", "compute.container.create.*"]}


def test_create_list_delete(env):
    reply = env.alice.post("/v1/subscriptions", HOOK)
    assert reply.code == 201, reply.body
    view = reply.json()
    assert view == {
        "uuid": view["uuid"],
        "project_id": "project-a",
        "url": "https://hooks.example/csvc",
        "event_types": ["compute.container.exit", "compute.container.create.*"],
        "created_at": "2023-11-14T22:13:20.000000Z",
    }
    assert env.alice.get("/v1/subscriptions").json() == {"subscriptions": [view]}
    assert env.alice.delete(f"/v1/subscriptions/{view['uuid']}").code == 204
    assert env.alice.get("/v1/subscriptions").json() == {"subscriptions": []}
    env.alice.delete(f"/v1/subscriptions/{view['uuid']}").error(404)


def test_a_project_sees_only_its_own(env):
    mine = env.alice.post("/v1/subscriptions", HOOK).json()
    theirs = env.bob.post("/v1/subscriptions", dict(HOOK, url="http://bob.example/")).json()
    ops = env.admin.post("/v1/subscriptions", dict(HOOK, url="http://ops.example/")).json()
    assert [s["uuid"] for s in env.alice.get("/v1/subscriptions").json()["subscriptions"]] == [mine["uuid"]]
    assert [s["uuid"] for s in env.bob.get("/v1/subscriptions").json()["subscriptions"]] == [theirs["uuid"]]
    # An admin too sees its own, unless it asks for all projects.
    assert [s["uuid"] for s in env.admin.get("/v1/subscriptions").json()["subscriptions"]] == [ops["uuid"]]
    everyone = env.admin.get("/v1/subscriptions?all_projects=true").json()["subscriptions"]
    assert {s["uuid"] for s in everyone} == {mine["uuid"], theirs["uuid"], ops["uuid"]}
    error = env.alice.get("/v1/subscriptions?all_projects=true").error(403)
    assert "subscription:list_all_projects" in error["message"]


def test_another_projects_subscription_is_not_found(env):
    mine = env.alice.post("/v1/subscriptions", HOOK).json()
    env.bob.delete(f"/v1/subscriptions/{mine['uuid']}").error(404)
    env.admin.delete(f"/v1/subscriptions/{mine['uuid']}").error(404)
    env.bob.delete(f"/v1/subscriptions/{mine['uuid']}?all_projects=true").error(404)
    assert len(env.alice.get("/v1/subscriptions").json()["subscriptions"]) == 1
    assert env.admin.delete(f"/v1/subscriptions/{mine['uuid']}?all_projects=true").code == 204
    assert env.alice.get("/v1/subscriptions").json()["subscriptions"] == []


@pytest.mark.parametrize(
    "body,named",
    [
        ({"url": "ftp://hooks.example/", "event_types": ["*"]}, "'url'"),
        ({"url": "hooks.example", "event_types": ["*"]}, "'url'"),
        ({"url": "http://user:pw@hooks.example/", "event_types": ["*"]}, "'url'"),
        ({"url": "http://hooks.example/" + "x" * 2048, "event_types": ["*"]}, "'url'"),
        ({"url": 7, "event_types": ["*"]}, "'url'"),
        ({"url": "http://hooks.example/", "event_types": ["compute.container.explode"]}, "'event_types.0'"),
        ({"url": "http://hooks.example/", "event_types": ["*", "compute.container.exit.*"]}, "'event_types.1'"),
        ({"url": "http://hooks.example/", "event_types": []}, "'event_types'"),
        ({"url": "http://hooks.example/", "event_types": "compute.container.exit"}, "'event_types'"),
        ({"url": "http://hooks.example/", "event_types": ["*", "*"]}, "'event_types'"),
        ({"url": "http://hooks.example/"}, "event_types"),
        ({"event_types": ["*"]}, "url"),
        ({"url": "http://hooks.example/", "event_types": ["*"], "secret": "x"}, "unknown field(s): secret"),
    ],
)
def test_validation_names_the_field(env, body, named):
    error = env.alice.post("/v1/subscriptions", body).error(400)
    assert named in error["message"], error["message"]
    assert env.alice.get("/v1/subscriptions").json()["subscriptions"] == []


def test_wildcards_and_every_known_type_are_accepted(env):
    from csvc.notify.events import EVENT_TYPES

    body = {"url": "http://hooks.example/", "event_types": ["compute.container.*", "compute.*", "*"]}
    assert env.alice.post("/v1/subscriptions", body).code == 201
    assert env.alice.post("/v1/subscriptions", {"url": "http://h/", "event_types": list(EVENT_TYPES)}).code == 201


def test_a_project_has_a_bounded_number_of_subscriptions(env):
    from csvc.notify.subscriptions import MAX_PER_PROJECT

    for _ in range(MAX_PER_PROJECT):
        assert env.alice.post("/v1/subscriptions", HOOK).code == 201
    error = env.alice.post("/v1/subscriptions", HOOK).error(403)
    assert "subscriptions" in error["message"]
    assert env.bob.post("/v1/subscriptions", HOOK).code == 201


def test_subscriptions_need_credentials(env):
    env.anonymous.get("/v1/subscriptions").error(401)
    env.anonymous.post("/v1/subscriptions", HOOK).error(401)
    env.anonymous.delete("/v1/subscriptions/x").error(401)


# -- what a container's life emits ----------------------------------------------


def test_a_containers_life_is_notified(env):
    view = env.alice.create(run=True)
    env.output(view["uuid"], (1, b"secret output\n"))
    env.exit(view["uuid"], 3)
    assert env.alice.delete(f"/v1/containers/{view['uuid']}").code == 204
    mine = [(e["event_type"], e["payload"]) for p, e in env.notices.received if p == "project-a"]
    assert [t for t, _ in mine] == [
        "compute.container.create.start",
        "compute.container.create.end",
        "compute.container.start",
        "compute.container.exit",
        "compute.container.delete.start",
        "compute.container.delete.end",
    ]
    assert all(payload["container_uuid"] == view["uuid"] for _, payload in mine)
    assert dict(mine)["compute.container.exit"]["exit_code"] == 3
    assert dict(mine)["compute.container.create.end"]["state"] == "created"
    assert dict(mine)["compute.container.delete.end"]["state"] == "deleted"
    assert b"secret output" not in json.dumps([e for _p, e in env.notices.received]).encode()
    assert all(p == "project-a" for p, _e in env.notices.received)


def test_stop_and_kill_are_notified_with_the_exit(env):
    view = env.alice.create(run=True)
    assert env.alice.post(f"/v1/containers/{view['uuid']}/stop").code == 202
    env.alice.post(f"/v1/containers/{view['uuid']}/start")
    assert env.alice.post(f"/v1/containers/{view['uuid']}/kill").code == 202
    types = env.notices.event_types("project-a")
    assert types[2:] == [
        "compute.container.start",
        "compute.container.exit",
        "compute.container.stop",
        "compute.container.start",
        "compute.container.exit",
        "compute.container.stop",
    ]
    stops = [e["payload"] for _p, e in env.notices.received if e["event_type"] == "compute.container.stop"]
    assert [(s["action"], s["exit_code"]) for s in stops] == [("stop", 0), ("kill", 137)]


def test_a_failed_create_is_an_error_notification(env):
    from tests.api.conftest import MISSING_IMAGE

    env.alice.post("/v1/containers", {"image": MISSING_IMAGE}).error(404)
    [start, error] = [e for _p, e in env.notices.received]
    assert start["event_type"] == "compute.container.create.start"
    assert (error["event_type"], error["priority"]) == ("compute.container.create.error", "ERROR")
    assert error["payload"]["reason"] == "no such image"


class Receiver(Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.received = []

    def render_POST(self, request):
        self.received.append((request.uri, json.loads(request.content.read())))
        request.setResponseCode(200)
        return b"ok"


def test_webhooks_get_their_projects_events_only(env):
    receiver = Receiver()
    http = StubTreq(receiver)
    sink = WebhookSink(env.subscriptions, http.post, env.clock)
    sink.start()
    env.notifier.sinks.append(sink)
    env.alice.post("/v1/subscriptions", {"url": "http://hooks.test/alice", "event_types": ["compute.container.*"]})
    env.bob.post("/v1/subscriptions", {"url": "http://hooks.test/bob", "event_types": ["compute.container.exit"]})
    mine = env.alice.create(run=True)
    theirs = env.bob.create(run=True)
    env.exit(mine["uuid"], 3)
    env.exit(theirs["uuid"], 0)
    http.flush()
    env.advance(0)
    http.flush()
    alice = [body for uri, body in receiver.received if uri == b"/alice"]
    bob = [body for uri, body in receiver.received if uri == b"/bob"]
    assert [b["event_type"] for b in alice] == [
        "compute.container.create.start",
        "compute.container.create.end",
        "compute.container.start",
        "compute.container.exit",
    ]
    assert {b["payload"]["container_uuid"] for b in alice} == {mine["uuid"]}
    assert [(b["event_type"], b["payload"]["container_uuid"]) for b in bob] == [
        ("compute.container.exit", theirs["uuid"])
    ]
    assert sink.counts["delivered"] == 5


@pytest.mark.parametrize(
    "url, why",
    [
        ("http://127.0.0.1:8780/v1/containers", "127.0.0.1 is loopback"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is link-local (where cloud metadata lives)"),
        ("http://10.0.0.5/hook", "10.0.0.5 is private"),
        ("http://192.168.0.1/hook", "192.168.0.1 is private"),
        ("http://0.0.0.0/", "0.0.0.0 is unspecified"),
        ("http://224.0.0.251/", "224.0.0.251 is multicast"),
        ("http://[::1]:8780/", "::1 is loopback"),
        ("http://[fd12::1]/", "fd12::1 is private"),
        ("http://[::ffff:10.0.0.1]/", "::ffff:10.0.0.1 is private, inside an IPv6 address"),
        ("https://metadata.internal.example/", "metadata.internal.example resolves to 169.254.169.254, which is "
                                               "link-local (where cloud metadata lives)"),
    ],
)
def test_a_webhook_to_an_internal_address_is_refused_naming_the_url(env, url, why):
    env.resolver.table["metadata.internal.example"] = ["169.254.169.254"]
    error = env.alice.post("/v1/subscriptions", dict(HOOK, url=url)).error(400)
    assert error["message"] == f"the url {url} is refused: {why}: csvc does not send notifications there"
    assert env.alice.get("/v1/subscriptions").json()["subscriptions"] == []
