"""
Notification subscriptions (webhooks), as units of work for ``Store``
(``thd_*(conn, ...)``, plain data in and out).  The count per project is
checked in the transaction that inserts, so a project stays within its
limit: on SQLite the store's single thread serialises the units of work; on
PostgreSQL concurrent creates of one project may at worst both pass, which
the limit (a bound on memory, not a bill) tolerates.
"""

import uuid as uuidlib

from sqlalchemy import func, select

from csvc.store.models import subscriptions
from csvc.store.quotas import QuotaExceeded


def _row(row):
    return dict(row._mapping) if row is not None else None


def thd_create(conn, project_id, url, event_types, created_at, limit):
    in_use = conn.execute(
        select(func.count()).select_from(subscriptions).where(subscriptions.c.project_id == project_id)
    ).scalar()
    if in_use >= limit:
        raise QuotaExceeded("subscriptions", limit, in_use)
    values = dict(
        uuid=str(uuidlib.uuid4()),
        project_id=project_id,
        url=url,
        event_types=list(event_types),
        created_at=created_at,
    )
    conn.execute(subscriptions.insert().values(**values))
    return values


def thd_list(conn, project_id=None):
    query = select(subscriptions).order_by(subscriptions.c.created_at, subscriptions.c.uuid)
    if project_id is not None:
        query = query.where(subscriptions.c.project_id == project_id)
    return [_row(r) for r in conn.execute(query)]


def thd_delete(conn, subscription_uuid, project_id=None):
    """
    Delete a subscription (within ``project_id`` unless None): the row as it
    was, or None when there is no such subscription there.
    """
    query = select(subscriptions).where(subscriptions.c.uuid == subscription_uuid)
    if project_id is not None:
        query = query.where(subscriptions.c.project_id == project_id)
    row = _row(conn.execute(query).first())
    if row is not None:
        conn.execute(subscriptions.delete().where(subscriptions.c.uuid == subscription_uuid))
    return row
