"""
Bounded output: the retention policy and the project's output quota, as a
unit of work run in the transaction that stores output (rows) or commits
where it ends (files).

Two limits, both counted in bytes of output kept:

- each container keeps at most ``retention`` bytes (``--output-retention-mib``);
- a project's containers keep at most its ``output`` quota together
  (``--quota-output``, or its quotas row).

Past either, the *oldest* output goes, whole chunks at a time, and the
container's row remembers it: ``output_first`` (the first chunk still kept),
``output_dropped`` (bytes dropped so far), ``output_bytes`` (bytes kept).
Logs read from before ``output_first`` start with a marker saying how much
was dropped (csvc/api/logs.py).

Why the oldest, even for the project's quota, rather than refusing or
truncating new output: a container's newest output is what its users look
at (the error it just printed), and a project at its quota keeps working
instead of going blind until someone deletes containers.  Who pays for the
project's quota: the project's container keeping the most output, then the
next (a flooding container is soon the biggest and sheds its own history; a
new container in a full project keeps its output, which the oldest, biggest
history makes room for).  The agent's window is unaffected: every chunk is acknowledged once
stored, dropped later or not, so nothing is replayed for ever and the
control plane holds no more than it did.

No scan of output on the way: the counters are kept in the containers'
rows; only the chunks actually dropped are listed (their sizes, in pages).
The journal commits one batch at a time, so two of these never race for the
same container.
"""

from sqlalchemy import bindparam, func, select

from csvc.store.models import containers, output_chunks
from csvc.store.quotas import MIB, UNLIMITED, thd_limits

#: Chunk sizes listed at once when looking for what to drop.
PAGE = 256


class OutputCounters:
    """
    One container's counters, as the transaction sees them.
    """

    __slots__ = ("uuid", "project_id", "last_seq", "first", "kept", "dropped", "changed", "start")

    def __init__(self, uuid, project_id, last_seq, first, kept, dropped):
        self.uuid = uuid
        self.project_id = project_id
        self.last_seq = last_seq
        self.first = first
        self.kept = kept
        self.dropped = dropped
        self.changed = False
        #: ``first`` as loaded
        self.start = first


def _load(conn, condition, biggest_first=False):
    query = select(
        containers.c.uuid, containers.c.project_id, containers.c.last_seq, containers.c.output_first,
        containers.c.output_bytes, containers.c.output_dropped,
    ).where(condition)
    if biggest_first:
        query = query.order_by(containers.c.output_bytes.desc(), containers.c.uuid).limit(1)
    return [OutputCounters(*row) for row in conn.execute(query)]


def _drop(conn, counters, wanted, chunks):
    """
    Drop the oldest chunks of a container, at least ``wanted`` bytes of them
    (fewer when it keeps fewer); ``chunks.sizes(conn, uuid, first, last,
    limit)`` lists ``(seq, size)`` from ``first``.  Returns the bytes dropped.
    """
    freed, seq = 0, counters.first
    while freed < wanted and seq <= counters.last_seq:
        page = chunks.sizes(conn, counters.uuid, seq, counters.last_seq, PAGE)
        if not page:
            break
        for chunk_seq, size in page:
            if freed >= wanted:
                break
            freed += size
            seq = chunk_seq + 1
    if seq == counters.first:
        if counters.kept and not chunks.sizes(conn, counters.uuid, seq, counters.last_seq, 1):
            # Counted but not there (a count from before a crash): nothing
            # is kept, and nothing more can be dropped here.
            freed = counters.kept
            counters.kept = 0
            counters.changed = True
        return freed
    chunks.drop(conn, counters.uuid, seq)
    counters.first = seq
    counters.kept = max(0, counters.kept - freed)
    counters.dropped += freed
    counters.changed = True
    return freed


def thd_enforce(conn, touched, chunks, retention, defaults):
    """
    Update the counters of the containers ``touched`` (uuid -> bytes added
    by this transaction, or None to count what they keep afresh with
    ``chunks.kept(conn, uuid, first, last)``), then drop output past the
    retention and the projects' quotas.  Call it after the transaction
    stored the chunks and moved ``last_seq``.  Fires with ``{uuid: first}``
    of every container whose oldest output went.
    """
    if not touched:
        return {}
    loaded = {c.uuid: c for c in _load(conn, containers.c.uuid.in_(list(touched)))}
    order = [loaded[u] for u in touched if u in loaded]
    for counters in order:
        added = touched[counters.uuid]
        if added is None:
            kept = chunks.kept(conn, counters.uuid, counters.first, counters.last_seq)
        else:
            kept = counters.kept + added
        if kept != counters.kept:
            counters.kept, counters.changed = kept, True
        if retention is not None and counters.kept > retention:
            _drop(conn, counters, counters.kept - retention, chunks)
    projects = []
    for counters in order:
        if counters.project_id not in projects:
            projects.append(counters.project_id)
    for project_id in projects:
        limit = thd_limits(conn, project_id, defaults)["output"]
        if limit == UNLIMITED:
            continue
        mine = [c for c in order if c.project_id == project_id]
        others = conn.execute(
            select(func.coalesce(func.sum(containers.c.output_bytes), 0)).where(
                containers.c.project_id == project_id, containers.c.uuid.notin_([c.uuid for c in mine])
            )
        ).scalar()
        excess = int(others) + sum(c.kept for c in mine) - limit * MIB
        # The project's container keeping the most pays, then the next.
        while excess > 0:
            outside = _load(
                conn,
                (containers.c.project_id == project_id)
                & containers.c.uuid.notin_(list(loaded))
                & (containers.c.output_bytes > 0),
                biggest_first=True,
            )
            candidates = [c for c in mine if c.kept > 0] + outside
            if not candidates:
                break
            biggest = max(candidates, key=lambda c: c.kept)
            if biggest not in mine:
                loaded[biggest.uuid] = biggest
                order.append(biggest)
                mine.append(biggest)
            freed = _drop(conn, biggest, excess, chunks)
            if freed <= 0:
                break
            excess -= freed
    changed = [c for c in order if c.changed]
    if changed:
        conn.execute(
            containers.update()
            .where(containers.c.uuid == bindparam("u"))
            .values(output_first=bindparam("first"), output_bytes=bindparam("kept"),
                    output_dropped=bindparam("dropped")),
            [dict(u=c.uuid, first=c.first, kept=c.kept, dropped=c.dropped) for c in changed],
        )
    return {c.uuid: c.first for c in changed if c.first != c.start}


class StoredRows:
    """
    Output kept as rows of ``output_chunks`` (``--output-store db``): dropped
    in the same transaction.
    """

    def sizes(self, conn, uuid, first, last, limit):
        return [
            (seq, int(size)) for seq, size in conn.execute(
                select(output_chunks.c.seq, func.length(output_chunks.c.data))
                .where(output_chunks.c.container_uuid == uuid, output_chunks.c.seq >= first,
                       output_chunks.c.seq <= last)
                .order_by(output_chunks.c.seq)
                .limit(limit)
            )
        ]

    def kept(self, conn, uuid, first, last):
        return int(conn.execute(
            select(func.coalesce(func.sum(func.length(output_chunks.c.data)), 0))
            .where(output_chunks.c.container_uuid == uuid, output_chunks.c.seq >= first,
                   output_chunks.c.seq <= last)
        ).scalar())

    def drop(self, conn, uuid, first):
        conn.execute(output_chunks.delete().where(output_chunks.c.container_uuid == uuid, output_chunks.c.seq < first))
