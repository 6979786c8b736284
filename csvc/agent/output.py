"""
Reading one container's output from the engine and sending it to the control
plane within a bounded window.
"""

from collections import deque

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from csvc.wire.commands import CHUNK_SIZE, OUTPUT_WINDOW
from csvc.wire.credit import CreditWindow
from csvc.wire.states import InvalidEvent, StateTable

# -- the follower's states ---------------------------------------------------

FOLLOWING, ENDED, DONE, FAILING, FAILED = "following", "ended", "done", "failing", "failed"

#: Every state a follower may be in: ``following`` (the stream is open),
#: ``ended`` (it ended; what is left goes out), ``done`` (every chunk
#: acknowledged, ``done`` fired), ``failing`` (a send failed or the stream
#: was unreadable, ``done`` failed; the stream is being stopped), ``failed``
#: (``done`` failed and the stream is over, or never opened).
FOLLOWER_STATES = (FOLLOWING, ENDED, DONE, FAILING, FAILED)

#: (state, event) -> state; a pair not here is a bug (``follower_step``
#: raises).
FOLLOWER_TRANSITIONS = {
    # The engine's stream ended.
    (FOLLOWING, "lost"): ENDED,
    (FAILING, "lost"): FAILED,
    (FAILED, "lost"): FAILED,
    # The last chunk acknowledged after the end.
    (ENDED, "acked_all"): DONE,
    # A send failed (the link is gone), or the stream is unreadable.
    (FOLLOWING, "send_failed"): FAILING,
    (ENDED, "send_failed"): FAILED,
    (FAILING, "send_failed"): FAILING,
    (FAILED, "send_failed"): FAILED,
    # The stream could not be opened at all.
    (FOLLOWING, "open_failed"): FAILED,
    (ENDED, "open_failed"): FAILED,
    (FAILING, "open_failed"): FAILED,
    (FAILED, "open_failed"): FAILED,
    (DONE, "open_failed"): DONE,
}



class InvalidFollowerEvent(InvalidEvent):
    """
    An event the follower's state does not take (a bug of the follower).
    """


_TABLE = StateTable("follower", FOLLOWER_TRANSITIONS, invalid=InvalidFollowerEvent)
FOLLOWER_EVENTS = _TABLE.events
#: The state an event moves a follower in a state to.
follower_step = _TABLE.step


class OutputFollower(Protocol):
    """
    The protocol of one engine output stream (an attach stream or the log),
    parsed by ``reader`` (an ``OutputReader``).

    Chunks parsed from the stream are numbered from ``seq + 1`` and handed to
    ``send(seq, stream, data, cursor)``, which returns a Deferred that fires
    once the chunk is persisted.  At most ``window`` chunks are unacknowledged;
    once a chunk's worth waits for room the engine stream is paused, so
    memory stays at most a window, a chunk and one read.

    Chunks that waited are merged when they are sent, consecutive ones of
    one stream up to ``chunk_size``: the further behind the control plane,
    the fewer and larger the boxes.  While fewer than ``eager`` chunks are
    unacknowledged a chunk goes as soon as it is read, however small (a
    keystroke's echo waits for nothing); from ``eager`` on, what was read
    waits until a chunk's worth is ready, an acknowledgement brings the
    count below ``eager`` again, or the stream ends (Nagle's rule, with a
    pipeline): a container writing fast gets its output carried in full
    chunks, not one box per read.

    ``done`` fires with the last seq once the stream has ended and every chunk
    is acknowledged; it fails if a send fails (the link is gone).  The
    follower's life is one state (``FOLLOWER_STATES``); pausing the engine
    stream is not part of it.
    """

    log = Logger()

    #: Chunks in flight below which a partial chunk is sent at once.
    eager = 2

    def __init__(self, send, reader, seq, window=OUTPUT_WINDOW, chunk_size=CHUNK_SIZE):
        self._send = send
        self._chunk_size = chunk_size
        self._reader = reader
        self.seq = seq
        # Chunks sent and not yet acknowledged: at most ``window``.
        self._credit = CreditWindow(window)
        self._ready = deque()
        self._ready_bytes = 0
        # The engine stream is paused (a full chunk waits for room).
        self._paused = False
        self._state = FOLLOWING
        self.done = Deferred()

    @property
    def state(self):
        """
        One of ``FOLLOWER_STATES``.
        """
        return self._state

    def _move(self, event):
        self._state = follower_step(self._state, event)

    @property
    def _reading(self):
        # The engine stream is open.
        return self._state in (FOLLOWING, FAILING)

    @property
    def cursor(self):
        return self._reader.cursor

    def dataReceived(self, data):
        if self._state != FOLLOWING:
            return
        try:
            chunks = self._reader.feed(data)
        except Exception:
            self.log.failure("unreadable engine output stream")
            self._fail_with_stop()
            return
        self._ready.extend(chunks)
        self._ready_bytes += sum(len(chunk[1]) for chunk in chunks)
        self._pump()

    def _pump(self):
        while self._ready and self._credit.can_send and self._state in (FOLLOWING, ENDED):
            if (self._credit.outstanding >= self.eager and self._ready_bytes < self._chunk_size
                    and self._state == FOLLOWING):
                # Less than a chunk, and enough in flight: wait for more.
                break
            stream, data, cursor = self._ready.popleft()
            if self._ready and self._ready[0][0] == stream:
                parts, size = [data], len(data)
                while self._ready:
                    next_stream, next_data, next_cursor = self._ready[0]
                    if next_stream != stream or size + len(next_data) > self._chunk_size:
                        break
                    self._ready.popleft()
                    parts.append(next_data)
                    size += len(next_data)
                    cursor = next_cursor
                data = b"".join(parts)
            self._ready_bytes -= len(data)
            self.seq += 1
            self._credit.sent()
            d = self._send(self.seq, stream, data, cursor)
            d.addCallbacks(self._acked, self._send_failed)
        if self.transport is not None and self._reading:
            full = self._ready_bytes >= self._chunk_size
            if full and not self._paused:
                self._paused = True
                self.transport.pauseProducing()
            elif not full and self._paused:
                self._paused = False
                self.transport.resumeProducing()
        self._check_done()

    def _acked(self, _):
        self._credit.acked()
        self._pump()

    def _send_failed(self, failure):
        self._credit.acked()
        if self._state in (FOLLOWING, ENDED):
            self._move("send_failed")
            self._ready.clear()
            self._ready_bytes = 0
            self.stop()
            if not self.done.called:
                self.done.errback(failure)

    def _fail_with_stop(self):
        from twisted.python.failure import Failure

        self._send_failed(Failure(ValueError("unreadable engine output stream")))

    def connectionLost(self, reason):
        self._move("lost")
        # A partial chunk held back for more goes now.
        self._pump()

    def _check_done(self):
        if self._state == ENDED and not self._ready and self._credit.outstanding == 0:
            self._move("acked_all")
            self.done.callback(self.seq)

    def stop(self):
        """
        Stop reading (the link went away or the agent stops).
        """
        if self.transport is not None and self._reading:
            self.transport.stopProducing()

    def fail(self, failure):
        """
        The stream could not be opened at all.
        """
        called = self.done.called
        self._move("open_failed")
        if not called:
            self.done.errback(failure)
