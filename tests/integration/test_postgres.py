"""
The same control plane on PostgreSQL (the scale-out store), started by the
bootstrap on 127.0.0.1:55432 (CSVC_TEST_POSTGRES overrides the URL; the
``database`` fixture is in conftest.py).
"""

import os
import uuid

import pytest
import sqlalchemy as sa

from tests.integration.conftest import running_plane

def head_revision():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    import csvc.store

    folder = os.path.join(os.path.dirname(csvc.store.__file__), "migrations")
    config = Config()
    config.set_main_option("script_location", folder)
    return ScriptDirectory.from_config(config).get_current_head()


def test_containers_on_postgresql(tmp_path, database):
    with running_plane(tmp_path, database=database) as plane:
        client = plane.client("pg")
        container, exit = client.run(
            ["sh", "-c", "echo $X; sleep 0.1; echo e >&2; exit 3"], environment={"X": "pg"}
        )
        assert exit["exit_code"] == 3
        assert client.logs(container["uuid"]) == b"pg\ne\n"
        (instance,) = plane.admin.get("/v1/instances").json()["instances"]
        assert instance["containers"] == 1
        assert client.delete(f"/v1/containers/{container['uuid']}").status_code == 204
    # The rows are in PostgreSQL, not in an SQLite file of the data dir.
    assert not os.path.exists(os.path.join(str(tmp_path), "csvc.sqlite"))
    engine = sa.create_engine(database)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM tokens")).scalar() == 2
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
    engine.dispose()


def test_resource_updates_lock_and_merge_on_postgresql(database):
    """
    ``docker update``'s store units on PostgreSQL, where they lock the
    container's row and the project's quota (SQLite has no FOR UPDATE).
    """
    from twisted.internet.task import Clock

    from csvc.store.db import make_engine, upgrade
    from csvc.store.quotas import QuotaExceeded
    from tests.api.conftest import SynchronousStore, result_of

    engine = make_engine(database)
    upgrade(engine)
    try:
        store = SynchronousStore(engine, Clock())
        instance, _token = result_of(store.create_instance("pg-1", "local", 10, shared=True))
        result_of(store.update_instance(instance["uuid"], status="active"))
        result_of(store.set_quota("pg", {"memory": 100}))
        values = dict(uuid=str(uuid.uuid4()), name="upd", project_id="pg", user_id="u", image="busybox:latest",
                      command=None, environment={}, labels={}, memory=64, cpu=None, status="created",
                      docker_config=None)
        row = result_of(store.place_container(values))
        _, first = result_of(store.update_container_resources(row["uuid"], {"PidsLimit": 5}, cpu=0.5))
        _, second = result_of(store.update_container_resources(row["uuid"], {"Memory": 90 * 2 ** 20}, memory=90))
        assert second["docker_config"]["HostConfig"] == {"PidsLimit": 5, "Memory": 90 * 2 ** 20}
        assert (second["memory"], second["cpu"]) == (90, 0.5)
        with pytest.raises(QuotaExceeded):
            result_of(store.update_container_resources(row["uuid"], {"Memory": 2 ** 30}, memory=1024))
        assert result_of(store.restore_container_resources(row["uuid"], first, second)) is True
        assert result_of(store.get_container(row["uuid"]))["memory"] == 64
    finally:
        engine.dispose()


def test_concurrent_placements_never_overfill_memory_on_postgresql(database):
    """
    Forty placements at once on eight connections (eight projects: their
    quota locks do not serialise them), each asking 256 MiB of
    three instances of 1024 MiB: row locks make them take turns, so exactly
    twelve fit, no instance holds more than its memory, and the rest are
    told there is no room.
    """
    from concurrent.futures import ThreadPoolExecutor

    from twisted.internet.task import Clock

    from csvc.store import containers, instances
    from csvc.store.db import NoRoom, Store, make_engine, upgrade

    engine = make_engine(database)
    upgrade(engine)
    store = Store(engine, Clock())
    rows = []
    for i in range(3):
        row, _token = store.run_sync(instances.thd_create, f"i{i}", "static", 100, True, None, 1024, 8.0,
                                    store.now())
        store.run_sync(instances.thd_update, row["uuid"], {"status": "active"})
        rows.append(row)

    def place(i):
        values = dict(uuid=str(uuid.uuid4()), name=f"c{i}", project_id=f"p{i % 8}", image="busybox", status="creating",
                      memory=256, cpu=0.5, tty=False, interactive=False, auto_remove=False, remove_on_exit=False)
        try:
            return store.run_sync(containers.thd_place, values, None, store.quota_defaults, store.now())["instance_uuid"]
        except NoRoom as exc:
            return str(exc)

    try:
        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(place, range(40)))
        listed = {r["uuid"]: r for r in store.run_sync(instances.thd_list, None)}
    finally:
        engine.dispose()
    placed = [o for o in outcomes if o in listed]
    assert len(placed) == 12
    assert [o for o in outcomes if o not in listed] == ["no active instance has room for another container"] * 28
    for row in rows:
        assert placed.count(row["uuid"]) == 4
        assert listed[row["uuid"]]["usage"]["memory"] == 1024
