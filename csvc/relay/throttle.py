"""
Bandwidth throttling for the attach relay.

Three parts, from the inside out:

- ``TokenBucket`` and ``fair_shares`` are the sans-IO core: plain arithmetic
  on bytes and seconds, no clock and no reactor.
- ``Throttle`` hands out bytes to sessions: one bucket per session and one
  for the whole relay, waiting sessions served round-robin with a max-min
  fair share of the relay's bucket on every tick.  Time comes from an
  injected ``IReactorTime``; a timer runs only while someone waits.
- ``PauseReasons`` and ``ThrottledWriter`` are the small Twisted driver: a
  producer paused for the throttle is counted apart from the same producer
  paused by its consumer's transport, and bytes are written only as they
  are granted, never dropped.

Unlike ``twisted.protocols.policies.ThrottlingFactory`` (checks once a
second, then pauses every connection for ``bytes/limit - 1`` seconds), the
buckets here refill on every tick (at most 100 ms) and a session waits for
at most the bytes it asked for.
"""

import math
from collections import deque

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

#: A tick longer than this would let buckets sit unrefilled too long.
MAX_TICK = 0.1

#: Float rounding forgiven when counting whole bytes in a bucket (a refill of
#: 0.01 s at 1000 B/s is 9.999999999999787 tokens, and should be 10).
EPSILON = 1e-6

#: The most bytes handed to ``consumer.write`` in one call.
MAX_WRITE = 64 * 1024


def default_burst(rate, tick):
    """
    A bucket's capacity: two ticks' worth of bytes, so that a tick that
    fires late does not lose the refill, and never less than one byte.
    """
    return max(1, math.ceil(rate * 2 * tick))


class TokenBucket:
    """
    A bucket of byte tokens refilled at ``rate`` bytes per second up to
    ``burst``.  It starts full.  ``rate=None`` is unlimited: every ``take``
    is served in full.

    The bucket never reads a clock: callers pass ``now`` to ``refill``.
    """

    def __init__(self, rate, burst, now):
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive or None, not {rate!r}")
        if rate is not None and burst < 1:
            raise ValueError(f"burst must be at least 1 byte, not {burst!r}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst) if rate is not None else math.inf
        self._last = now

    @property
    def unlimited(self):
        return self.rate is None

    def refill(self, now):
        """
        Add the tokens earned since the last refill.  A clock that steps
        backwards earns nothing (and does not move the reference point).
        """
        if self.rate is None or now <= self._last:
            return
        self._tokens = min(float(self.burst), self._tokens + self.rate * (now - self._last))
        self._last = now

    @property
    def available(self):
        """
        Whole bytes that may be taken now (``math.inf`` when unlimited).
        """
        if self.rate is None:
            return math.inf
        return int(self._tokens + EPSILON)

    def take(self, n):
        """
        Take up to ``n`` bytes' worth of tokens; return how many were taken.
        """
        if n < 0:
            raise ValueError(f"cannot take {n!r} bytes")
        if self.rate is None:
            return n
        taken = min(n, int(self._tokens + EPSILON))
        self._tokens -= taken
        return taken

    def time_until(self, n):
        """
        Seconds from the last refill until ``n`` bytes are available.  More
        than ``burst`` is never available at once: that case answers the
        wait for a full bucket.
        """
        if self.rate is None:
            return 0.0
        missing = min(n, self.burst) - self._tokens
        return max(0.0, missing / self.rate)


def fair_shares(available, demands, start=0):
    """
    Divide ``available`` bytes among ``demands`` (a list of non-negative
    ints) max-min fairly: nobody gets more than they asked for, and nobody
    who got less than they asked got less than anyone else minus one byte.
    The last odd bytes go round-robin from index ``start``.  Returns a list
    of grants, in the order of ``demands``; all of ``available`` is handed
    out unless every demand is met (``available`` may be ``math.inf``).
    """
    grants = [0] * len(demands)
    if available == math.inf:
        return list(demands)
    count = len(demands)
    open_ = [i for i in range(count) if demands[i] > 0]
    # Rotate so that the odd bytes start at ``start``.
    open_.sort(key=lambda i: (i - start) % count)
    left = available
    while left > 0 and open_:
        share = left // len(open_)
        if share == 0:
            for i in open_[:left]:
                grants[i] += 1
            break
        still = []
        for i in open_:
            give = min(share, demands[i] - grants[i])
            grants[i] += give
            left -= give
            if grants[i] < demands[i]:
                still.append(i)
        open_ = still
    return grants


class AlreadyWaiting(Exception):
    """
    A session asked for bytes while a request of its own was still waiting.
    """


class Share:
    """
    A session's place in a ``Throttle``: its own bucket and the bytes it
    still waits for.  Returned by ``Throttle.register``; opaque to callers.
    """

    def __init__(self, session, bucket):
        self.session = session
        self.bucket = bucket
        self.pending = 0
        self.registered = True

    def __repr__(self):
        return f"<Share {self.session!r} pending={self.pending}>"


class Throttle:
    """
    Grants bytes to sessions under a per-session rate and a relay-wide rate
    (bytes per second; ``None`` turns either off).

    A session registers once (``register(session)``), then asks for bytes
    with ``request(share, nbytes)``; the throttle calls
    ``session.grant(n)`` (``n >= 1``), now or later, possibly in several
    pieces, until exactly ``nbytes`` have been granted.  A session has at
    most one request waiting.  Waiting sessions are served on a tick every
    ``tick`` seconds, round-robin, each getting a max-min fair share of the
    relay's bucket; a request that arrives while others wait joins the end
    of the line and is served on the next tick.
    """

    log = Logger()

    def __init__(self, clock, global_rate=None, session_rate=None, tick=0.05,
                 global_burst=None, session_burst=None):
        if not 0 < tick <= MAX_TICK:
            raise ValueError(f"tick must be in (0, {MAX_TICK}] seconds, not {tick!r}")
        self._clock = clock
        self.tick = tick
        self.session_rate = session_rate
        self._session_burst = session_burst
        if global_rate is not None and global_burst is None:
            global_burst = default_burst(global_rate, tick)
        self._global = TokenBucket(global_rate, global_burst, clock.seconds())
        self._waiting = deque()  # Shares with pending > 0; each at most once
        self._timer = None
        self._distributing = False

    @property
    def waiting(self):
        return len(self._waiting)

    def register(self, session):
        rate = self.session_rate
        burst = self._session_burst
        if rate is not None and burst is None:
            burst = default_burst(rate, self.tick)
        return Share(session, TokenBucket(rate, burst, self._clock.seconds()))

    def unregister(self, share):
        """
        Forget a session; whatever it still waited for is never granted.
        """
        share.registered = False
        share.pending = 0
        try:
            self._waiting.remove(share)
        except ValueError:
            pass
        if not self._waiting:
            self._stop_timer()

    def request(self, share, nbytes):
        if not share.registered:
            raise ValueError(f"{share!r} is not registered")
        if nbytes < 1:
            raise ValueError(f"request at least one byte, not {nbytes!r}")
        if share.pending:
            raise AlreadyWaiting(f"{share!r} already waits for {share.pending} bytes")
        share.pending = nbytes
        if self._waiting or self._distributing:
            self._enqueue(share)
            return
        now = self._clock.seconds()
        self._global.refill(now)
        share.bucket.refill(now)
        given = min(nbytes, share.bucket.available, self._global.available)
        if given:
            share.bucket.take(given)
            self._global.take(given)
            share.pending -= given
        if share.pending:
            self._enqueue(share)
        if given:
            self._deliver(share, given)

    def _enqueue(self, share):
        self._waiting.append(share)
        if self._timer is None:
            self._timer = self._clock.callLater(self.tick, self._on_tick)

    def _stop_timer(self):
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def _on_tick(self):
        self._timer = None
        now = self._clock.seconds()
        self._global.refill(now)
        waiting = list(self._waiting)
        demands = []
        for share in waiting:
            share.bucket.refill(now)
            demands.append(min(share.pending, share.bucket.available))
        grants = fair_shares(self._global.available, demands)
        given = []
        for share, n in zip(waiting, grants):
            if n:
                share.bucket.take(n)
                self._global.take(n)
                share.pending -= n
                given.append((share, n))
        # Round-robin: whoever led this tick goes to the back; the
        # satisfied leave the line.
        self._waiting.rotate(-1)
        for share, _ in given:
            if not share.pending:
                self._waiting.remove(share)
        self._distributing = True
        try:
            for share, n in given:
                if share.registered:
                    self._deliver(share, n)
        finally:
            self._distributing = False
        if self._waiting and self._timer is None:
            self._timer = self._clock.callLater(self.tick, self._on_tick)

    def _deliver(self, share, n):
        try:
            share.session.grant(n)
        except Exception:
            self.log.failure("throttle grant to {session!r} failed", session=share.session)


TRANSPORT = "transport"
THROTTLE = "throttle"


@implementer(IPushProducer)
class PauseReasons:
    """
    Pause and resume one push producer for two independent reasons: its
    consumer's transport is full (``TRANSPORT``), or the throttle has not
    granted the bytes yet (``THROTTLE``).  The producer is paused when the
    first reason appears and resumed only when none is left.

    It is itself an ``IPushProducer`` standing for the transport's reason:
    register it with the consumer in place of the producer
    (``consumer.registerProducer(reasons, True)``), so the transport's own
    pause and resume are counted apart from the throttle's.
    """

    REASONS = frozenset({TRANSPORT, THROTTLE})

    def __init__(self, producer):
        self._producer = producer
        self._reasons = set()
        self.stopped = False

    @property
    def reasons(self):
        return frozenset(self._reasons)

    @property
    def paused(self):
        return bool(self._reasons)

    def pause(self, reason):
        if reason not in self.REASONS:
            raise ValueError(f"unknown pause reason {reason!r}")
        if reason in self._reasons:
            return
        first = not self._reasons
        self._reasons.add(reason)
        if first and not self.stopped:
            self._producer.pauseProducing()

    def resume(self, reason):
        if reason not in self.REASONS:
            raise ValueError(f"unknown pause reason {reason!r}")
        if reason not in self._reasons:
            return
        self._reasons.discard(reason)
        if not self._reasons and not self.stopped:
            self._producer.resumeProducing()

    # IPushProducer, for the consumer's transport
    def pauseProducing(self):
        self.pause(TRANSPORT)

    def resumeProducing(self):
        self.resume(TRANSPORT)

    def stopProducing(self):
        if not self.stopped:
            self.stopped = True
            self._producer.stopProducing()


class ThrottledWriter:
    """
    One direction of one attach session under a ``Throttle``: bytes from a
    producer (paused through ``reasons``) are written to ``consumer`` as
    they are granted, at most ``MAX_WRITE`` bytes per write.

    While bytes wait, the producer is paused for ``THROTTLE``.  Bytes that
    still arrive while paused (a read already under way) are kept and asked
    for after the current request; they are bounded by one read of the
    producer.  Nothing is dropped until ``stop()``.
    """

    def __init__(self, throttle, consumer, reasons):
        self._throttle = throttle
        self._consumer = consumer
        self._reasons = reasons
        self._share = throttle.register(self)
        self._buffer = bytearray()
        self._requested = 0  # bytes of _buffer covered by the waiting request
        self._granted = 0  # bytes granted, not yet written
        self._drained = []
        self._stopped = False

    @property
    def buffered(self):
        return len(self._buffer)

    def write(self, data):
        if self._stopped or not data:
            return
        self._buffer += data
        if not self._requested:
            self._ask()

    def _ask(self):
        self._requested = len(self._buffer)
        # The grant may come at once, from inside this call: pause only if
        # bytes are left waiting, so an unthrottled pipe never pauses.
        self._throttle.request(self._share, self._requested)
        if self._requested and not self._stopped:
            self._reasons.pause(THROTTLE)

    def grant(self, n):
        if self._stopped:
            return
        self._granted += n
        self._requested -= n
        while self._granted:
            size = min(self._granted, MAX_WRITE)
            chunk = bytes(self._buffer[:size])
            del self._buffer[:size]
            self._granted -= size
            self._consumer.write(chunk)
        if self._requested:
            return
        if self._buffer:
            self._ask()
            return
        self._reasons.resume(THROTTLE)
        drained, self._drained = self._drained, []
        for d in drained:
            d.callback(None)

    def drained(self):
        """
        A Deferred that fires once every byte written so far has gone to the
        consumer (for instance before closing it at the end of output).
        """
        if not self._buffer:
            return succeed(None)
        d = Deferred()
        self._drained.append(d)
        return d

    def stop(self):
        """
        Leave the throttle; bytes still held are discarded (the session is
        over).
        """
        if self._stopped:
            return
        self._stopped = True
        self._throttle.unregister(self._share)
        self._buffer.clear()
        self._reasons.resume(THROTTLE)
