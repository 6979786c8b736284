"""
Where containers' output is kept, behind one interface (``IOutputStore``),
with two implementations:

- ``FilesOutput`` (``--output-store files``, the default): the bytes in
  append-only files (``csvc.store.outputfiles``), the positions
  (``containers.last_seq`` and ``log_cursor``) committed to the database
  after the bytes are written, coalesced;
- ``RowsOutput`` (``--output-store db``): rows of ``output_chunks``, written
  with the positions in one transaction.

Both keep to the retention (``csvc.store.retention``): rows are dropped in
the transaction that stores them, files are punched once the transaction
that moves their ``output_first`` is committed.  Each runs its units of
work on the store's thread pool through the ``run`` it is given
(``Store._run``).
"""

from dataclasses import dataclass

from sqlalchemy import bindparam, func, select
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface, implementer

from csvc.store import retention as retention_units
from csvc.store.models import containers, output_chunks
from csvc.store.outputfiles import StoredFiles


@dataclass(frozen=True)
class Appended:
    """
    The two steps of an ``IOutputStore.append``: ``written`` fires once the
    chunks are persisted (they may be acknowledged to the agent),
    ``committed`` once their containers' ``last_seq`` and ``log_cursor`` are
    committed too (where an agent resumes, what an exit is recorded after).
    Both fail with the write's failure.
    """

    written: Deferred
    committed: Deferred

    @classmethod
    def together(cls, d):
        """
        Both steps in one: ``d`` writes the chunks and their positions.
        """
        committed = Deferred()

        def tell(result):
            committed.callback(None) if not isinstance(result, Failure) else committed.errback(result)
            return result

        d.addBoth(tell)
        return cls(d, committed)


class IOutputStore(Interface):
    """
    Containers' output, kept in sequence per container.
    """

    retention = Attribute("Bytes of output each container keeps (None: no limit), its oldest dropped past it.")

    def prepare():
        """
        At start, before the reactor runs (blocking): make what is stored
        ready to be appended to and read.
        """

    def start():
        """
        The store started: writes may begin.
        """

    def flush(timeout):
        """
        A Deferred that fires once nothing written waits to be committed,
        or after ``timeout`` seconds (logged); at the store's stop.
        """

    def stop():
        """
        The store stopped: let go of threads and files.
        """

    def append(chunks):
        """
        Persist ``chunks``, a list of ``(uuid, seq, stream, data, cursor)`` in
        seq order per container, and move each container's ``last_seq`` and
        ``log_cursor`` to its last chunk: an ``Appended``, whose ``written``
        fires once the chunks are persisted and ``committed`` once their
        positions are.
        """

    def hasten():
        """
        Someone waits for a position to be committed: commit what is
        written now rather than at the next interval.
        """

    def read(container_uuid, after_seq, limit, before_seq, descending, with_time):
        """
        Up to ``limit`` chunks ``(seq, stream, data)`` (``with_time``: and
        when each arrived) with ``after_seq < seq`` (and ``seq <
        before_seq``), in seq order or reverse order.
        """

    def deleted(container_uuid):
        """
        The container's row is gone (its rows of output with it, in the same
        transaction): a Deferred of its output's removal.
        """


def thd_set_positions(conn, positions):
    """
    Move each container's ``last_seq`` and ``log_cursor`` forward
    (``positions``: uuid -> (seq, cursor)); never back.
    """
    conn.execute(
        containers.update()
        .where(containers.c.uuid == bindparam("u"), containers.c.last_seq < bindparam("seq"))
        .values(last_seq=bindparam("seq"), log_cursor=bindparam("cursor")),
        [dict(u=u, seq=seq, cursor=cursor) for u, (seq, cursor) in positions.items()],
    )


def thd_output_start(conn, container_uuid):
    """
    ``(first, dropped)``: the first chunk the container keeps, and how many
    bytes before it the retention dropped; None when it is gone.
    """
    row = conn.execute(
        select(containers.c.output_first, containers.c.output_dropped).where(containers.c.uuid == container_uuid)
    ).first()
    return (row[0], row[1]) if row is not None else None


def thd_read_rows(conn, container_uuid, after_seq, limit, before_seq, descending, with_time):
    columns = [output_chunks.c.seq, output_chunks.c.stream, output_chunks.c.data]
    if with_time:
        columns.append(output_chunks.c.at)
    query = select(*columns).where(output_chunks.c.container_uuid == container_uuid, output_chunks.c.seq > after_seq)
    if before_seq is not None:
        query = query.where(output_chunks.c.seq < before_seq)
    order = output_chunks.c.seq.desc() if descending else output_chunks.c.seq
    return [tuple(r) for r in conn.execute(query.order_by(order).limit(limit))]


@implementer(IOutputStore)
class RowsOutput:
    """
    Output as rows of ``output_chunks``: the chunks, the positions and the
    retention in one transaction.
    """

    def __init__(self, run, clock, quota_defaults, retention=None):
        self._run = run
        self._clock = clock
        self._quota_defaults = quota_defaults
        self.retention = retention
        self._stored = retention_units.StoredRows()

    def prepare(self):
        pass

    def start(self):
        pass

    def flush(self, timeout):
        return succeed(None)

    def stop(self):
        pass

    def append(self, chunks):
        return Appended.together(self._run(self.thd_append, chunks))

    def thd_append(self, conn, chunks):
        at = self._clock.seconds()
        conn.execute(
            output_chunks.insert(),
            [dict(container_uuid=u, seq=seq, stream=stream, data=data, at=at) for (u, seq, stream, data, _c) in chunks],
        )
        last, added = {}, {}
        for u, seq, _stream, data, cursor in chunks:
            last[u] = (seq, cursor)
            added[u] = added.get(u, 0) + len(data)
        thd_set_positions(conn, last)
        retention_units.thd_enforce(conn, added, self._stored, self.retention, self._quota_defaults)

    def hasten(self):
        pass

    def read(self, container_uuid, after_seq, limit, before_seq, descending, with_time):
        return self._run(thd_read_rows, container_uuid, after_seq, limit, before_seq, descending, with_time)

    def deleted(self, container_uuid):
        return succeed(None)


@implementer(IOutputStore)
class FilesOutput:
    """
    Output in files (``files``, an ``OutputFiles``), positions in the
    database.

    ``append``'s ``written`` fires once the bytes are written (the agent's
    window moves on), its ``committed`` once their positions are committed
    after, coalesced (at most every ``positions_interval`` unless someone
    ``hasten``s), one commit in flight.  That loses nothing: after a crash
    the start cuts the files back to the committed positions and the agent
    reads the rest again from the engine's log, from the committed cursor.
    """

    log = Logger()

    #: Seconds between two commits of output positions (unless someone
    #: waits for one: an exit to record, an agent registering).
    positions_interval = 0.1

    def __init__(self, files, engine, run, clock, quota_defaults, retention=None):
        self.files = files
        self._engine = engine
        self._run = run
        self._clock = clock
        self._quota_defaults = quota_defaults
        self.retention = retention
        self._stored = StoredFiles(files)
        self._running = False
        # Output positions written to files and waiting for their commit:
        # uuid -> (seq, cursor), and the appends' ``committed`` they tell;
        # one commit in flight at a time.
        self._positions = {}
        self._told = []
        self._positions_inflight = {}
        self._idle_waiters = []  # nothing written waits for its commit
        self._hurried = False
        self._positions_retry = None
        self._positions_last = 0.0

    def start(self):
        self._running = True
        self.files.start()

    def flush(self, timeout):
        # Output written but whose position is not committed yet: commit it
        # now (a clean stop then needs no replay at the next start), but do
        # not wait for ever on a database that is gone.
        waiting = set(self._positions) | set(self._positions_inflight)
        if not (waiting and self._running):
            return succeed(None)
        d = Deferred()
        self._idle_waiters.append(d)
        self.hasten()
        d.addTimeout(timeout, self._clock)
        d.addErrback(lambda f: self.log.failure(
            "output positions of {n} containers not committed at stop (the agents send the rest again)",
            f, n=len(waiting)))
        return d

    def stop(self):
        self._running = False
        if self._positions_retry is not None and self._positions_retry.active():
            self._positions_retry.cancel()
        self.files.stop()

    def append(self, chunks):
        committed = Deferred()

        def written(_):
            for u, seq, _stream, _data, cursor in chunks:
                self._positions[u] = (seq, cursor)
            self._told.append(committed)
            self._commit_positions()

        def failed(failure):
            committed.errback(failure)
            return failure

        return Appended(self.files.append(chunks).addCallbacks(written, failed), committed)

    def hasten(self):
        if self._positions:
            self._hurried = True
            self._commit_positions(now=True)

    def _commit_positions(self, now=False):
        if self._positions_inflight or not self._positions or not self._running:
            return
        now = now or self._hurried
        if self._positions_retry is not None and self._positions_retry.active():
            if not now:
                return
            self._positions_retry.cancel()
        wait = self._positions_last + self.positions_interval - self._clock.seconds()
        if wait > 0 and not now:
            # Each commit costs the store thread (and the GIL) about as much
            # whatever it carries: coalesce, unless someone waits for it.
            self._positions_retry = self._clock.callLater(wait, self._commit_positions)
            return
        self._positions_last = self._clock.seconds()
        self._hurried = False
        batch, self._positions = self._positions, {}
        told, self._told = self._told, []
        self._positions_inflight = batch

        def committed(moved):
            self._positions_inflight = {}
            self._dropped(moved)
            for d in told:
                d.callback(None)
            if not self._positions:
                waiters, self._idle_waiters = self._idle_waiters, []
                for d in waiters:
                    d.callback(None)
            self._commit_positions()

        def failed(failure):
            self.log.failure("committing the output positions of {n} containers failed", failure, n=len(batch))
            self._positions_inflight = {}
            for u, position in batch.items():
                self._positions.setdefault(u, position)
            self._told[:0] = told
            self._positions_retry = self._clock.callLater(1.0, self._commit_positions)

        self._run(self._thd_commit_positions, batch).addCallbacks(committed, failed)

    def _thd_commit_positions(self, conn, positions):
        thd_set_positions(conn, positions)
        return retention_units.thd_enforce(
            conn, {u: None for u in positions}, self._stored, self.retention, self._quota_defaults)

    def _dropped(self, moved):
        """
        The retention dropped the oldest output of ``moved`` (uuid -> first
        chunk kept), committed: punch it out of the files now.
        """
        for u, first in moved.items():
            self.files.drop_before(u, first).addErrback(
                lambda f, u=u: self.log.failure("dropping old output of {uuid} failed", f, uuid=u))

    def read(self, container_uuid, after_seq, limit, before_seq, descending, with_time):
        return self.files.read(container_uuid, after_seq, limit, before_seq, descending, with_time)

    def deleted(self, container_uuid):
        return self.files.delete(container_uuid)

    def prepare(self):
        """
        Move output stored as database rows (before output files, or with
        ``output-store = db``) into files, then line the files and the
        database's positions up (``OutputFiles.reconcile``).
        """
        with self._engine.begin() as conn:
            moved = [r[0] for r in conn.execute(select(output_chunks.c.container_uuid).distinct())]
        for u in moved:
            with self._engine.begin() as conn:
                self._move_rows(conn, u)
        with self._engine.begin() as conn:
            positions = dict(conn.execute(select(containers.c.uuid, containers.c.last_seq)).all())
            behind = self.files.reconcile(positions)
            for u, (seq, cursor) in behind.items():
                self.log.warn(
                    "output of {uuid} on disk ends at chunk {seq}, the database said {last}: "
                    "the agent will send the rest again", uuid=u, seq=seq, last=positions[u],
                )
                conn.execute(containers.update().where(containers.c.uuid == u).values(last_seq=seq, log_cursor=cursor))
        self._count()

    def _move_rows(self, conn, u):
        row = conn.execute(
            select(containers.c.last_seq, containers.c.log_cursor).where(containers.c.uuid == u)
        ).first()
        if row is not None:
            after = 0
            first = conn.execute(
                select(func.min(output_chunks.c.seq)).where(output_chunks.c.container_uuid == u)
            ).scalar()
            if first and first > 1:
                # The retention dropped the rows before it.
                self.files.skip_to(u, first)
            while True:
                batch = conn.execute(
                    select(output_chunks.c.seq, output_chunks.c.stream, output_chunks.c.data, output_chunks.c.at)
                    .where(output_chunks.c.container_uuid == u, output_chunks.c.seq > after)
                    .order_by(output_chunks.c.seq).limit(256)
                ).all()
                if not batch:
                    break
                # Rows do not keep each chunk's cursor; only the last one
                # (in the container's row) is ever used to resume.
                self.files.write_now([
                    (u, seq, stream, data, row.log_cursor if seq == row.last_seq else "", at)
                    for seq, stream, data, at in batch
                ])
                after = batch[-1][0]
        conn.execute(output_chunks.delete().where(output_chunks.c.container_uuid == u))

    def _count(self):
        """
        What each container keeps in its files, from their indexes (counted
        afresh: the files are what is there), and the holes punched again
        where a stop came between the commit of a drop and its punch.
        """
        with self._engine.begin() as conn:
            rows = conn.execute(
                select(containers.c.uuid, containers.c.last_seq, containers.c.output_first, containers.c.output_bytes)
            ).all()
            for u, last_seq, first, kept in rows:
                if first > last_seq + 1:
                    # The files lost their newest chunks (see reconcile).
                    first = last_seq + 1
                    conn.execute(containers.update().where(containers.c.uuid == u).values(output_first=first))
                counted = self.files.thd_kept(u, first, last_seq)
                if counted != kept:
                    conn.execute(containers.update().where(containers.c.uuid == u).values(output_bytes=counted))
                if first > 1:
                    self.files.known_first(u, first)
                    self.files.punch_now(u, first)
