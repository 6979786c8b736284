"""
Serving a container's persisted output over HTTP, optionally following it
until the container exits.  Reads the store by seq, one bounded batch at a
time, as a push producer: when the client stops reading, the transport pauses
this producer and no more is read.

Output the retention policy dropped (csvc/store/retention.py) is never
skipped silently: a read that starts before the first chunk kept starts with
``dropped_marker`` (on stderr's stream), once; if chunks are dropped under a
reader's feet while it follows, a marker says so where they were.
"""

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from csvc.compute.states import LIVE
from csvc.stdio.tail import TailFinder

def dropped_marker(dropped):
    """
    What a read of output the retention policy dropped starts with.
    """
    return f"[csvc: {dropped} bytes of older output dropped by the retention policy]\n".encode()


#: Where chunks went while a follower read (its position fell behind the
#: first chunk kept).
OVERTAKEN_MARKER = b"[csvc: output dropped by the retention policy while it was being read]\n"

#: chunks read from the store at once (each at most CHUNK_SIZE, 256 KiB:
#: at most 2 MiB per read)
BATCH = 8


@inlineCallbacks
def tail_position(store, container_uuid, lines, streams):
    """
    ``(after_seq, first)``: where to start serving the last ``lines`` lines of
    the selected streams.  ``first`` is ``(seq, offset)`` of a chunk to serve
    only in part, or None.
    """
    finder = TailFinder(lines)
    before = None
    while True:
        chunks = yield store.read_output(container_uuid, 0, BATCH, before_seq=before, descending=True)
        if not chunks:
            return 0, None
        for seq, stream, data in chunks:
            if stream not in streams:
                continue
            found = finder.feed(seq, data)
            if found is not None:
                return found[0] - 1, found
        before = chunks[-1][0]


@implementer(IPushProducer)
class LogStream:
    log = Logger()

    def __init__(self, request, store, journal, container_uuid, after_seq, streams, follow, first=None,
                 encode=None):
        self._request = request
        self._store = store
        self._journal = journal
        self._uuid = container_uuid
        self._after = after_seq
        self._streams = streams
        self._follow = follow
        self._first = first
        # encode(stream, data, at) -> bytes: how each chunk goes on the wire
        # (Docker frames it, filters by time); None: the bytes as they are.
        self._encode = encode
        self._paused = False
        self._running = False
        self._gone = False
        self._waiter = None
        # Whether the start was checked against what the retention dropped.
        self._checked = False
        self.done = Deferred()

    def start(self):
        self._request.registerProducer(self, True)
        self._request.notifyFinish().addErrback(self._client_gone)
        self._loop()
        return self.done

    def _client_gone(self, _):
        self._gone = True
        self._wake()

    def _wake(self):
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.called:
            self._journal.cancel_wait(self._uuid, waiter)
            waiter.callback(None)

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        self._loop()

    def stopProducing(self):
        self._client_gone(None)

    def _loop(self):
        if self._running or self.done.called:
            return
        self._running = True
        d = self._run()
        d.addErrback(self._failed)

    def _failed(self, failure):
        self.log.failure("serving output of {uuid} failed", failure, uuid=self._uuid)
        self._finish()

    def _marker(self, marker):
        if self._encode is not None:
            marker = self._encode(2, marker, None)
        if marker:
            self._request.write(marker)

    def _write(self, chunks):
        if chunks[0][0] > self._after + 1:
            self._marker(OVERTAKEN_MARKER)
        for seq, stream, data, *rest in chunks:
            self._after = seq
            if stream not in self._streams:
                continue
            if self._first is not None and self._first[0] == seq:
                data = data[self._first[1]:]
            if data and self._encode is not None:
                data = self._encode(stream, data, rest[0] if rest else None)
            if data:
                self._request.write(data)

    @inlineCallbacks
    def _run(self):
        try:
            while True:
                if self._gone:
                    self._finish()
                    return
                if self._paused:
                    return
                if not self._checked:
                    self._checked = True
                    start = yield self._store.output_start(self._uuid)
                    if start is not None and self._after < start[0] - 1:
                        if self._gone:
                            continue
                        self._marker(dropped_marker(start[1]))
                        self._after = start[0] - 1
                    continue
                chunks = yield self._store.read_output(
                    self._uuid, self._after, BATCH, with_time=self._encode is not None
                )
                if chunks and not self._gone:
                    self._write(chunks)
                    continue
                if not self._follow or self._gone:
                    self._finish()
                    return
                self._waiter = self._journal.wait_for(self._uuid)
                row = yield self._store.get_container(self._uuid)
                if row is None or row["status"] not in LIVE:
                    # The exit is recorded only after all output is stored:
                    # drain what is left, then end.
                    self._wake()
                    self._follow = False
                elif self._journal.persisted_seq(self._uuid) > self._after:
                    self._wake()
                elif self._waiter is not None:
                    yield self._waiter
                    self._waiter = None
        finally:
            self._running = False

    def _finish(self):
        if self.done.called:
            return
        if not self._gone:
            # Once the client is gone the request has no channel left to
            # unregister from.
            self._request.unregisterProducer()
            self._request.finish()
        self.done.callback(None)
