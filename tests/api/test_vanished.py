"""
A container removed from its engine behind the service's back: the agent's
``Vanished`` report makes it ``error`` with a reason that names what
happened, records the exit when known, and keeps its output.
"""

from tests.api.conftest import result_of


def running(env):
    view = env.alice.create()
    assert env.alice.post(f"/v1/containers/{view['uuid']}/start").code == 202
    assert env.row(view["uuid"])["status"] == "running"
    return view["uuid"]


def test_a_running_container_removed_behind_our_back_is_error_with_its_exit(env):
    uuid = running(env)
    env.output(uuid, (1, b"before\n"))
    result_of(env.containers.on_vanished(uuid, "local-1", "destroy", 137, 1))
    env.settle()
    shown = env.alice.get(f"/v1/containers/{uuid}").json()
    assert shown["status"] == "error"
    assert shown["status_reason"] == (
        "the container was removed from the engine of instance local-1 by something other than csvc "
        "(the engine's destroy event); its process had exited with 137"
    )
    assert shown["exit_code"] == 137 and shown["finished_at"] is not None
    assert env.alice.get(f"/v1/containers/{uuid}/logs").body == b"before\n"
    # It may still be deleted, as any container in error.
    assert env.alice.delete(f"/v1/containers/{uuid}").code == 204


def test_an_exited_container_keeps_its_recorded_exit(env):
    uuid = running(env)
    env.exit(uuid, 3)
    assert env.row(uuid)["status"] == "exited"
    result_of(env.containers.on_vanished(uuid, "local-1", "missing", -1, 0))
    row = env.row(uuid)
    assert (row["status"], row["exit_code"]) == ("error", 3)
    assert row["status_reason"].endswith("(the engine no longer knows it); its process had exited with 3")


def test_unknown_exit_is_not_invented_and_a_second_report_changes_nothing(env):
    view = env.alice.create()
    result_of(env.containers.on_vanished(view["uuid"], "local-1", "destroy", -1, 0))
    row = env.row(view["uuid"])
    assert (row["status"], row["exit_code"]) == ("error", None)
    assert row["status_reason"].endswith("(the engine's destroy event)")
    result_of(env.containers.on_vanished(view["uuid"], "local-1", "missing", 9, 0))
    assert env.row(view["uuid"]) == row
