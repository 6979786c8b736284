"""
One client's view of a container's output: the attach session's core.

Output comes from the journal's live tail while the session keeps up.  Its
queue is bounded; a chunk that does not fit (or a gap) puts the session
*behind*: it ignores the live tail, reads the store by seq until it has
everything the journal has, and then rejoins the live tail.  So a slow client
never holds up the container or other clients, and never misses or repeats a
byte.  The session ends once the container has exited and every chunk up to
its last is delivered.

Its life is one explicit state (``SESSION_STATES``, moved only through
``session_step``): ``behind`` (reading the store, the live tail ignored),
``live`` (following the live tail), ``closed`` (stopped).  Pausing (the
client's backpressure) and the throttle's grants are not part of it.

The session is the push producer of the client's transport (its pause is
the transport's backpressure) and asks the ``Throttle`` for every message it
sends (its wait is the throttle's, counted apart).
"""

from collections import deque

from twisted.internet.defer import inlineCallbacks
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from csvc.wire.commands import CHUNK_SIZE
from csvc.wire.states import InvalidEvent, StateTable
from csvc.compute.states import LIVE as LIVE_STATUSES

#: Bytes a session queues before it reads from the store instead (eight
#: full chunks).
QUEUE_LIMIT = 8 * CHUNK_SIZE

#: Chunks read from the store at once while behind: what fits in the half
#: of the queue a read waits for.
BATCH = QUEUE_LIMIT // 2 // CHUNK_SIZE

# -- the session's states ----------------------------------------------------

BEHIND, LIVE, CLOSED = "behind", "live", "closed"

#: Every state a session may be in.
SESSION_STATES = (BEHIND, LIVE, CLOSED)

#: (state, event) -> state.  A closed session ignores every event; any other
#: pair not here is a bug (``session_step`` raises).
SESSION_TRANSITIONS = {
    # Everything the journal has is queued: the live tail from here.
    (BEHIND, "caught_up"): LIVE,
    # ... found by a store read that ran while the container was deleted.
    (LIVE, "caught_up"): LIVE,
    # The live tail skipped a chunk, or the queue has no room: the store.
    (LIVE, "missed"): BEHIND,
    # The container's end covers chunks the live tail has not shown.
    (LIVE, "exit_unseen"): BEHIND,
    # The container was deleted: nothing more to read, the end goes at once.
    (BEHIND, "deleted"): LIVE,
    (LIVE, "deleted"): LIVE,
    # The client went away, or the end was delivered.
    (BEHIND, "stop"): CLOSED,
    (LIVE, "stop"): CLOSED,
}



class InvalidSessionEvent(InvalidEvent):
    """
    An event the session's state does not take (a bug of the session).
    """


_TABLE = StateTable("session", SESSION_TRANSITIONS, absorbing=[CLOSED], invalid=InvalidSessionEvent)
SESSION_EVENTS = _TABLE.events
#: The state an event moves a session in a state to.
session_step = _TABLE.step


@implementer(IPushProducer)
class AttachSession:
    """
    ``sink`` receives ``output(stream, data)`` for every chunk of the
    selected ``streams`` and, at the end, ``finished(exit_code, reason)``.
    """

    log = Logger()

    def __init__(self, journal, store, container_uuid, streams, next_seq, sink, throttle=None,
                 queue_limit=QUEUE_LIMIT):
        self._journal = journal
        self._store = store
        self._uuid = container_uuid
        self._streams = streams
        self._next = next_seq
        self._sink = sink
        self._throttle = throttle
        # Unthrottled (the default): no request and grant per chunk.
        self._share = throttle.register(self) if throttle is not None and throttle.limited else None
        self._granted = 0
        self._wanted = 0
        self._asked = False
        self._limit = queue_limit
        self._queue = deque()
        self._queued_bytes = 0
        # Behind until the first catch-up finds the live tail.
        self._state = BEHIND
        # A catch-up (``_catch_up``) is running: one at a time.
        self._reading = False
        self._paused = False
        self._final = None
        self._state_waiter = None

    # -- life --------------------------------------------------------------

    def _move(self, event):
        self._state = session_step(self._state, event)

    def start(self):
        self._journal.subscribe(self._uuid, self)
        self._watch_state()
        self._pump()

    def stop(self):
        """
        The client went away (or the session is over).
        """
        if self._state == CLOSED:
            return
        self._move("stop")
        self._journal.unsubscribe(self._uuid, self)
        if self._share is not None:
            self._throttle.unregister(self._share)
        waiter, self._state_waiter = self._state_waiter, None
        if waiter is not None and not waiter.called:
            self._journal.cancel_wait(self._uuid, waiter)
        self._queue.clear()
        self._queued_bytes = 0

    @property
    def state(self):
        """
        One of ``SESSION_STATES``.
        """
        return self._state

    @property
    def behind(self):
        return self._state == BEHIND

    @property
    def queued_bytes(self):
        return self._queued_bytes

    # -- the live tail -----------------------------------------------------

    def live(self, seq, stream, data):
        if self._state != LIVE:
            return
        if seq < self._next:
            return
        if seq > self._next or self._queued_bytes + len(data) > self._limit:
            # Missed one, or no room: read from the store from here on.
            self._move("missed")
            self._pump()
            return
        self._enqueue(seq, stream, data)
        self._pump()

    def _enqueue(self, seq, stream, data):
        self._next = seq + 1
        if stream in self._streams and data:
            self._queue.append((stream, data))
            self._queued_bytes += len(data)

    # -- producer ----------------------------------------------------------

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        self._pump()

    def stopProducing(self):
        self.stop()

    def grant(self, n):
        self._granted += n
        self._wanted -= n
        if self._wanted <= 0:
            # Only a request granted in full may be followed by another.
            self._asked = False
        self._pump()

    # -- moving bytes ------------------------------------------------------

    def _pump(self):
        while self._queue and not self._paused and self._state != CLOSED:
            stream, data = self._queue[0]
            if self._share is not None and self._granted < len(data):
                if not self._asked:
                    # Ask for everything queued, not one chunk: a request made
                    # while the throttle hands out a tick waits for the next
                    # tick, so one chunk per request capped a session at
                    # CHUNK_SIZE per tick whatever the rate.
                    self._asked = True
                    self._wanted = max(len(data), self._queued_bytes) - self._granted
                    self._throttle.request(self._share, self._wanted)
                # A grant given at once has run _pump already (``data`` may be
                # sent): start over from the queue's head on the next grant.
                return
            if self._share is not None:
                self._granted -= len(data)
            self._queue.popleft()
            self._queued_bytes -= len(data)
            self._sink.output(stream, data)
        if self._state == BEHIND and not self._reading and self._queued_bytes < self._limit // 2:
            self._catch_up()
        elif self._state == LIVE and not self._queue and self._final is not None:
            if self._next > self._final[0]:
                self._finish()

    @inlineCallbacks
    def _catch_up(self):
        self._reading = True
        try:
            while self._state == BEHIND:
                if self._queued_bytes >= self._limit // 2:
                    return
                chunks = yield self._store.read_output(self._uuid, self._next - 1, BATCH)
                if self._state == CLOSED:
                    return
                fresh = [c for c in chunks if c[0] >= self._next]
                for seq, stream, data in fresh:
                    if seq != self._next and seq == fresh[0][0]:
                        # The retention policy dropped the chunks before
                        # (csvc/store/retention.py): on from what is kept,
                        # or this would read the same batch for ever.
                        self._next = seq
                    if seq != self._next:
                        break
                    self._enqueue(seq, stream, data)
                if fresh:
                    self._pump()
                    continue
                if self._next > self._journal.queued_seq(self._uuid):
                    # Everything the journal has is queued: live from here.
                    self._move("caught_up")
                else:
                    # The rest is on its way to the store.
                    yield self._journal.reached(self._uuid, self._next)
        finally:
            self._reading = False
        self._pump()

    # -- the end -----------------------------------------------------------

    @inlineCallbacks
    def _watch_state(self):
        while self._state != CLOSED:
            self._state_waiter = self._journal.wait_state(self._uuid)
            row = yield self._store.get_container(self._uuid)
            if self._state == CLOSED:
                return
            if row is None:
                self._final = (self._next - 1, None, "the container was deleted")
                self._move("deleted")
                self._queue.clear()
                self._queued_bytes = 0
                break
            if row["status"] not in LIVE_STATUSES:
                self._final = (row["last_seq"], row["exit_code"], row["status_reason"])
                break
            yield self._state_waiter
        waiter, self._state_waiter = self._state_waiter, None
        if waiter is not None and not waiter.called:
            self._journal.cancel_wait(self._uuid, waiter)
        if self._final is not None and self._next <= self._final[0] and self._state == LIVE:
            # The exit covers chunks the live tail has not shown: read them.
            self._move("exit_unseen")
        self._pump()

    def _finish(self):
        exit_code, reason = self._final[1], self._final[2]
        self.stop()
        self._sink.finished(exit_code, reason)
