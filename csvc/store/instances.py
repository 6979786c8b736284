"""
Instances (the machines agents run on), as units of work for ``Store``
(``thd_*(conn, ...)``, plain data in and out): their rows, enrollment tokens
and agent certificates, their life (pending, active, down, draining,
revoked, deleted) and what they hold.  ``now`` is a naive UTC datetime
(``Store.now``).

``revoked`` and ``deleted`` are final: no update of this module overwrites
them.
"""

import uuid as uuidlib

from sqlalchemy import and_, func, or_, select

from csvc.store import capacity
from csvc.store.models import containers, instances
from csvc.store.tokens import hash_secret, new_secret, row_of


def thd_create(conn, name, provider, capacity_, shared, project_id, memory, cpus, now):
    """
    A new instance row, status ``pending``: ``(row, enroll_token)``.
    """
    token = new_secret()
    values = dict(
        uuid=str(uuidlib.uuid4()),
        name=name,
        provider=provider,
        status="pending",
        capacity=capacity_,
        enroll_token_hash=hash_secret(token),
        shared=shared,
        created_at=now,
        project_id=project_id,
        memory=memory,
        cpus=cpus,
    )
    conn.execute(instances.insert().values(**values))
    return values, token


def thd_set_enroll_token(conn, instance_uuid):
    token = new_secret()
    conn.execute(
        instances.update()
        .where(instances.c.uuid == instance_uuid, instances.c.status != "revoked")
        .values(enroll_token_hash=hash_secret(token), enrolled_at=None)
    )
    return token


def thd_consume_enroll_token(conn, instance_uuid, token_hash, cert_sha256, now):
    result = conn.execute(
        instances.update()
        .where(
            instances.c.uuid == instance_uuid,
            instances.c.enroll_token_hash == token_hash,
            instances.c.enrolled_at.is_(None),
            instances.c.status.notin_(("revoked", "deleted")),
        )
        .values(enrolled_at=now, agent_cert_sha256=cert_sha256)
    )
    return result.rowcount == 1


def thd_replace_agent_cert(conn, instance_uuid, old_sha256, new_sha256):
    result = conn.execute(
        instances.update()
        .where(
            instances.c.uuid == instance_uuid,
            instances.c.agent_cert_sha256 == old_sha256,
            instances.c.status.notin_(("revoked", "deleted")),
        )
        .values(agent_cert_sha256=new_sha256)
    )
    return result.rowcount == 1


def thd_by_token(conn, token_hash):
    return row_of(conn.execute(select(instances).where(instances.c.enroll_token_hash == token_hash)).first())


def thd_update(conn, instance_uuid, values):
    """
    True when the instance was updated; a revoked instance never is (its
    revocation is final: ``thd_revoke``).
    """
    result = conn.execute(
        instances.update()
        # A removed (deleted) instance is as final as a revoked one.
        .where(instances.c.uuid == instance_uuid, instances.c.status.notin_(("revoked", "deleted")))
        .values(**values)
    )
    return result.rowcount == 1


def thd_list(conn, provider):
    """
    The instances not deleted, each with ``containers`` (how many it
    holds) and ``usage`` (``csvc.store.capacity.thd_usage``).
    """
    query = (
        select(instances)
        .where(instances.c.status != "deleted")
        .order_by(instances.c.created_at, instances.c.uuid)
    )
    if provider is not None:
        query = query.where(instances.c.provider == provider)
    rows = [row_of(r) for r in conn.execute(query)]
    usage = capacity.thd_usage(conn)
    for row in rows:
        row["usage"] = usage.get(row["uuid"], capacity.empty_usage())
        row["containers"] = row["usage"]["containers"]
    return rows


def thd_get(conn, ident):
    """
    An instance by uuid or name, or None.
    """
    return row_of(
        conn.execute(
            select(instances)
            .where((instances.c.uuid == ident) | (instances.c.name == ident))
            # A removed instance's name may be taken again: the living first.
            .order_by(instances.c.status == "deleted", instances.c.created_at, instances.c.uuid)
        ).first()
    )


def thd_register(conn, name, capacity_, now):
    """
    An operator's host (provider ``static``), enrolled by hand: ``(row,
    enroll_token)``; ValueError when the name is taken.
    """
    if thd_get(conn, name) is not None:
        raise ValueError(f"an instance named {name!r} already exists")
    return thd_create(conn, name, "static", capacity_, True, None, None, None, now)


def thd_register_owned(conn, name, capacity_, shared, project_id, now):
    row, token = thd_register(conn, name, capacity_, now)
    conn.execute(
        instances.update().where(instances.c.uuid == row["uuid"]).values(shared=shared, project_id=project_id)
    )
    return thd_get(conn, row["uuid"]), token


def thd_revoke(conn, ident):
    """
    Revoke an instance (by uuid or name): its enrollment token stops
    working (the stored hash becomes that of a secret nobody knows) and its
    status becomes ``revoked``, which nothing else overwrites.  A connected
    agent is dropped at its next heartbeat.  Returns the row as it was, or
    None when there is no such instance.
    """
    row = thd_get(conn, ident)
    if row is None:
        return None
    conn.execute(
        instances.update()
        .where(instances.c.uuid == row["uuid"])
        .values(enroll_token_hash=hash_secret(new_secret()), status="revoked", agent_cert_sha256=None)
    )
    return row


def thd_mark_deleted(conn, instance_uuid):
    conn.execute(
        instances.update()
        .where(instances.c.uuid == instance_uuid)
        .values(status="deleted", enroll_token_hash=hash_secret(new_secret()), agent_cert_sha256=None)
    )


def thd_stale(conn, cutoff):
    live = (
        select(containers.c.instance_uuid, func.count().label("n"))
        .where(containers.c.status.in_(("creating", "created", "running")))
        .group_by(containers.c.instance_uuid)
        .subquery()
    )
    query = (
        select(instances, func.coalesce(live.c.n, 0).label("live"))
        .select_from(instances.outerjoin(live, live.c.instance_uuid == instances.c.uuid))
        .where(
            instances.c.status.in_(("active", "down", "draining")),
            or_(
                instances.c.last_seen_at < cutoff,
                and_(instances.c.last_seen_at.is_(None), instances.c.created_at < cutoff),
            ),
        )
        .order_by(instances.c.created_at, instances.c.uuid)
    )
    return [row_of(r) for r in conn.execute(query)]


def thd_mark_down(conn, instance_uuid, reason, from_states, to_state):
    conn.execute(
        instances.update()
        .where(instances.c.uuid == instance_uuid, instances.c.status.in_(("active", "pending")))
        .values(status="down")
    )
    moved = (containers.c.instance_uuid == instance_uuid) & containers.c.status.in_(from_states)
    errored = [r[0] for r in conn.execute(select(containers.c.uuid).where(moved))]
    if errored:
        conn.execute(containers.update().where(moved).values(status=to_state, status_reason=reason))
    return errored
