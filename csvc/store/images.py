"""
Which project pulled which image onto which instance, as units of work for
``Store`` (``thd_*(conn, ...)``, plain data in and out); what they mean is
``csvc.compute.images``'s business.

A pull is written twice: before it reaches the engine, as a claim on the
reference with the id ``""`` (the image the pull brings in is nobody's to
see until the pull is over), and after, as a claim on the id it brought.
"""

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from csvc.store.models import project_images

#: the ``image_id`` of a pull still running
PULLING = ""

#: the most image ids one ``thd_claims`` asks about (more are asked in turns)
_BATCH = 500


def _claim(conn, project_id, instance_uuid, reference, image_id, now):
    key = (
        (project_images.c.project_id == project_id)
        & (project_images.c.instance_uuid == instance_uuid)
        & (project_images.c.reference == reference)
        & (project_images.c.image_id == image_id)
    )
    if conn.execute(select(project_images.c.project_id).where(key)).first() is None:
        try:
            with conn.begin_nested():
                conn.execute(project_images.insert().values(
                    project_id=project_id, instance_uuid=instance_uuid, reference=reference,
                    image_id=image_id, pulled_at=now,
                ))
            return
        except IntegrityError:
            # The same pull recorded at the same time by another unit.
            pass
    conn.execute(project_images.update().where(key).values(pulled_at=now))


def thd_pull_started(conn, project_id, instance_uuid, reference, now):
    _claim(conn, project_id, instance_uuid, reference, PULLING, now)


def thd_pull_ended(conn, project_id, instance_uuid, reference, image_id, now):
    """
    The pull is over: its claim on the reference goes, and the project's
    claim on ``image_id`` is written (none when ``image_id`` is None: the
    pull failed, or brought nothing that was not everyone's already).
    """
    conn.execute(project_images.delete().where(
        (project_images.c.project_id == project_id)
        & (project_images.c.instance_uuid == instance_uuid)
        & (project_images.c.reference == reference)
        & (project_images.c.image_id == PULLING)
    ))
    if image_id:
        _claim(conn, project_id, instance_uuid, reference, image_id, now)


def thd_claims(conn, image_ids):
    """
    Every project's claims on the images ``image_ids``, and the pulls
    running: ``[{"project_id", "reference", "image_id"}]``.
    """
    ids = sorted(set(image_ids))
    columns = (project_images.c.project_id, project_images.c.reference, project_images.c.image_id)
    seen, rows = set(), []
    for start in range(0, max(len(ids), 1), _BATCH):
        batch = ids[start:start + _BATCH]
        query = select(*columns).distinct().where(
            or_(project_images.c.image_id == PULLING, project_images.c.image_id.in_(batch))
        )
        for row in conn.execute(query):
            claim = (row.project_id, row.reference, row.image_id)
            if claim not in seen:
                seen.add(claim)
                rows.append({"project_id": row.project_id, "reference": row.reference, "image_id": row.image_id})
    return rows
