"""
What an agent's registration changes in its containers' states, through the
life-cycle machine (``csvc.compute.lifecycle``): the real store on SQLite, the
fake agent hub, and a registration made as an agent's link makes it.
"""

from tests.api.conftest import result_of


def register(env, inventory):
    class Link:
        # What the agent reports goes to the container service.
        events = env.containers

        def peer(self):
            return "test"

    token = result_of(env.store.set_enroll_token(env.instance))
    return result_of(env.hub.register(Link(), token, "docker", 10, "local-1", inventory))


def test_containers_the_engine_no_longer_has_are_error_unless_already_ended(env):
    running = env.alice.create(run=True)["uuid"]
    created = env.alice.create()["uuid"]
    exited = env.alice.create(run=True)["uuid"]
    result_of(env.hub.report_exit(exited, 3))
    assert env.row(exited)["status"] == "exited"

    register(env, [])

    for uuid in (running, created):
        row = env.row(uuid)
        assert row["status"] == "error", uuid
        assert row["status_reason"] == "the container vanished from the engine of instance local-1"
    row = env.row(exited)
    assert row["status"] == "exited" and row["exit_code"] == 3 and row["status_reason"] is None


def test_an_instance_only_out_of_touch_gets_its_containers_back_as_the_engine_has_them(env):
    created = env.alice.create()["uuid"]
    running = env.alice.create(run=True)["uuid"]
    vanished = env.alice.create(run=True)["uuid"]
    result_of(env.containers.on_vanished(vanished, "local-1", "destroy", -1, 0))
    assert env.row(vanished)["status"] == "error"
    down = result_of(env.containers.lifecycle.instance_down(env.instance, "instance local-1 is down: silent"))
    assert sorted(down) == sorted([created, running])

    register(env, [{"uuid": created, "state": "created"}, {"uuid": running, "state": "running"},
                   {"uuid": vanished, "state": "running"}])

    assert (env.row(created)["status"], env.row(created)["status_reason"]) == ("created", None)
    assert (env.row(running)["status"], env.row(running)["status_reason"]) == ("running", None)
    # An error of its own is not undone by the engine's report.
    row = env.row(vanished)
    assert row["status"] == "error" and "removed from the engine" in row["status_reason"]
