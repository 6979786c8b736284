"""
Creating, listing, finding and acting on containers through /v1/containers.
"""

import json

import pytest
from treq.testing import RequestTraversalAgent
from twisted.internet.defer import fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from csvc.wire import commands
from csvc.api.native import MAX_BODY
from csvc.compute.service import ContainerService
from csvc.agents.hub import AgentHub
from csvc.scheduler.instances import InstanceMap
from tests.api.conftest import BASE, MISSING_IMAGE, pending, result_of

# -- create ---------------------------------------------------------------


def test_create_answers_with_the_container(env):
    reply = env.alice.post(
        "/v1/containers",
        {"image": "busybox", "name": "web", "command": ["echo", "hi"], "environment": {"A": "1"}},
    )
    assert reply.code == 202
    view = reply.json()
    assert view == {
        "uuid": view["uuid"],
        "name": "web",
        "project_id": "project-a",
        "user_id": "alice",
        "image": "busybox:latest",
        "command": ["echo", "hi"],
        "environment": {"A": "1"},
        "workdir": None,
        "labels": {},
        "tty": False,
        "interactive": False,
        "memory": 512,  # the default limit of a container created without one
        "cpu": None,
        "auto_remove": False,
        "status": "created",
        "status_reason": None,
        "exit_code": None,
        "instance": env.instance,
        "created_at": "2023-11-14T22:13:20.000000Z",
        "started_at": None,
        "finished_at": None,
    }
    assert len(view["uuid"]) == 36
    row = env.row(view["uuid"])
    assert row["status"] == "created"
    assert row["engine_id"] == "e" * 64


def test_create_sends_the_spec_to_the_agent(env):
    view = env.alice.create(image="docker.io/library/alpine:3.19", command=["sh"], labels={"k": "v"}, memory=64)
    [(instance, command, kwargs)] = env.hub.calls
    assert (instance, command) == (env.instance, commands.CreateContainer)
    spec = kwargs["spec"]
    assert spec["uuid"] == view["uuid"]
    assert spec["name"] == view["name"]
    assert spec["project_id"] == "project-a"
    assert spec["image"] == "docker.io/library/alpine:3.19"
    assert spec["command"] == ["sh"]
    assert spec["labels"] == {"k": "v"}
    assert spec["memory"] == 64


def test_create_gives_a_default_name(env):
    view = env.alice.create()
    assert view["name"] == "csvc-" + view["uuid"][:8]


def test_create_with_run_starts_it(env):
    view = env.alice.create(run=True)
    assert env.hub.commands_called() == [commands.CreateContainer, commands.StartContainer]
    assert env.hub.calls_of(commands.StartContainer) == [{"uuid": view["uuid"]}]
    reply = env.alice.get(f"/v1/containers/{view['uuid']}")
    assert reply.code == 200
    assert reply.json()["status"] == "running"
    assert reply.json()["started_at"] == "2023-11-14T22:13:20.000000Z"


def test_missing_image_is_404_and_nothing_stays(env):
    error = env.alice.post("/v1/containers", {"image": MISSING_IMAGE, "name": "m"}).error(404)
    assert error["title"] == "Not Found"
    assert MISSING_IMAGE in error["message"]
    assert env.all_rows() == []
    assert env.hub.commands_called() == [commands.CreateContainer]
    # the name is free again
    assert env.alice.create(name="m")["name"] == "m"


def test_missing_image_without_tag_is_named_with_latest(env):
    error = env.alice.post("/v1/containers", {"image": "missing/image"}).error(404)
    assert "'missing/image:latest'" in error["message"]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"image": "busybox", "bogus": 1}, "bogus"),
        ({"name": "x"}, "image"),
        ({"image": "busybox", "environment": {"FOO": 1}}, "environment.FOO"),
        ({"image": "busybox", "command": "echo hi"}, "command"),
        ({"image": "Not An Image"}, "image"),
        ({"image": "busybox", "name": "-bad"}, "name"),
        ({"image": "busybox", "memory": 1}, "memory"),
    ],
)
def test_invalid_body_is_400_naming_the_field(env, body, field):
    error = env.alice.post("/v1/containers", body).error(400)
    assert error["title"] == "Bad Request"
    assert field in error["message"]
    assert env.all_rows() == []
    assert env.hub.calls == []


@pytest.mark.parametrize("data,words", [(b"{not json", "not valid JSON"), (b"[1, 2]", "JSON object")])
def test_body_that_is_no_object_is_400(env, data, words):
    error = env.alice.post("/v1/containers", data=data, headers={"Content-Type": "application/json"}).error(400)
    assert words in error["message"]
    assert env.all_rows() == []


def test_body_over_a_mebibyte_is_413(env):
    body = b'{"image": "busybox", "labels": {"k": "' + b"x" * MAX_BODY + b'"}}'
    error = env.alice.post("/v1/containers", data=body, headers={"Content-Type": "application/json"}).error(413)
    assert error["title"] == "Payload Too Large"
    # refused by its declared length, before it is read
    assert error["message"] == f"the body is {len(body)} bytes; at most {MAX_BODY} are accepted"
    assert env.all_rows() == []
    assert env.hub.calls == []


@implementer(IBodyProducer)
class ChunkedBody:
    """
    A request body of undeclared length (sent chunked, no Content-Length).
    """

    length = UNKNOWN_LENGTH

    def __init__(self, data):
        self._data = data

    def startProducing(self, consumer):
        for i in range(0, len(self._data), 65536):
            consumer.write(self._data[i : i + 65536])
        return succeed(None)

    def stopProducing(self):
        pass

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass


@pytest.mark.parametrize("size,code", [(MAX_BODY + 1, 413), (MAX_BODY, 400)])
def test_chunked_body_is_limited_too(env, size, code):
    head, tail = b'{"image": "busybox", "labels": {"k": "', b'"}}'
    body = head + b"x" * (size - len(head) - len(tail)) + tail
    agent = RequestTraversalAgent(env.api.resource())
    headers = Headers({"X-Auth-Token": [env.alice.token], "X-Auth-Project-Id": ["project-a"]})
    d = agent.request(b"POST", (BASE + "/v1/containers").encode(), headers, ChunkedBody(body))
    agent.flush()
    response = result_of(d)
    assert response.code == code
    content = env.http.content(response)
    agent.flush()
    error = json.loads(result_of(content))["error"]
    assert error["code"] == code
    if code == 413:
        assert error["message"] == f"the body exceeds {MAX_BODY} bytes"
    assert env.all_rows() == []


def test_body_of_exactly_a_mebibyte_is_read(env):
    head, tail = b'{"image": "busybox", "labels": {"k": "', b'"}}'
    body = head + b"x" * (MAX_BODY - len(head) - len(tail)) + tail
    assert len(body) == MAX_BODY
    # accepted for size, refused by the schema (a label value is at most 4096)
    error = env.alice.post("/v1/containers", data=body, headers={"Content-Type": "application/json"}).error(400)
    assert "labels.k" in error["message"]


def test_duplicate_name_in_a_project_is_409(env):
    first = env.alice.create(name="dup")
    error = env.alice.post("/v1/containers", {"image": "busybox", "name": "dup"}).error(409)
    assert error["title"] == "Conflict"
    assert "'dup'" in error["message"]
    assert [r["uuid"] for r in env.all_rows()] == [first["uuid"]]


def test_same_name_in_another_project_is_fine(env):
    a = env.alice.create(name="dup")
    b = env.bob.create(name="dup")
    assert a["uuid"] != b["uuid"]
    assert b["project_id"] == "project-b"


def test_full_instances_are_503(env):
    env.store.update_instance(env.instance, capacity=2)
    env.alice.create()
    env.bob.create()
    error = env.alice.post("/v1/containers", {"image": "busybox", "name": "third"}).error(503)
    assert error["title"] == "Service Unavailable"
    assert "room" in error["message"]
    assert len(env.all_rows()) == 2
    assert env.hub.commands_called() == [commands.CreateContainer] * 2


def test_deleting_makes_room_again(env):
    env.store.update_instance(env.instance, capacity=1)
    first = env.alice.create()
    env.alice.post("/v1/containers", {"image": "busybox"}).error(503)
    assert env.alice.delete(f"/v1/containers/{first['uuid']}").code == 204
    env.alice.create()


def test_agent_not_connected_is_503_and_nothing_stays(env):
    env.hub.connected.clear()
    error = env.alice.post("/v1/containers", {"image": "busybox"}).error(503)
    assert "not connected" in error["message"]
    assert env.all_rows() == []


# -- list and show --------------------------------------------------------


def test_list_shows_only_the_projects_own(env):
    a1 = env.alice.create(name="a1")
    env.bob.create(name="b1")
    env.advance(1)
    a2 = env.alice.create(name="a2")
    reply = env.alice.get("/v1/containers")
    assert reply.code == 200
    assert [c["uuid"] for c in reply.json()["containers"]] == [a1["uuid"], a2["uuid"]]
    assert reply.json()["containers"][0] == a1


def test_list_all_projects_is_403_for_members(env):
    env.alice.create()
    error = env.alice.get("/v1/containers?all_projects=true").error(403)
    assert "admin" in error["message"]


def test_list_all_projects_for_admin(env):
    env.alice.create(name="a")
    env.advance(1)
    env.bob.create(name="b")
    reply = env.admin.get("/v1/containers?all_projects=true")
    assert reply.code == 200
    assert [(c["project_id"], c["name"]) for c in reply.json()["containers"]] == [
        ("project-a", "a"),
        ("project-b", "b"),
    ]
    # without the flag an admin sees its own project only
    assert env.admin.get("/v1/containers").json() == {"containers": []}


def test_show_by_uuid_and_by_name(env):
    view = env.alice.create(name="named")
    for ident in (view["uuid"], "named"):
        reply = env.alice.get(f"/v1/containers/{ident}")
        assert reply.code == 200
        assert reply.json() == view


def test_show_unknown_is_404(env):
    error = env.alice.get("/v1/containers/nothing").error(404)
    assert error["message"] == "container nothing not found"


def test_admin_sees_another_project_with_all_projects(env):
    view = env.alice.create(name="a")
    env.admin.get(f"/v1/containers/{view['uuid']}").error(404)
    reply = env.admin.get(f"/v1/containers/{view['uuid']}?all_projects=true")
    assert reply.code == 200
    assert reply.json()["uuid"] == view["uuid"]


def test_member_all_projects_does_not_reach_others(env):
    view = env.alice.create(name="a")
    env.bob.get(f"/v1/containers/{view['uuid']}?all_projects=true").error(404)


@pytest.mark.parametrize(
    "method,suffix",
    [
        ("GET", ""),
        ("GET", "/logs"),
        ("POST", "/wait"),
        ("POST", "/start"),
        ("POST", "/stop"),
        ("POST", "/kill"),
        ("POST", "/restart"),
        ("DELETE", ""),
    ],
)
@pytest.mark.parametrize("by", ["uuid", "name"])
def test_another_projects_container_is_404_everywhere(env, method, suffix, by):
    view = env.alice.create(name="private", run=True)
    calls = list(env.hub.calls)
    ident = view[by]
    error = env.bob.request(method, f"/v1/containers/{ident}{suffix}").error(404)
    assert error["message"] == f"container {ident} not found"
    assert env.hub.calls == calls
    assert env.row(view["uuid"])["status"] == "running"


# -- the state table ------------------------------------------------------


def test_stop_a_created_container_is_409(env):
    view = env.alice.create()
    error = env.alice.post(f"/v1/containers/{view['uuid']}/stop").error(409)
    assert error["title"] == "Conflict"
    assert "stop" in error["message"]
    assert "'created'" in error["message"]
    assert env.hub.commands_called() == [commands.CreateContainer]


@pytest.mark.parametrize("action", ["stop", "kill"])
def test_stop_or_kill_an_exited_container_is_409(env, action):
    view = env.alice.create(run=True)
    env.exit(view["uuid"], 0)
    error = env.alice.post(f"/v1/containers/{view['uuid']}/{action}").error(409)
    assert f"cannot {action}" in error["message"]
    assert "'exited'" in error["message"]


def test_start_a_running_container_is_409(env):
    view = env.alice.create(run=True)
    error = env.alice.post(f"/v1/containers/{view['uuid']}/start").error(409)
    assert "cannot start a container in status 'running'" in error["message"]
    assert env.hub.commands_called().count(commands.StartContainer) == 1


def test_start_a_created_container(env):
    view = env.alice.create()
    reply = env.alice.post(f"/v1/containers/{view['uuid']}/start")
    assert reply.code == 202
    assert reply.json()["status"] == "running"
    assert env.hub.calls_of(commands.StartContainer) == [{"uuid": view["uuid"]}]


def test_delete_a_running_container_is_409_without_force(env):
    view = env.alice.create(run=True)
    error = env.alice.delete(f"/v1/containers/{view['uuid']}").error(409)
    assert "cannot delete a container in status 'running'" in error["message"]
    assert commands.RemoveContainer not in env.hub.commands_called()
    assert env.alice.get(f"/v1/containers/{view['uuid']}").code == 200


def test_force_delete_a_running_container(env):
    view = env.alice.create(run=True)
    env.output(view["uuid"], (1, b"some output\n"))
    reply = env.alice.delete(f"/v1/containers/{view['uuid']}?force=true")
    assert reply.code == 204
    assert reply.body == b""
    assert env.hub.calls_of(commands.RemoveContainer) == [{"uuid": view["uuid"], "force": True, "volumes": True}]
    env.alice.get(f"/v1/containers/{view['uuid']}").error(404)
    assert env.all_rows() == []
    assert env.admin.get("/v1/instances").json()["instances"][0]["containers"] == 0


def test_delete_a_created_container(env):
    view = env.alice.create(name="gone")
    assert env.alice.delete("/v1/containers/gone").code == 204
    assert env.hub.calls_of(commands.RemoveContainer) == [{"uuid": view["uuid"], "force": True, "volumes": True}]
    env.alice.get("/v1/containers/gone").error(404)


def test_delete_a_container_the_engine_lost(env):
    view = env.alice.create()
    calls = []

    def call(instance, command, **kwargs):
        calls.append(command)
        from twisted.internet.defer import fail

        return fail(commands.NoSuchContainer(kwargs["uuid"]))

    env.hub.call = call
    assert env.alice.delete(f"/v1/containers/{view['uuid']}").code == 204
    assert calls == [commands.RemoveContainer]
    assert env.all_rows() == []


class _Link:
    """
    What ``AgentHub.register`` needs of an agent's link: its peer, and who
    hears its container reports.
    """

    def __init__(self, events):
        self.events = events

    def peer(self):
        return "test"


def _agent_registers(env, inventory):
    """
    The instance's agent connects again and registers with ``inventory``:
    its link and the registration's answer, before anything the
    registration left for the reactor's next turn has run.
    """
    link = _Link(env.containers)
    env.hub.connected.add(env.instance)
    token = result_of(env.store.set_enroll_token(env.instance))
    return link, result_of(env.hub.register(link, token, "docker", 10, "local-1", inventory))


def _agent_returns(env, inventory):
    """
    As ``_agent_registers``, and all that follows settled: its link.
    """
    link, _answer = _agent_registers(env, inventory)
    env.settle()
    return link


def _left_deleting(env, name):
    """
    A container ``name`` deleted while its instance's agent is away, past
    the delete's wait: left ``deleting``.  Its view as created.
    """
    view = env.alice.create(name=name)
    env.hub.connected.discard(env.instance)
    d = env.alice.start("DELETE", f"/v1/containers/{name}")
    env.advance(ContainerService.reconnect_wait)
    reply = env.alice.finish(d)
    assert reply.code == 202, reply.body
    assert reply.json()["status"] == "deleting"
    return view


def test_delete_waits_for_an_agent_that_comes_back(env):
    view = env.alice.create(name="waits")
    env.hub.connected.discard(env.instance)
    d = env.alice.start("DELETE", "/v1/containers/waits")
    assert pending(d)
    env.advance(ContainerService.reconnect_wait - 1)
    assert env.hub.calls_of(commands.RemoveContainer) == []
    _agent_returns(env, [{"uuid": view["uuid"], "state": "created"}])
    reply = env.alice.finish(d)
    assert reply.code == 204
    assert env.hub.calls_of(commands.RemoveContainer) == [{"uuid": view["uuid"], "force": True, "volumes": True}]
    assert env.all_rows() == []


def test_delete_while_the_agent_is_away_finishes_when_it_registers(env):
    view = env.alice.create(name="away")
    env.output(view["uuid"], (1, b"kept until the engine lets go\n"))
    env.hub.connected.discard(env.instance)
    d = env.alice.start("DELETE", "/v1/containers/away")
    env.advance(ContainerService.reconnect_wait)
    reply = env.alice.finish(d)
    # Not gone yet: the engine still holds the container.
    assert reply.code == 202, reply.body
    left = reply.json()
    assert left["status"] == "deleting"
    assert "instance local-1 is not connected" in left["status_reason"]
    assert env.alice.get("/v1/containers/away").json()["status"] == "deleting"
    assert "compute.container.delete.end" not in env.notices.event_types()
    error = env.alice.delete("/v1/containers/away?force=true").error(409)
    assert "status 'deleting'" in error["message"]
    removes = len(env.hub.calls_of(commands.RemoveContainer))

    _agent_returns(env, [{"uuid": view["uuid"], "state": "created"}])
    assert env.hub.calls_of(commands.RemoveContainer)[removes:] == [{"uuid": view["uuid"], "force": True, "volumes": False}]
    assert env.all_rows() == []
    env.alice.get("/v1/containers/away").error(404)
    assert env.notices.event_types().count("compute.container.delete.end") == 1


def test_a_deletion_left_for_the_agent_goes_after_its_registration_answer(env):
    view = _left_deleting(env, "later")
    removes = len(env.hub.calls_of(commands.RemoveContainer))
    _link, answer = _agent_registers(env, [{"uuid": view["uuid"]}])
    # The registration answered without sending the removal first...
    assert answer["instance_uuid"] == env.instance
    assert len(env.hub.calls_of(commands.RemoveContainer)) == removes
    # ... which goes on the reactor's next turn.
    env.advance(0)
    assert env.hub.calls_of(commands.RemoveContainer)[removes:] == [{"uuid": view["uuid"], "force": True, "volumes": False}]
    assert env.all_rows() == []


def test_a_deletion_the_engine_refuses_waits_for_the_next_registration(env):
    view = _left_deleting(env, "stuck")
    real_call = env.hub.call

    def refusing(instance, command, **kwargs):
        if command is commands.RemoveContainer:
            env.hub.calls.append((instance, command, kwargs))
            return fail(commands.EngineError("device or resource busy"))
        return real_call(instance, command, **kwargs)

    env.hub.call = refusing
    link = _agent_returns(env, [{"uuid": view["uuid"], "state": "created"}])
    assert env.row(view["uuid"])["status"] == "deleting"
    env.hub.lost(link)
    env.hub.connected.discard(env.instance)
    env.hub.call = real_call
    _agent_returns(env, [{"uuid": view["uuid"], "state": "created"}])
    assert env.all_rows() == []


def test_an_agent_registering_while_the_row_is_marked_still_removes_it(env):
    """
    The registration lists the instance's rows before this one is
    ``deleting``: the delete finishes the removal itself.
    """
    view = env.alice.create(name="raced")
    env.hub.connected.discard(env.instance)
    d = env.alice.start("DELETE", "/v1/containers/raced")
    # Registered (without the wait seeing it) just as the wait ends.
    env.hub.connected.add(env.instance)
    env.hub.connected_instances = lambda: {env.instance}
    env.advance(ContainerService.reconnect_wait)
    assert env.alice.finish(d).code == 204
    assert env.hub.calls_of(commands.RemoveContainer)[-1] == {"uuid": view["uuid"], "force": True, "volumes": False}
    assert env.all_rows() == []
    assert env.notices.event_types().count("compute.container.delete.end") == 1


def test_a_create_whose_link_breaks_is_removed_when_the_agent_returns(env):
    """
    The link breaks after CreateContainer was sent: the engine may hold the
    container, so it is not forgotten but left deleting for the agent.
    """

    class BrokenLink:
        def callRemote(self, command, **kwargs):
            env.hub.calls.append((env.instance, command, kwargs))
            return fail(ConnectionLost("the agent went away"))

    fake_call = env.hub.call
    env.hub.call = lambda instance, command, **kwargs: AgentHub.call(env.hub, instance, command, **kwargs)
    env.hub._links[env.instance] = BrokenLink()
    error = env.alice.post("/v1/containers", {"image": "busybox", "name": "interrupted"}).error(503)
    assert "disconnected before answering CreateContainer" in error["message"]
    (row,) = env.all_rows()
    assert row["status"] == "deleting"
    assert row["status_reason"].startswith("deleting: the create was interrupted")
    assert env.notices.event_types()[-2:] == ["compute.container.create.error", "compute.container.delete.start"]

    del env.hub._links[env.instance]
    env.hub.call = fake_call
    _agent_returns(env, [])
    assert env.hub.calls_of(commands.RemoveContainer)[-1] == {"uuid": row["uuid"], "force": True, "volumes": False}
    assert env.all_rows() == []
    assert env.notices.event_types()[-1] == "compute.container.delete.end"


def test_a_delete_after_the_start_window_waited_does_not_wait_again(env):
    """
    The hub already waited for the agent through the control plane's start
    window: the delete leaves the container deleting at once.
    """
    env.alice.create(name="late")
    env.hub.connected.discard(env.instance)
    env.hub.expect_agents(10)
    env.hub.call = lambda instance, command, **kwargs: AgentHub.call(env.hub, instance, command, **kwargs)
    d = env.alice.start("DELETE", "/v1/containers/late")
    env.advance(9.9)
    assert pending(d)
    env.advance(0.1)
    reply = env.alice.finish(d)
    assert reply.code == 202, reply.body
    assert "instance local-1 is not connected" in reply.json()["status_reason"]


def test_a_call_whose_link_breaks_is_503_naming_the_instance(env):
    view = env.alice.create(name="cut")

    class BrokenLink:
        def callRemote(self, command, **kwargs):
            return fail(ConnectionDone())

    env.hub.call = lambda instance, command, **kwargs: AgentHub.call(env.hub, instance, command, **kwargs)
    env.hub._links[env.instance] = BrokenLink()
    error = env.alice.post(f"/v1/containers/{view['uuid']}/start").error(503)
    assert error["message"] == f"instance {env.instance} disconnected before answering StartContainer"


def test_a_delete_whose_link_breaks_leaves_the_container_deleting_at_once(env):
    """
    The agent was connected, and RemoveContainer was sent: no wait for it
    to come back, the row is left deleting for its next registration.
    """
    env.alice.create(name="cut-delete")

    class BrokenLink:
        def callRemote(self, command, **kwargs):
            return fail(ConnectionLost("the agent went away"))

    env.hub.call = lambda instance, command, **kwargs: AgentHub.call(env.hub, instance, command, **kwargs)
    env.hub._links[env.instance] = BrokenLink()
    reply = env.alice.delete("/v1/containers/cut-delete")
    assert reply.code == 202, reply.body
    assert reply.json()["status"] == "deleting"
    assert "instance local-1 is not connected" in reply.json()["status_reason"]
    assert env.clock.getDelayedCalls() == []


@pytest.fixture
def warnings():
    texts = []

    def observe(event):
        if event.get("log_level") in (LogLevel.warn, LogLevel.error):
            texts.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield texts
    globalLogPublisher.removeObserver(observe)


def _inventory(env, known_uuid):
    """
    What the instance's engine reports: a container csvc knows, one made for
    this instance that the store has no row of, one made for another
    instance sharing the engine, and one from before containers carried
    their instance.
    """
    return [
        {"uuid": known_uuid, "instance": env.instance, "state": "created"},
        {"uuid": "0rphan00-0000-4000-8000-000000000001", "instance": env.instance, "state": "exited"},
        {"uuid": "e1sewhere-000-4000-8000-000000000002", "instance": "another-instance", "state": "running"},
        {"uuid": "unlabel1-0000-4000-8000-000000000003", "state": "exited"},
    ]


def test_a_registration_reports_engine_containers_csvc_has_no_record_of(env, warnings):
    view = env.alice.create(name="known")
    env.hub.connected.discard(env.instance)
    _agent_returns(env, _inventory(env, view["uuid"]))
    # orphan-action "log" (the default): named, left alone.
    assert env.hub.calls_of(commands.RemoveContainer) == []
    (warning,) = [w for w in warnings if "no record of" in w]
    assert "its engine holds 1 container(s) made for it" in warning
    assert "0rphan00-0000-4000-8000-000000000001" in warning and "left there" in warning
    assert env.row(view["uuid"])["status"] == "created"


def test_a_registration_removes_orphans_when_told_to(env, warnings):
    view = env.alice.create(name="known")
    env.hub.orphan_action = "remove"
    env.hub.connected.discard(env.instance)
    _agent_returns(env, _inventory(env, view["uuid"]))
    # Only the one made for this instance and unknown to the store.
    assert env.hub.calls_of(commands.RemoveContainer) == [
        {"uuid": "0rphan00-0000-4000-8000-000000000001", "force": True}
    ]
    assert any("removing 1 container(s) made for it" in w for w in warnings)
    assert env.row(view["uuid"])["status"] == "created"


def test_delete_on_a_removed_instance_lets_the_row_go(env):
    view = env.alice.create(name="orphan")
    env.hub.connected.discard(env.instance)
    result_of(env.store.update_instance(env.instance, status="deleted"))
    assert env.alice.delete("/v1/containers/orphan").code == 204
    # No agent to tell, and none to wait for.
    assert env.hub.calls_of(commands.RemoveContainer) == []
    assert env.clock.getDelayedCalls() == []
    assert env.row(view["uuid"]) is None


def test_removing_an_instance_drops_its_deleting_containers(env):
    _left_deleting(env, "pending-removal")
    env.api.instances = InstanceMap(env.store, env.hub, env.containers, {})
    reply = env.admin.delete(f"/v1/instances/{env.instance}?force=true")
    assert reply.code == 204, reply.body
    assert env.all_rows() == []


# -- stop, kill, restart --------------------------------------------------


def test_stop_waits_for_the_exit(env):
    view = env.alice.create(run=True)
    reply = env.alice.post(f"/v1/containers/{view['uuid']}/stop?timeout=3")
    assert reply.code == 202
    body = reply.json()
    assert body["status"] == "exited"
    assert body["exit_code"] == 0
    assert body["finished_at"] == "2023-11-14T22:20:00.123456Z"
    assert env.hub.calls_of(commands.StopContainer) == [{"uuid": view["uuid"], "timeout": 3}]


def test_stop_answers_only_once_the_exit_is_reported(env):
    view = env.alice.create(run=True)
    env.hub.exit_delay = 5
    d = env.alice.start("POST", f"/v1/containers/{view['uuid']}/stop")
    env.advance(4.9)
    assert pending(d)
    env.advance(0.1)
    reply = env.alice.finish(d)
    assert reply.code == 202
    assert reply.json()["status"] == "exited"


def test_stop_gives_up_waiting_after_the_settle_timeout(env):
    view = env.alice.create(run=True)
    env.hub.exit_delay = None
    d = env.alice.start("POST", f"/v1/containers/{view['uuid']}/stop")
    env.advance(ContainerService.settle_timeout - 1)
    assert pending(d)
    env.advance(1)
    reply = env.alice.finish(d)
    assert reply.code == 202
    assert reply.json()["status"] == "running"
    assert reply.json()["exit_code"] is None


@pytest.mark.parametrize("query", ["?timeout=-1", "?timeout=3601", "?timeout=soon"])
def test_stop_with_a_bad_timeout_is_400(env, query):
    view = env.alice.create(run=True)
    error = env.alice.post(f"/v1/containers/{view['uuid']}/stop{query}").error(400)
    assert "'timeout'" in error["message"]
    assert commands.StopContainer not in env.hub.commands_called()


def test_kill_defaults_to_sigkill_and_waits_for_the_exit(env):
    view = env.alice.create(run=True)
    reply = env.alice.post(f"/v1/containers/{view['uuid']}/kill")
    assert reply.code == 202
    assert reply.json()["status"] == "exited"
    assert reply.json()["exit_code"] == 137
    assert env.hub.calls_of(commands.KillContainer) == [{"uuid": view["uuid"], "signal": "SIGKILL"}]


@pytest.mark.parametrize("given", ["TERM", "SIGTERM", "term"])
def test_kill_passes_the_signal(env, given):
    view = env.alice.create(run=True)
    reply = env.alice.post(f"/v1/containers/{view['uuid']}/kill?signal={given}")
    assert reply.code == 202
    assert reply.json()["status"] == "running"
    assert env.hub.calls_of(commands.KillContainer) == [{"uuid": view["uuid"], "signal": "SIGTERM"}]


@pytest.mark.parametrize("given", ["NOPE", "0", "65"])
def test_kill_with_an_unknown_signal_is_400(env, given):
    view = env.alice.create(run=True)
    error = env.alice.post(f"/v1/containers/{view['uuid']}/kill?signal={given}").error(400)
    assert "'signal'" in error["message"]
    assert commands.KillContainer not in env.hub.commands_called()


def test_restart_a_running_container(env):
    view = env.alice.create(run=True)
    reply = env.alice.post(f"/v1/containers/{view['uuid']}/restart?timeout=2")
    assert reply.code == 202
    assert reply.json()["status"] == "running"
    assert reply.json()["exit_code"] is None
    assert env.hub.commands_called() == [
        commands.CreateContainer,
        commands.StartContainer,
        commands.StopContainer,
        commands.StartContainer,
    ]
    assert env.hub.calls_of(commands.StopContainer) == [{"uuid": view["uuid"], "timeout": 2}]


def test_restart_an_exited_container(env):
    view = env.alice.create(run=True)
    env.exit(view["uuid"], 1)
    reply = env.alice.post(f"/v1/containers/{view['uuid']}/restart")
    assert reply.code == 202
    assert reply.json()["status"] == "running"
    assert commands.StopContainer not in env.hub.commands_called()
