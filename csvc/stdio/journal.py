"""
The output journal: owns every container's output on the control plane.

Chunks arrive from agents (``append``), are persisted in batches by group
commit (one transaction in flight; whatever arrives meanwhile forms the next
batch), and each chunk's Deferred fires only once its batch is committed: that
is the agent's acknowledgement.  Duplicates (seq already persisted or queued)
are acknowledged at once and not stored again.  Exits are recorded only after
every chunk they cover is stored and its position committed: the journal
keeps two marks per container, the last seq persisted and the last seq whose
position the store committed (``IOutputStore.append`` tells both), and
``reached`` waits on either.  Viewers do not get pushed data: they read
the store by seq and ``wait_for`` the journal to announce more, so a slow
viewer costs nothing but its own reads.
"""

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from csvc.wire.commands import CHUNK_SIZE, OUTPUT_WINDOW, OutputRefused


class Journal:
    log = Logger()

    #: Largest batch committed at once.
    max_batch_bytes = 4 * 1024 * 1024

    def __init__(self, store, window=OUTPUT_WINDOW):
        self._store = store
        self._window = window
        self._persisted = {}  # uuid -> last persisted seq
        self._committed = {}  # uuid -> last seq whose position is committed (<= persisted)
        self._queued = {}  # uuid -> last seq queued (>= persisted)
        self._pending = []  # [(chunk, Deferred)]
        self._pending_per_container = {}
        self._flushing = False
        self._waiters = {}  # uuid -> [Deferred]: output or state moved on
        self._state_waiters = {}  # uuid -> [Deferred]: state moved on
        self._subscribers = {}  # uuid -> set of live-tail subscribers
        self._reach_waiters = {}  # uuid -> [(seq or None, committed, Deferred)]

    def known(self, container_uuid, last_seq):
        """
        Tell the journal where a container's persisted output ends (from the
        store, when its agent registers).
        """
        for marks in (self._persisted, self._committed, self._queued):
            if marks.get(container_uuid, -1) < last_seq:
                marks[container_uuid] = last_seq
        self._check_reached(container_uuid)

    def forget(self, container_uuid):
        self._persisted.pop(container_uuid, None)
        self._committed.pop(container_uuid, None)
        self._queued.pop(container_uuid, None)
        self.state_changed(container_uuid)

    def persisted_seq(self, container_uuid):
        return self._persisted.get(container_uuid, 0)

    def queued_seq(self, container_uuid):
        """
        The newest seq the journal has (persisted or about to be).
        """
        return self._queued.get(container_uuid, 0)

    def subscribe(self, container_uuid, subscriber):
        """
        ``subscriber.live(seq, stream, data)`` is called for every new chunk
        as it arrives, before it is persisted: the live tail.  A subscriber
        that cannot keep up ignores chunks and reads them from the store.
        """
        self._subscribers.setdefault(container_uuid, set()).add(subscriber)

    def unsubscribe(self, container_uuid, subscriber):
        subscribers = self._subscribers.get(container_uuid)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[container_uuid]

    def append(self, container_uuid, seq, stream, data, cursor):
        """
        Queue one chunk; fires once it is persisted.
        """
        queued = self._queued.get(container_uuid, 0)
        if seq <= queued:
            # A replay after a reconnect: already stored or about to be.
            return succeed(None)
        if seq != queued + 1:
            raise OutputRefused(f"output of {container_uuid} jumps from seq {queued} to {seq}")
        if len(data) > CHUNK_SIZE:
            raise OutputRefused(f"chunk of {len(data)} bytes exceeds {CHUNK_SIZE}")
        if stream not in (1, 2):
            raise OutputRefused(f"unknown stream {stream}")
        waiting = self._pending_per_container.get(container_uuid, 0)
        if waiting >= self._window:
            raise OutputRefused(f"agent overran its window of {self._window} chunks")
        self._queued[container_uuid] = seq
        self._pending_per_container[container_uuid] = waiting + 1
        d = Deferred()
        self._pending.append(((container_uuid, seq, stream, data, cursor), d))
        # Viewers first: starting a flush wakes the store's thread, which
        # then competes for the GIL with the write of this chunk to them.
        for subscriber in list(self._subscribers.get(container_uuid, ())):
            subscriber.live(seq, stream, data)
        if not self._flushing:
            self._flush()
        return d

    def _flush(self):
        batch, size = [], 0
        while self._pending and (not batch or size + len(self._pending[0][0][3]) <= self.max_batch_bytes):
            item = self._pending.pop(0)
            batch.append(item)
            size += len(item[0][3])
        if not batch:
            self._flushing = False
            return
        self._flushing = True
        chunks = [chunk for chunk, _ in batch]
        appended = self._store.append_output(chunks)
        d = appended.written

        def written(_):
            for (u, seq, _s, _d, _c), waiter in batch:
                self._persisted[u] = max(self._persisted.get(u, 0), seq)
                self._release(u)
                waiter.callback(None)
            for u in {chunk[0] for chunk in chunks}:
                self._wake(u)
                self._check_reached(u)

        # Only the marks wait for the commit, not the chunks' bytes (which
        # would be held for as long as the store coalesces).
        newest = {}
        for u, seq, _s, _d, _c in chunks:
            newest[u] = max(newest.get(u, 0), seq)

        def committed(_):
            for u, seq in newest.items():
                self._committed[u] = max(self._committed.get(u, 0), seq)
                self._check_reached(u)

        # A write that failed fails both; ``failed`` below logs it once.
        appended.committed.addCallbacks(committed, lambda _: None)

        def failed(failure):
            self.log.failure("persisting {n} output chunks failed", failure, n=len(batch))
            # Chunks queued behind the failed ones must not be stored ahead of
            # them (a hole): they fail too, and the agent replays them all.
            broken = {chunk[0] for chunk in chunks}
            behind = [item for item in self._pending if item[0][0] in broken]
            self._pending = [item for item in self._pending if item[0][0] not in broken]
            for (u, _seq, _s, _d, _c), _waiter in batch + behind:
                # Let the agent replay from what is persisted.
                self._queued[u] = self._persisted.get(u, 0)
                self._release(u)
            for _chunk, waiter in batch + behind:
                waiter.errback(failure)
            for u in broken:
                self._check_reached(u)

        d.addCallbacks(written, failed)
        d.addBoth(lambda _: self._flush())

    def _release(self, container_uuid):
        n = self._pending_per_container.get(container_uuid, 1) - 1
        if n <= 0:
            self._pending_per_container.pop(container_uuid, None)
        else:
            self._pending_per_container[container_uuid] = n

    def reached(self, container_uuid, seq=None, committed=False):
        """
        Fires once the container's output up to ``seq`` (None: all the
        journal has, persisted or on its way; chunks that failed are not on
        their way any more) is persisted and, with ``committed``, its
        position committed by the store too: then the store's ``last_seq``
        and ``log_cursor`` are where an agent resumes, and an exit may be
        recorded after them.  Fires at once if it already is, or once the
        container is forgotten (deleted): nothing more of it will be
        persisted, and a waiter must not be left behind for ever.
        """
        if self._reached(container_uuid, seq, committed):
            return succeed(None)
        d = Deferred()
        self._reach_waiters.setdefault(container_uuid, []).append((seq, committed, d))
        if committed:
            self._store.hasten_output()
        return d

    def _reached(self, container_uuid, seq, committed):
        mark = (self._committed if committed else self._persisted).get(container_uuid, 0)
        return mark >= (self._queued.get(container_uuid, 0) if seq is None else seq)

    def _check_reached(self, container_uuid, forgotten=False):
        waiting = self._reach_waiters.pop(container_uuid, None)
        if not waiting:
            return
        fire = [w for w in waiting if forgotten or self._reached(container_uuid, w[0], w[1])]
        left = [w for w in waiting if w not in fire]
        if left:
            self._reach_waiters[container_uuid] = left
            if any(committed for _seq, committed, _d in left):
                self._store.hasten_output()
        for _seq, _committed, d in fire:
            d.callback(None)

    def wait_for(self, container_uuid):
        """
        Fires the next time the container's output or state moves on.
        """
        d = Deferred()
        self._waiters.setdefault(container_uuid, []).append(d)
        return d

    def wait_state(self, container_uuid):
        """
        Fires the next time the container's state moves on.
        """
        d = Deferred()
        self._state_waiters.setdefault(container_uuid, []).append(d)
        return d

    def cancel_wait(self, container_uuid, d):
        """
        Drop a waiter that is no longer wanted.
        """
        for table in (self._waiters, self._state_waiters):
            waiting = table.get(container_uuid)
            if waiting and d in waiting:
                waiting.remove(d)
                if not waiting:
                    del table[container_uuid]

    def _wake(self, container_uuid):
        for d in self._waiters.pop(container_uuid, []):
            d.callback(None)

    def state_changed(self, container_uuid):
        """
        The container's state moved on (started, exited, deleted): wake its
        viewers and waiters.
        """
        self._wake(container_uuid)
        self._check_reached(container_uuid, forgotten=container_uuid not in self._queued)
        for d in self._state_waiters.pop(container_uuid, []):
            d.callback(None)
