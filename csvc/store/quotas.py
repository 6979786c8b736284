"""
Per-project quotas: the limits (a ``quotas`` row over the service's
defaults), what a project uses, and the check a placement makes inside its
own transaction.

These are units of work for ``Store`` (``thd_*(conn, ...)``, plain data in
and out).  The check is atomic with the insert it guards: on SQLite the
store's single thread serialises every unit of work; on PostgreSQL the
project's ``quotas`` row (inserted first when missing) is locked ``FOR
UPDATE`` for the rest of the transaction, so concurrent placements of one
project take turns while other projects go on.
"""

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from csvc.store.models import containers, quotas

#: The resources a quota limits, in the order the API shows them.
RESOURCES = ("containers", "memory", "cpu", "attach_sessions", "networks", "output")

#: Unlimited.
UNLIMITED = -1

#: The service's defaults unless configured otherwise (memory in MiB).
DEFAULT_LIMITS = {"containers": 100, "memory": 65536, "cpu": 64, "attach_sessions": 50, "networks": 8,
                  "output": 10240}

#: Bytes in a MiB (memory and output limits are MiB).
MIB = 1024 * 1024


class QuotaExceeded(Exception):
    """
    A project would go beyond one of its limits; the message names the
    resource, the limit and what is in use.
    """

    def __init__(self, resource, limit, in_use, requested=1):
        self.resource = resource
        self.limit = limit
        self.in_use = in_use
        self.requested = requested
        super().__init__(
            f"quota exceeded for {resource}: limit {_number(limit)}, in use {_number(in_use)}, "
            f"requested {_number(requested)}"
        )


def _number(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def effective(row, defaults):
    """
    The limits of a project: its row's values, the defaults where NULL.
    """
    row = row or {}
    return {r: row.get(r) if row.get(r) is not None else defaults[r] for r in RESOURCES}


def over(limit, in_use, requested):
    return limit != UNLIMITED and in_use + requested > limit


def thd_limits(conn, project_id, defaults):
    row = conn.execute(select(quotas).where(quotas.c.project_id == project_id)).first()
    return effective(row._mapping if row is not None else None, defaults)


def thd_set_limits(conn, project_id, values, defaults):
    """
    Set some of a project's limits (None restores the default); fires with
    the limits in effect.
    """
    values = {k: values[k] for k in RESOURCES if k in values}
    _ensure_row(conn, project_id)
    if values:
        conn.execute(quotas.update().where(quotas.c.project_id == project_id).values(**values))
    return thd_limits(conn, project_id, defaults)


def thd_reset_limits(conn, project_id):
    conn.execute(quotas.delete().where(quotas.c.project_id == project_id))


def thd_usage(conn, project_id):
    """
    What the project's stored containers use: their number, the sums of
    their memory and cpu (none given counts as 0), and the MiB of output
    they keep (from the retention counters: no output is read).
    """
    count, memory, cpu, output = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(func.coalesce(containers.c.memory, 0)), 0),
            func.coalesce(func.sum(func.coalesce(containers.c.cpu, 0.0)), 0.0),
            func.coalesce(func.sum(containers.c.output_bytes), 0),
        ).where(containers.c.project_id == project_id)
    ).one()
    return {"containers": int(count), "memory": int(memory), "cpu": float(cpu),
            "output": int(output) / MIB}


def thd_limits_and_usage(conn, project_id, defaults):
    """
    ``(limits, usage)`` of a project, read in one transaction.
    """
    return thd_limits(conn, project_id, defaults), thd_usage(conn, project_id)


def _ensure_row(conn, project_id):
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(insert(quotas).values(project_id=project_id).on_conflict_do_nothing())


def thd_check_placement(conn, values, defaults):
    """
    Lock the project's quota and refuse with ``QuotaExceeded`` when the
    container ``values`` (its ``project_id``, ``memory``, ``cpu``) would take
    it beyond a limit.  Call it first in the placement's transaction.
    """
    project_id = values["project_id"]
    query = select(quotas).where(quotas.c.project_id == project_id)
    if conn.dialect.name == "postgresql":
        _ensure_row(conn, project_id)
        query = query.with_for_update()
    row = conn.execute(query).first()
    limits = effective(row._mapping if row is not None else None, defaults)
    usage = thd_usage(conn, project_id)
    wanted = {"containers": 1, "memory": values.get("memory") or 0, "cpu": values.get("cpu") or 0}
    for resource in ("containers", "memory", "cpu"):
        if wanted[resource] and over(limits[resource], usage[resource], wanted[resource]):
            raise QuotaExceeded(resource, limits[resource], usage[resource], wanted[resource])
    return limits


def thd_check_resize(conn, project_id, current, memory, cpu, defaults):
    """
    Lock the project's quota and refuse with ``QuotaExceeded`` when one of
    its containers, ``current`` (its row), going from its memory and cpu to
    ``memory`` and ``cpu`` would take the project beyond a limit.  Call it
    first in the update's transaction.
    """
    query = select(quotas).where(quotas.c.project_id == project_id)
    if conn.dialect.name == "postgresql":
        _ensure_row(conn, project_id)
        query = query.with_for_update()
    row = conn.execute(query).first()
    limits = effective(row._mapping if row is not None else None, defaults)
    usage = thd_usage(conn, project_id)
    for resource, wanted in (("memory", memory or 0), ("cpu", cpu or 0)):
        others = usage[resource] - (current.get(resource) or 0)
        if wanted > (current.get(resource) or 0) and over(limits[resource], others, wanted):
            raise QuotaExceeded(resource, limits[resource], others, wanted)
    return limits
