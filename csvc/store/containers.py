"""
Containers' rows, as units of work for ``Store`` (``thd_*(conn, ...)``, plain
data in and out): placement on an instance with room (within the project's
quota), look-ups by uuid, name or Docker id, conditional updates (the life
cycle's writes), resources, names, deletion.  ``now`` is a naive UTC datetime
(``Store.now``); ``defaults`` are the projects' default limits
(``Store.quota_defaults``).
"""

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from csvc.store import capacity, quotas
from csvc.store.capacity import NoRoom
from csvc.store.models import containers, instances, output_chunks
from csvc.store.tokens import row_of


class NameInUse(Exception):
    """
    The project already has a container of this name.
    """


def _locked(conn, query):
    # SQLite has no FOR UPDATE (it serialises writers anyway).
    return query if conn.dialect.name == "sqlite" else query.with_for_update()


def _get(conn, container_uuid):
    return row_of(conn.execute(select(containers).where(containers.c.uuid == container_uuid)).first())


def thd_place(conn, values, instance_uuid, defaults, now):
    """
    Insert a container row on an instance with room (see ``Store.place_container``).
    """
    quotas.thd_check_placement(conn, values, defaults)
    if conn.execute(
        select(containers.c.uuid).where(
            containers.c.project_id == values["project_id"], containers.c.name == values["name"]
        )
    ).first():
        raise NameInUse(values["name"])
    query = select(instances).order_by(instances.c.created_at, instances.c.uuid)
    if instance_uuid is not None:
        query = query.where(
            (instances.c.uuid == instance_uuid) | (instances.c.name == instance_uuid),
            instances.c.status != "deleted",
        )
    else:
        # Fill-first over the instances this project may use: its own and
        # the shared ones (never another project's, nor an unshared one
        # nobody owns: those take a container only when named).
        query = query.where(
            or_(
                instances.c.project_id == values["project_id"],
                and_(instances.c.project_id.is_(None), instances.c.shared.is_(True)),
            )
        )
    candidates = [row_of(r) for r in conn.execute(_locked(conn, query))]
    if instance_uuid is not None and not candidates:
        raise NoRoom(f"instance {instance_uuid!r} does not exist")
    want = capacity.wanted(values)
    # Counted after the candidates are locked (PostgreSQL): nobody else
    # places on them until this transaction ends.
    usage = capacity.thd_usage(conn, [inst["uuid"] for inst in candidates])
    chosen = None
    usable = []
    for inst in candidates:
        if inst.get("project_id") not in (None, values["project_id"]):
            raise NoRoom(f"instance {inst['name']} belongs to another project")
        if inst["status"] != "active":
            if instance_uuid is not None:
                raise NoRoom(f"instance {inst['name']} is {inst['status']}")
            continue
        usable.append(capacity.size(inst))
        short = capacity.shortfall(usable[-1], usage.get(inst["uuid"], capacity.empty_usage()), want)
        if short is None:
            chosen = inst
            break
        if instance_uuid is not None:
            too_large = capacity.never_fits(usable, want, f"instance {inst['name']}")
            if too_large is not None:
                raise too_large
            raise NoRoom(f"instance {inst['name']} is full ({short})")
    if chosen is None:
        too_large = capacity.never_fits(usable, want, "any active instance") if usable else None
        if too_large is not None:
            raise too_large
        raise NoRoom("no active instance has room for another container")
    row = dict(values)
    row.update(instance_uuid=chosen["uuid"], created_at=now, last_seq=0, log_cursor="")
    try:
        with conn.begin_nested():
            conn.execute(containers.insert().values(**row))
    except IntegrityError:
        # A concurrent create took the name between the check and here.
        raise NameInUse(values["name"]) from None
    return row


def thd_get(conn, ident, project_id):
    condition = (containers.c.uuid == ident) | (containers.c.name == ident)
    if 3 <= len(ident) <= 64 and all(c in "0123456789abcdef" for c in ident):
        # Docker ids, full or a prefix, as the docker CLI accepts them.
        condition = condition | containers.c.engine_id.startswith(ident, autoescape=True)
    query = select(containers).where(condition)
    if project_id is not None:
        query = query.where(containers.c.project_id == project_id)
    rows = [row_of(r) for r in conn.execute(query.limit(64))]
    # Exact matches first: uuid, engine id, name; then a unique prefix.
    for key in ("uuid", "engine_id", "name"):
        for row in rows:
            if row[key] == ident:
                return row
    return rows[0] if len(rows) == 1 else None


def thd_list(conn, project_id, instance_uuid):
    query = select(containers).order_by(containers.c.created_at, containers.c.uuid)
    if project_id is not None:
        query = query.where(containers.c.project_id == project_id)
    if instance_uuid is not None:
        query = query.where(containers.c.instance_uuid == instance_uuid)
    return [row_of(r) for r in conn.execute(query)]


def thd_update(conn, container_uuid, expect_status, values):
    condition = containers.c.uuid == container_uuid
    if expect_status is not None:
        if isinstance(expect_status, str):
            expect_status = (expect_status,)
        condition = and_(condition, containers.c.status.in_(expect_status))
    result = conn.execute(containers.update().where(condition).values(**values))
    if result.rowcount == 0:
        return None
    return _get(conn, container_uuid)


def thd_update_resources(conn, container_uuid, host_update, memory, cpu, defaults):
    current = row_of(conn.execute(_locked(conn, select(containers).where(containers.c.uuid == container_uuid))).first())
    if current is None:
        return None
    config = dict(current["docker_config"] or {})
    config["HostConfig"] = dict(config.get("HostConfig") or {}, **host_update)
    config.setdefault("Config", {})
    memory = current["memory"] if memory is None else memory
    cpu = current["cpu"] if cpu is None else cpu
    quotas.thd_check_resize(conn, current["project_id"], current, memory, cpu, defaults)
    conn.execute(containers.update().where(containers.c.uuid == container_uuid).values(
        memory=memory, cpu=cpu, docker_config=config))
    return current, _get(conn, container_uuid)


def thd_restore_resources(conn, container_uuid, before, after):
    condition = containers.c.uuid == container_uuid
    current = row_of(conn.execute(_locked(conn, select(containers).where(condition))).first())
    if current is None:
        return False
    if any(current[k] != after[k] for k in ("docker_config", "memory", "cpu")):
        return False
    conn.execute(containers.update().where(condition).values(
        docker_config=before["docker_config"], memory=before["memory"], cpu=before["cpu"]))
    return True


def thd_rename(conn, container_uuid, name):
    current = _get(conn, container_uuid)
    if current is None:
        return None
    if current["name"] == name:
        return current
    if conn.execute(
        select(containers.c.uuid).where(containers.c.project_id == current["project_id"], containers.c.name == name)
    ).first():
        raise NameInUse(name)
    try:
        with conn.begin_nested():
            conn.execute(containers.update().where(containers.c.uuid == container_uuid).values(name=name))
    except IntegrityError:
        raise NameInUse(name) from None
    return _get(conn, container_uuid)


def thd_delete(conn, container_uuid):
    # Its output rows (``--output-store db``) go in the same transaction.
    conn.execute(output_chunks.delete().where(output_chunks.c.container_uuid == container_uuid))
    conn.execute(containers.delete().where(containers.c.uuid == container_uuid))
