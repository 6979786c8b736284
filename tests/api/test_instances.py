"""
Placement with instances from a provider, the heartbeat monitor, the idle
reaper and the instance routes, synchronously: the real store on SQLite, a
``Clock``, the fake agent hub, and a fake provider whose agents register
``delay`` seconds after they are asked for.
"""

import math

from twisted.internet.defer import succeed

from csvc.compute.states import LIVE
from csvc.scheduler.health import HeartbeatMonitor
from csvc.scheduler.instances import InstanceMap
from csvc.scheduler.placement import Placement
from csvc.scheduler.reaper import IdleReaper
from tests.api.conftest import pending, result_of


class FakeProvider:
    name = "fake"

    def __init__(self, env, capacity=2, delay=1.0, memory=None, cpus=None):
        self._env = env
        self.capacity = capacity
        self.memory = memory
        self.cpus = cpus
        self.delay = delay
        self.calls = []
        self.removed = []

    def size(self):
        return succeed((self.memory, self.cpus))

    def create_instance(self, project_id):
        self.calls.append(project_id)
        d = self._env.store.create_instance(
            f"fake-{len(self.calls)}", "fake", self.capacity, shared=False, project_id=project_id,
            memory=self.memory, cpus=self.cpus,
        )

        def created(result):
            row, _token = result
            if self.delay is not None:
                self._env.clock.callLater(self.delay, self.register, row["uuid"])
            return row

        return d.addCallback(created)

    def register(self, instance_uuid):
        """
        What the hub does when the instance's agent registers.
        """
        result_of(self._env.store.update_instance(instance_uuid, status="active", last_seen_at=None))
        self._env.hub.connected.add(instance_uuid)
        self._env.hub.notify_registered(instance_uuid)

    def remove_instance(self, row):
        self.removed.append(row["name"])
        return succeed(None)


def with_provider(env, capacity=2, delay=1.0, wait=60.0, shared_capacity=2, memory=None, cpus=None):
    provider = FakeProvider(env, capacity, delay, memory, cpus)
    env.containers.placement = Placement(env.store, env.hub, provider, env.clock, wait=wait)
    env.api.instances = InstanceMap(env.store, env.hub, env.containers, {provider.name: provider})
    result_of(env.store.update_instance(env.instance, capacity=shared_capacity))
    return provider


def tick(env, seconds):
    """
    Advance the clock a second at a time (periodic jobs run every second).
    """
    for _ in range(seconds):
        env.advance(1)


def instances(env):
    return {i["uuid"]: i for i in env.admin.get("/v1/instances").json()["instances"]}


# -- placement ------------------------------------------------------------


def test_fifty_concurrent_creates_share_the_instances_on_their_way(env):
    provider = with_provider(env, capacity=2, delay=1.0)
    requests = [env.alice.start("POST", "/v1/containers", {"image": "busybox", "name": f"c{i}"}) for i in range(50)]
    # Two fit on the shared instance at once; the rest wait for new ones.
    assert sum(not pending(d) for d in requests) == 2
    assert len(provider.calls) == math.ceil(48 / 2) == env.containers.placement.provider_calls
    env.advance(1)
    replies = [env.alice.finish(d) for d in requests]
    assert [r.code for r in replies] == [202] * 50, [r.body for r in replies if r.code != 202]
    assert len(provider.calls) == 24
    placed = {}
    for row in env.all_rows():
        placed.setdefault(row["instance_uuid"], []).append(row)
    listed = instances(env)
    assert len(listed) == 25
    for uuid, rows in placed.items():
        assert len(rows) <= listed[uuid]["capacity"] == 2
    for uuid, instance in listed.items():
        if uuid != env.instance:
            assert instance["project_id"] == "project-a"
            assert instance["shared"] is False


def test_fill_first_then_a_new_instance_for_the_project(env):
    provider = with_provider(env, capacity=2, delay=0)
    views = []
    for _ in range(5):
        views.append(env.alice.create())
        env.advance(1)  # creation order is by time
    order = [v["instance"] for v in views]
    assert order[:2] == [env.instance] * 2
    assert order[2] == order[3] != order[4]
    assert len(provider.calls) == 2
    # A freed slot on the first is filled before anything else.
    assert env.alice.delete(f"/v1/containers/{views[0]['uuid']}").code == 204
    assert env.alice.create()["instance"] == env.instance
    assert len(provider.calls) == 2


def test_another_projects_containers_never_go_on_a_projects_instance(env):
    provider = with_provider(env, capacity=2, delay=0)
    for _ in range(3):
        env.alice.create()
    alices = [u for u, i in instances(env).items() if i["project_id"] == "project-a"]
    # Room is left on alice's instance, none on the shared one: bob gets his own.
    bobs = env.bob.create()
    assert bobs["instance"] not in alices
    assert provider.calls == ["project-a", "project-b"]
    for who in (env.bob, env.admin):
        error = who.post("/v1/containers", {"image": "busybox", "instance": alices[0]}).error(403)
    assert "another project" in error["message"]
    # Alice may name her own.
    assert env.alice.create(instance=alices[0])["instance"] == alices[0]


def test_an_instance_that_never_registers_is_a_bounded_503(env):
    provider = with_provider(env, capacity=2, delay=None, wait=60, shared_capacity=0)
    d = env.alice.start("POST", "/v1/containers", {"image": "busybox"})
    other = env.alice.start("POST", "/v1/containers", {"image": "busybox"})
    env.advance(59)
    assert pending(d)
    env.advance(1)
    for reply in (env.alice.finish(d), env.alice.finish(other)):
        error = reply.error(503)
        assert "fake-1" in error["message"] and "did not register within 60 s" in error["message"]
    assert len(provider.calls) == 1
    assert env.all_rows() == []


def test_quota_is_checked_before_any_instance_is_made(env):
    provider = with_provider(env, capacity=2, delay=0)
    env.admin.request("PUT", "/v1/quotas/project-a", body={"containers": 2})
    env.alice.create()
    env.alice.create()
    env.alice.post("/v1/containers", {"image": "busybox"}).error(403)
    assert provider.calls == []


# -- the heartbeat monitor ---------------------------------------------------


def test_an_instance_missing_heartbeats_is_down_and_its_containers_error(env):
    monitor = HeartbeatMonitor(env.store, env.hub, env.containers.lifecycle, env.clock, interval=1.0, startup=0)
    dropped = []

    def drop(uuid, why):
        dropped.append(uuid)
        env.hub.connected.discard(uuid)

    env.hub.drop = drop
    view = env.alice.create(run=True)
    assert env.row(view["uuid"])["status"] == "running"
    result_of(env.store.touch_instance(env.instance))
    monitor.startService()
    try:
        env.advance(1)
        env.advance(1)
        result_of(env.store.touch_instance(env.instance))
        env.advance(1)
        env.advance(1)
        env.advance(1)
        assert instances(env)[env.instance]["status"] == "active"
        env.advance(1)
        assert instances(env)[env.instance]["status"] == "down"
        assert dropped == [env.instance]
        row = env.row(view["uuid"])
        assert row["status"] == "error"
        assert "instance local-1 is down" in row["status_reason"]
        assert not [r for r in env.all_rows() if r["status"] in LIVE]
        # Nothing is placed there, and what needs it fails at once.
        assert "room" in env.alice.post("/v1/containers", {"image": "busybox"}).error(503)["message"]
        other = env.alice.post(f"/v1/containers/{view['uuid']}/exec", {"command": ["true"]})
        assert other.code in (409, 503)
        env.advance(5)
        assert dropped == [env.instance]

        # The agent comes back and its engine still runs the container: the
        # container is running again, not left in error.
        class Link:
            # What the agent reports goes to the container service.
            events = env.containers

            def peer(self):
                return "test"

        token = result_of(env.store.set_enroll_token(env.instance))
        inventory = [{"uuid": view["uuid"], "state": "running"}]
        result_of(env.hub.register(Link(), token, "docker", 10, "local-1", inventory))
        row = env.row(view["uuid"])
        assert row["status"] == "running" and row["status_reason"] is None
    finally:
        monitor.stopService()


def test_the_monitor_waits_for_agents_after_a_restart(env):
    monitor = HeartbeatMonitor(env.store, env.hub, env.containers.lifecycle, env.clock, interval=1.0)
    monitor.startService()
    try:
        env.advance(9)
        assert instances(env)[env.instance]["status"] == "active"
        env.advance(1)
        assert instances(env)[env.instance]["status"] == "down"
    finally:
        monitor.stopService()


# -- the idle reaper -------------------------------------------------------------


def test_an_instance_left_empty_for_the_grace_period_is_removed(env):
    provider = with_provider(env, capacity=2, delay=0)
    reaper = IdleReaper(
        env.store, env.api.instances, env.containers.placement, {"fake", "local"}, env.clock, grace=10, interval=1
    )
    views = [env.alice.create() for _ in range(3)]
    created = views[2]["instance"]
    reaper.startService()
    try:
        tick(env, 20)
        assert provider.removed == []
        for view in views:
            assert env.alice.delete(f"/v1/containers/{view['uuid']}").code == 204
        tick(env, 9)
        assert provider.removed == []
        tick(env, 2)
        assert provider.removed == ["fake-1"]
        listed = instances(env)
        assert created not in listed
        # The shared instance stays, empty as it is.
        assert env.instance in listed
        assert result_of(env.store.get_instance(created))["status"] == "deleted"
        # A new create after that asks for a new instance again.
        assert env.alice.create()["instance"] == env.instance
    finally:
        reaper.stopService()


def test_an_instance_in_use_again_is_not_reaped(env):
    provider = with_provider(env, capacity=2, delay=0, shared_capacity=0)
    reaper = IdleReaper(env.store, env.api.instances, env.containers.placement, {"fake"}, env.clock, grace=10,
                        interval=1)
    first = env.alice.create()
    reaper.startService()
    try:
        env.alice.delete(f"/v1/containers/{first['uuid']}")
        tick(env, 5)
        env.alice.create()
        tick(env, 30)
        assert provider.removed == []
        assert instances(env)[first["instance"]]["status"] == "active"
    finally:
        reaper.stopService()


# -- the routes -----------------------------------------------------------------


def test_register_show_and_delete_an_instance(env):
    with_provider(env)
    env.alice.post("/v1/instances", {"name": "host-9"}).error(403)
    reply = env.admin.post("/v1/instances", {"name": "host-9", "capacity": 4, "shared": True})
    assert reply.code == 201, reply.body
    body = reply.json()
    assert body["status"] == "pending" and body["capacity"] == 4 and body["shared"] is True
    assert len(body["enroll_token"]) > 20
    assert result_of(env.store.instance_by_token(body["enroll_token"]))["uuid"] == body["uuid"]
    assert env.admin.post("/v1/instances", {"name": "host-9"}).error(409)
    env.admin.post("/v1/instances", {"name": "host-10", "bogus": 1}).error(400)

    view = env.alice.create()
    shown = env.admin.get(f"/v1/instances/{env.instance}").json()
    assert shown["containers"] == 1
    assert [c["uuid"] for c in shown["container_list"]] == [view["uuid"]]
    env.alice.get(f"/v1/instances/{env.instance}").error(403)
    env.admin.get("/v1/instances/nope").error(404)

    error = env.admin.delete(f"/v1/instances/{env.instance}").error(409)
    assert "local-1" in error["message"] and "1 container" in error["message"]
    assert env.admin.delete(f"/v1/instances/{env.instance}?force=true").code == 204
    assert env.row(view["uuid"]) is None
    assert env.instance not in instances(env)
    env.admin.get(f"/v1/instances/{env.instance}").error(404)
    assert env.admin.delete(f"/v1/instances/{body['uuid']}").code == 204
    assert body["uuid"] not in instances(env)


def test_an_instance_shows_whether_its_agent_is_connected(env):
    # The store says active (as after a restart); no agent has registered.
    assert instances(env)[env.instance]["status"] == "active"
    assert instances(env)[env.instance]["connected"] is False
    with_provider(env)
    assert env.admin.get(f"/v1/instances/{env.instance}").json()["connected"] is False

    class Link:
        def peer(self):
            return "test"

    token = result_of(env.store.set_enroll_token(env.instance))
    result_of(env.hub.register(Link(), token, "docker", 10, "local-1", []))
    assert instances(env)[env.instance]["connected"] is True
    assert env.admin.get(f"/v1/instances/{env.instance}").json()["connected"] is True
    assert env.admin.post("/v1/instances", {"name": "host-11"}).json()["connected"] is False
