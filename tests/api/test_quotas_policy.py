"""
Policy (one table of named rules) and per-project quotas, through the native
API, synchronously (``StubTreq``, the real store on SQLite).
"""


import pytest
from treq.testing import StubTreq

from csvc import config, policy
from csvc.api import docker
from csvc.api.auth import Identity, TokenAuth
from csvc.api.errors import classify
from csvc.api.native import NativeAPI
from csvc.relay.attach import Relay
from csvc.store.quotas import DEFAULT_LIMITS, QuotaExceeded
from tests.api.conftest import result_of

DEFAULTS = {"containers": 100, "memory": 65536, "cpu": 64, "attach_sessions": 50, "networks": 8, "output": 10240}


def denied(reply, rule):
    """
    The reply is a 403 that names ``rule``.
    """
    error = reply.error(403)
    assert error["title"] == "Forbidden"
    assert f"policy does not allow {rule}" in error["message"], error["message"]
    return error


def private_instance(env, name="private-1", capacity=10):
    row, _enroll = result_of(env.store.create_instance(name, "static", capacity, shared=False))
    result_of(env.store.update_instance(row["uuid"], status="active"))
    env.hub.connected.add(row["uuid"])
    return row


# -- the rule table -------------------------------------------------------


def test_every_rule_is_made_of_known_checks():
    for rule in policy.RULES:
        for check in policy.checks(rule):
            assert check in ("project", "admin", "owner", "shared"), (rule, check)


@pytest.mark.parametrize(
    "rule,who,target_project,target,expected",
    [
        ("container:create", "member", None, None, True),
        ("container:list_all_projects", "member", None, None, False),
        ("container:list_all_projects", "admin", None, None, True),
        ("instance:list", "member", None, None, False),
        ("instance:list", "admin", None, None, True),
        ("container:create:instance", "member", None, {"shared": True}, True),
        ("container:create:instance", "member", None, {"shared": False}, False),
        ("container:create:instance", "admin", None, {"shared": False}, True),
        ("container:get", "member", "p", None, True),
        ("container:get", "member", "other", None, False),
        ("container:get", "admin", "other", None, True),
        ("container:delete", "admin", "other", None, False),
        ("container:force_delete", "admin", "other", None, True),
        ("container:force_delete", "member", "other", None, False),
        ("quota:get", "member", "p", None, True),
        ("quota:get", "member", "other", None, False),
        ("quota:get", "admin", "other", None, True),
        ("quota:usage", "member", "other", None, False),
        ("quota:update", "member", "p", None, False),
        ("quota:update", "admin", "other", None, True),
        ("quota:delete", "member", "p", None, False),
    ],
)
def test_rules(rule, who, target_project, target, expected):
    identity = Identity("p", "u", is_admin=(who == "admin"))
    assert policy.allowed(rule, identity, target_project, target) is expected
    if expected:
        policy.enforce(rule, identity, target_project, target)
    else:
        with pytest.raises(policy.Forbidden) as caught:
            policy.enforce(rule, identity, target_project, target)
        assert str(caught.value).startswith(f"policy does not allow {rule} ")


def test_an_unknown_rule_is_a_bug_not_a_denial():
    with pytest.raises(ValueError):
        policy.enforce("container:teleport", Identity("p", "u", True))


# -- rules through the API -------------------------------------------------


def test_listing_all_projects_is_admin_only(env):
    env.alice.create()
    error = denied(env.alice.get("/v1/containers?all_projects=true"), "container:list_all_projects")
    assert "admin" in error["message"]
    assert len(env.admin.get("/v1/containers?all_projects=true").json()["containers"]) == 1


def test_the_instance_map_is_admin_only(env):
    denied(env.alice.get("/v1/instances"), "instance:list")
    assert env.admin.get("/v1/instances").code == 200


def test_a_member_may_choose_a_shared_instance(env):
    for ident in (env.instance, "local-1"):
        view = env.alice.create(instance=ident)
        assert view["instance"] == env.instance


def test_a_member_may_not_choose_a_private_instance(env):
    private = private_instance(env)
    for ident in (private["uuid"], private["name"]):
        denied(env.alice.post("/v1/containers", {"image": "busybox", "instance": ident}), "container:create:instance")
    assert env.all_rows() == []
    assert env.hub.calls == []


def test_an_admin_may_choose_a_private_instance(env):
    private = private_instance(env)
    view = env.admin.create(instance=private["name"])
    assert view["instance"] == private["uuid"]


def test_another_projects_container_stays_404(env):
    view = env.alice.create()
    for method, suffix in (("GET", ""), ("POST", "/stop"), ("DELETE", "")):
        env.bob.request(method, f"/v1/containers/{view['uuid']}{suffix}").error(404)
    env.bob.delete(f"/v1/containers/{view['uuid']}?all_projects=true&force=true").error(404)
    assert env.row(view["uuid"]) is not None


def test_an_admin_force_deletes_another_projects_container(env):
    view = env.alice.create()
    # Without all_projects an admin is in its own project like anyone else.
    env.admin.delete(f"/v1/containers/{view['uuid']}?force=true").error(404)
    denied(env.admin.delete(f"/v1/containers/{view['uuid']}?all_projects=true"), "container:delete")
    assert env.row(view["uuid"]) is not None
    assert env.admin.delete(f"/v1/containers/{view['uuid']}?all_projects=true&force=true").code == 204
    assert env.row(view["uuid"]) is None


def test_an_owner_deletes_with_or_without_force(env):
    first, second = env.alice.create(), env.alice.create()
    assert env.alice.delete(f"/v1/containers/{first['uuid']}").code == 204
    assert env.alice.delete(f"/v1/containers/{second['uuid']}?force=true&all_projects=true").code == 204
    assert env.all_rows() == []


# -- quota endpoints -------------------------------------------------------


def test_defaults_match_the_configuration():
    assert DEFAULT_LIMITS == DEFAULTS
    assert config.quota_defaults(config.DEFAULTS) == DEFAULTS


def test_a_project_reads_its_own_quota(env):
    reply = env.alice.get("/v1/quotas/project-a")
    assert reply.code == 200
    assert reply.json() == DEFAULTS


def test_a_project_may_not_read_anothers_quota(env):
    denied(env.alice.get("/v1/quotas/project-b"), "quota:get")
    denied(env.alice.get("/v1/quotas/project-b/usage"), "quota:usage")


def test_an_admin_reads_and_sets_any_quota(env):
    assert env.admin.get("/v1/quotas/project-a").json() == DEFAULTS
    reply = env.admin.request("PUT", "/v1/quotas/project-a", body={"containers": 3, "cpu": -1})
    assert reply.code == 200
    assert reply.json() == dict(DEFAULTS, containers=3, cpu=-1)
    # a partial update keeps what it does not name
    reply = env.admin.request("PUT", "/v1/quotas/project-a", body={"memory": 512, "attach_sessions": 0})
    assert reply.json() == {"containers": 3, "memory": 512, "cpu": -1, "attach_sessions": 0, "networks": 8,
                            "output": 10240}
    assert env.alice.get("/v1/quotas/project-a").json() == reply.json()
    # other projects are untouched
    assert env.bob.get("/v1/quotas/project-b").json() == DEFAULTS


def test_null_restores_a_default_and_delete_restores_all(env):
    env.admin.request("PUT", "/v1/quotas/project-a", body={"containers": 3, "memory": 7})
    reply = env.admin.request("PUT", "/v1/quotas/project-a", body={"containers": None})
    assert reply.json() == dict(DEFAULTS, memory=7)
    assert env.admin.delete("/v1/quotas/project-a").code == 204
    assert env.alice.get("/v1/quotas/project-a").json() == DEFAULTS


def test_a_member_may_not_set_quotas_not_even_its_own(env):
    denied(env.alice.request("PUT", "/v1/quotas/project-a", body={"containers": 1000}), "quota:update")
    denied(env.alice.delete("/v1/quotas/project-a"), "quota:delete")
    assert env.alice.get("/v1/quotas/project-a").json() == DEFAULTS


@pytest.mark.parametrize(
    "body,field",
    [
        ({"containers": -2}, "containers"),
        ({"memory": "lots"}, "memory"),
        ({"cpu": 1.5}, "cpu"),
        ({"attach_sessions": True}, "attach_sessions"),
        ({"networks": 0.5}, "networks"),
        ({"output": -3}, "output"),
        ({"containers": 1, "instances": 4}, "instances"),
    ],
)
def test_bad_quota_bodies_are_400_naming_the_field(env, body, field):
    error = env.admin.request("PUT", "/v1/quotas/project-a", body=body).error(400)
    assert field in error["message"]
    assert env.admin.get("/v1/quotas/project-a").json() == DEFAULTS


def test_a_quota_body_must_be_an_object(env):
    env.admin.request("PUT", "/v1/quotas/project-a", body=[1]).error(400)


def test_usage_counts_containers_memory_and_cpu(env):
    env.alice.create(memory=256, cpu=0.5)
    env.alice.create(memory=128)
    env.alice.create()
    env.bob.create(memory=1024, cpu=2)
    reply = env.alice.get("/v1/quotas/project-a/usage")
    assert reply.code == 200
    assert reply.json() == {
        "containers": {"limit": 100, "in_use": 3},
        # (the container created without a limit has the default, 512 MiB)
        "memory": {"limit": 65536, "in_use": 384 + 512},
        "cpu": {"limit": 64, "in_use": 0.5},
        "attach_sessions": {"limit": 50, "in_use": 0},
        # (this API is not given the instances' networks to count)
        "networks": {"limit": 8, "in_use": None},
        "output": {"limit": 10240, "in_use": 0},
    }
    assert env.admin.get("/v1/quotas/project-b/usage").json()["cpu"] == {"limit": 64, "in_use": 2.0}
    assert env.alice.get("/v1/quotas/nobody-here/usage").code == 403


# -- quotas at create -----------------------------------------------------


def quota_error(reply, resource):
    error = reply.error(403)
    assert error["message"].startswith(f"quota exceeded for {resource}: limit "), error["message"]
    return error["message"]


def test_the_containers_quota_refuses_the_one_too_many(env):
    env.admin.request("PUT", "/v1/quotas/project-a", body={"containers": 2})
    env.alice.create()
    env.alice.create()
    message = quota_error(env.alice.post("/v1/containers", {"image": "busybox", "name": "third"}), "containers")
    assert message == "quota exceeded for containers: limit 2, in use 2, requested 1"
    assert len(env.all_rows()) == 2
    # another project is not held back by it
    env.bob.create()
    # deleting makes room again
    first = env.alice.get("/v1/containers").json()["containers"][0]
    assert env.alice.delete(f"/v1/containers/{first['uuid']}").code == 204
    env.alice.create(name="third")


def test_the_memory_quota_sums_memory_given(env):
    env.admin.request("PUT", "/v1/quotas/project-a", body={"memory": 900})
    env.alice.create(memory=200)
    env.alice.create()  # no memory given: the default limit (512 MiB), counted
    message = quota_error(env.alice.post("/v1/containers", {"image": "busybox", "memory": 189}), "memory")
    assert message == "quota exceeded for memory: limit 900, in use 712, requested 189"
    message = quota_error(env.alice.post("/v1/containers", {"image": "busybox"}), "memory")
    assert message == "quota exceeded for memory: limit 900, in use 712, requested 512"
    env.alice.create(memory=188)


def test_the_cpu_quota_sums_cpus_given(env):
    env.admin.request("PUT", "/v1/quotas/project-a", body={"cpu": 2})
    env.alice.create(cpu=1.5)
    message = quota_error(env.alice.post("/v1/containers", {"image": "busybox", "cpu": 1}), "cpu")
    assert message == "quota exceeded for cpu: limit 2, in use 1.5, requested 1"
    env.alice.create(cpu=0.5)


def test_a_zero_quota_refuses_everything_and_minus_one_is_unlimited(env):
    env.admin.request("PUT", "/v1/quotas/project-a", body={"containers": 0})
    quota_error(env.alice.post("/v1/containers", {"image": "busybox"}), "containers")
    env.admin.request("PUT", "/v1/quotas/project-a", body={"containers": -1, "memory": -1})
    env.alice.create(memory=1048576)


def test_the_configured_default_applies_without_a_row(env):
    env.store.quota_defaults["containers"] = 1
    env.alice.create()
    quota_error(env.alice.post("/v1/containers", {"image": "busybox"}), "containers")
    assert env.alice.get("/v1/quotas/project-a").json()["containers"] == 1
    env.admin.request("PUT", "/v1/quotas/project-a", body={"containers": 2})
    env.alice.create()


def test_a_quota_refusal_stores_nothing_and_calls_no_agent(env):
    env.admin.request("PUT", "/v1/quotas/project-a", body={"containers": 0})
    env.alice.post("/v1/containers", {"image": "busybox"}).error(403)
    assert env.all_rows() == []
    assert env.hub.calls == []


def test_both_apis_map_quota_exceeded_to_403():
    exc = QuotaExceeded("containers", 10, 10)
    assert classify(exc) == (403, "Forbidden", "quota exceeded for containers: limit 10, in use 10, requested 1")
    assert docker.classify(exc) == (403, str(exc))
    assert docker.classify(policy.Forbidden("policy does not allow instance:list")) == (
        403,
        "policy does not allow instance:list",
    )


# -- attach sessions -------------------------------------------------------


class FakeSession:
    """
    An open attach session (WebSocket or Docker stream) as the relay's
    registry holds it: anything with the project it counts against.
    """

    def __init__(self, project_id):
        self.project_id = project_id


fake_session = FakeSession


def test_attach_sessions_beyond_the_quota_are_refused(env):
    relay = Relay(env.containers, env.journal, env.store, env.clock)
    row = {"uuid": "c1", "project_id": "project-a"}
    env.admin.request("PUT", "/v1/quotas/project-a", body={"attach_sessions": 2})
    result_of(relay.check_session_quota(row))
    relay.sessions.update({fake_session("project-a"), fake_session("project-b"), fake_session("project-b")})
    result_of(relay.check_session_quota(row))
    relay.sessions.add(fake_session("project-a"))
    assert relay.project_sessions("project-a") == 2
    with pytest.raises(QuotaExceeded) as caught:
        result_of(relay.check_session_quota(row))
    assert str(caught.value) == "quota exceeded for attach_sessions: limit 2, in use 2, requested 1"
    # project-b is at its default of 50
    result_of(relay.check_session_quota({"uuid": "c2", "project_id": "project-b"}))
    env.admin.request("PUT", "/v1/quotas/project-a", body={"attach_sessions": -1})
    result_of(relay.check_session_quota(row))


def test_attaching_beyond_the_quota_is_a_403(env):
    relay = Relay(env.containers, env.journal, env.store, env.clock)
    env.http = StubTreq(NativeAPI(TokenAuth(env.store), env.containers, env.store, env.journal, relay).resource())
    view = env.alice.create(interactive=True, run=True)
    env.admin.request("PUT", "/v1/quotas/project-a", body={"attach_sessions": 1})
    relay.sessions.add(fake_session("project-a"))
    usage = env.alice.get("/v1/quotas/project-a/usage").json()
    assert usage["attach_sessions"] == {"limit": 1, "in_use": 1}
    reply = env.alice.get(
        f"/v1/containers/{view['uuid']}/attach",
        headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
    )
    quota_error(reply, "attach_sessions")


# -- configuration ---------------------------------------------------------


def test_quota_settings_resolve(tmp_path):
    settings = config.resolve({"data-dir": str(tmp_path), "quota-containers": "10", "quota-cpu": "-1"})
    assert config.quota_defaults(settings) == dict(DEFAULTS, containers=10, cpu=-1)


def test_quota_settings_below_minus_one_are_refused(tmp_path):
    with pytest.raises(config.ConfigError, match="quota-memory"):
        config.resolve({"data-dir": str(tmp_path), "quota-memory": "-2"})


def test_resource_updates_merge_in_the_store_within_the_quota(env):
    view = env.alice.create(image="busybox", memory=64)
    uuid = view["uuid"]
    confined = {"PidsLimit": 4096, "CapDrop": ["NET_RAW"], "SecurityOpt": ["no-new-privileges"]}
    result_of(env.store.set_quota("project-a", {"memory": 200, "cpu": 2}))
    before, first = result_of(env.store.update_container_resources(uuid, {"Memory": 96 * 2 ** 20}, memory=96))
    assert before["memory"] == 64 and first["memory"] == 96
    # A second update merges into what the first stored, not into a stale copy.
    _, second = result_of(env.store.update_container_resources(uuid, {"PidsLimit": 9}, cpu=1.5))
    assert second["docker_config"]["HostConfig"] == dict(confined, Memory=96 * 2 ** 20, PidsLimit=9)
    assert (second["memory"], second["cpu"]) == (96, 1.5)
    with pytest.raises(QuotaExceeded) as over:
        result_of(env.store.update_container_resources(uuid, {"Memory": 300 * 2 ** 20}, memory=300))
    assert str(over.value) == "quota exceeded for memory: limit 200, in use 0, requested 300"
    # A revert puts back only what nothing changed since.
    assert result_of(env.store.restore_container_resources(uuid, first, second)) is True
    assert env.row(uuid)["docker_config"]["HostConfig"] == dict(confined, Memory=96 * 2 ** 20)
    assert result_of(env.store.restore_container_resources(uuid, before, second)) is False
