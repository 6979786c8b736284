"""
Placement by memory and cpu as well as by count, synchronously: the real
store on SQLite, a ``Clock``, the fake agent hub and the fake provider of
``test_instances``.  What the instance views say of size and usage, and what
an agent's report of its host does to an instance's size.
"""

from csvc.compute.defaults import Confinement
from csvc.agents.hub import AgentHub
from tests.api.conftest import pending, result_of
from tests.api.test_instances import instances, with_provider


def size_shared(env, capacity=10, memory=None, cpus=None):
    result_of(env.store.update_instance(env.instance, capacity=capacity, memory=memory, cpus=cpus))


def placed(env):
    """
    instance uuid -> the rows on it.
    """
    by_instance = {}
    for row in env.all_rows():
        by_instance.setdefault(row["instance_uuid"], []).append(row)
    return by_instance


def test_memory_fills_an_instance_then_a_new_one_is_made(env):
    # (an operator who sets no default memory: containers without limits)
    env.containers.confinement = Confinement(memory_mib=0)
    provider = with_provider(env, capacity=10, delay=0, shared_capacity=10, memory=1024, cpus=2.0)
    size_shared(env, memory=1024, cpus=2.0)
    first = [env.alice.create(memory=512, cpu=0.5) for _ in range(2)]
    assert [v["instance"] for v in first] == [env.instance] * 2
    assert provider.calls == []
    env.advance(1)  # creation order is by time
    third = env.alice.create(memory=512)
    assert third["instance"] != env.instance
    assert provider.calls == ["project-a"]
    # No limits: no memory or cpu counted, only a slot; it goes on the first.
    assert env.alice.create()["instance"] == env.instance
    shown = env.admin.get(f"/v1/instances/{env.instance}").json()
    assert (shown["capacity"], shown["memory"], shown["cpus"]) == (10, 1024, 2.0)
    assert shown["usage"] == {"containers": 3, "live": 3, "memory": 1024, "cpus": 1.0}
    listed = instances(env)
    assert listed[env.instance]["usage"] == shown["usage"]
    assert listed[third["instance"]]["usage"] == {"containers": 1, "live": 1, "memory": 512, "cpus": 0.0}
    assert (listed[third["instance"]]["memory"], listed[third["instance"]]["cpus"]) == (1024, 2.0)


def test_cpu_alone_can_be_what_runs_out(env):
    provider = with_provider(env, capacity=10, delay=0, shared_capacity=10, memory=None, cpus=1.0)
    size_shared(env, cpus=1.0)
    views = [env.alice.create(cpu=0.25) for _ in range(5)]
    assert [v["instance"] == env.instance for v in views] == [True] * 4 + [False]
    assert len(provider.calls) == 1


def test_an_exited_container_frees_its_memory_but_keeps_its_slot(env):
    with_provider(env, capacity=10, delay=0, shared_capacity=2, memory=1024)
    size_shared(env, capacity=2, memory=1024)
    view = env.alice.create(memory=1024)
    assert env.alice.create(memory=6)["instance"] != env.instance
    assert env.alice.post(f"/v1/containers/{view['uuid']}/start").code == 202
    env.exit(view["uuid"], 0)
    assert env.row(view["uuid"])["status"] == "exited"
    # Its memory is free again; a second slot is left: the first instance.
    assert env.alice.create(memory=1024)["instance"] == env.instance
    assert instances(env)[env.instance]["usage"] == {"containers": 2, "live": 1, "memory": 1024, "cpus": 0.0}


def test_fifty_concurrent_creates_never_overfill_memory(env):
    provider = with_provider(env, capacity=10, delay=1.0, shared_capacity=10, memory=1024, cpus=4.0)
    size_shared(env, memory=1024, cpus=4.0)
    requests = [
        env.alice.start("POST", "/v1/containers", {"image": "busybox", "name": f"c{i}", "memory": 512})
        for i in range(50)
    ]
    assert sum(not pending(d) for d in requests) == 2
    # The creates waiting share the instances on their way by memory too.
    assert len(provider.calls) == 24 == env.containers.placement.provider_calls
    env.advance(1)
    replies = [env.alice.finish(d) for d in requests]
    assert [r.code for r in replies] == [202] * 50, [r.body for r in replies if r.code != 202]
    assert len(provider.calls) == 24
    listed = instances(env)
    for uuid, rows in placed(env).items():
        assert sum(r["memory"] for r in rows) <= listed[uuid]["memory"] == 1024
        assert listed[uuid]["usage"]["memory"] == sum(r["memory"] for r in rows)


def test_a_container_larger_than_the_providers_instances_is_a_400_and_makes_nothing(env):
    provider = with_provider(env, capacity=10, delay=0, memory=2048, cpus=2.0)
    size_shared(env, memory=2048, cpus=2.0)
    error = env.alice.post("/v1/containers", {"image": "busybox", "memory": 4096}).error(400)
    assert error["message"] == (
        "the container asks for 4096 MiB of memory, more than an instance of provider fake has (2048 MiB)"
    )
    error = env.alice.post("/v1/containers", {"image": "busybox", "cpu": 3}).error(400)
    assert "3 cores of cpu" in error["message"] and "(2 cores)" in error["message"]
    assert provider.calls == []
    assert env.all_rows() == []


def test_without_a_provider_too_large_is_a_400_and_full_a_503_naming_memory(env):
    size_shared(env, memory=1024, cpus=2.0)
    error = env.alice.post("/v1/containers", {"image": "busybox", "memory": 2048}).error(400)
    assert error["message"] == "the container asks for 2048 MiB of memory, more than any active instance has (1024 MiB)"
    env.alice.create(memory=1000)
    error = env.alice.post("/v1/containers", {"image": "busybox", "memory": 100}).error(503)
    assert "no active instance has room" in error["message"]
    error = env.alice.post("/v1/containers", {"image": "busybox", "memory": 100, "instance": "local-1"}).error(503)
    assert error["message"] == "instance local-1 is full (memory: 1000 of 1024 MiB in use, 100 asked)"
    error = env.alice.post("/v1/containers", {"image": "busybox", "cpu": 4, "instance": "local-1"}).error(400)
    assert error["message"] == "the container asks for 4 cores of cpu, more than instance local-1 has (2 cores)"


class Link:
    """
    What ``AgentHub.register`` needs of an agent's link.
    """

    instance_uuid = None

    def peer(self):
        return "127.0.0.1:1"


def register(env, row, token, facts):
    hub = AgentHub(env.store, env.journal, env.clock)
    return result_of(hub.register(Link(), token, "docker", row["capacity"], "host", [], facts))


def test_an_operators_host_is_as_large_as_its_agent_reports(env):
    with_provider(env)
    body = env.admin.post("/v1/instances", {"name": "host-1", "capacity": 4}).json()
    assert (body["memory"], body["cpus"]) == (None, None)
    facts = {"MemTotal": 8 * 1024**3 + 12345, "NCPU": 6}
    register(env, body, body["enroll_token"], facts)
    shown = env.admin.get("/v1/instances/host-1").json()
    assert (shown["status"], shown["memory"], shown["cpus"]) == ("active", 8192, 6.0)
    # It reports again, larger after an upgrade: it is what it says.
    register(env, body, body["enroll_token"], {"MemTotal": 16 * 1024**3, "NCPU": 8})
    shown = env.admin.get("/v1/instances/host-1").json()
    assert (shown["memory"], shown["cpus"]) == (16384, 8.0)


def test_an_instance_a_provider_sized_keeps_its_size_whatever_its_agent_reports(env):
    with_provider(env)
    row, token = result_of(env.store.create_instance("nova-1", "nova", 10, shared=False, project_id="p",
                                                     memory=2048, cpus=1.0))
    register(env, row, token, {"MemTotal": 2000 * 1024**2, "NCPU": 1})
    shown = env.admin.get("/v1/instances/nova-1").json()
    assert (shown["memory"], shown["cpus"]) == (2048, 1.0)
    # An instance made before sizes were kept takes what its agent says.
    row, token = result_of(env.store.create_instance("local-old", "local", 10))
    register(env, row, token, {"MemTotal": 1024**3, "NCPU": 2, "ServerVersion": "20.10"})
    shown = env.admin.get("/v1/instances/local-old").json()
    assert (shown["memory"], shown["cpus"]) == (1024, 2.0)
    # Facts that say nothing (an engine that could not tell) change nothing.
    row, token = result_of(env.store.create_instance("local-mute", "local", 10))
    register(env, row, token, {})
    assert env.admin.get("/v1/instances/local-mute").json()["memory"] is None


def test_dockers_api_says_too_large_with_a_400_too():
    from csvc.api.docker import classify
    from csvc.store.db import ContainerTooLarge, NoRoom

    assert classify(ContainerTooLarge("memory", 4096, 2048, "any active instance"))[0] == 400
    assert classify(NoRoom("no active instance has room for another container"))[0] == 503


def test_a_provider_that_cannot_tell_its_size_is_a_503(env):
    from twisted.internet.defer import fail

    from csvc.providers.nova import NovaError

    provider = with_provider(env, capacity=10, delay=0, shared_capacity=0)
    provider.size = lambda: fail(NovaError("Nova could not show flavor 2: 503: unavailable"))
    error = env.alice.post("/v1/containers", {"image": "busybox"}).error(503)
    assert error["message"] == (
        "the provider could not tell the size of its instances: Nova could not show flavor 2: 503: unavailable"
    )
    assert provider.calls == []
