"""
Bandwidth throttling for the attach relay.

Two parts, from the inside out:

- ``TokenBucket`` and ``fair_shares`` are the sans-IO core: plain arithmetic
  on bytes and seconds, no clock and no reactor.
- ``Throttle`` hands out bytes to sessions: one bucket per session and one
  for the whole relay, waiting sessions served round-robin with a max-min
  fair share of the relay's bucket on every tick.  Time comes from an
  injected ``IReactorTime``; a timer runs only while someone waits.

The attach session (``csvc/relay/session.py``) asks the throttle for every
message it sends and keeps the throttle's wait apart from its transport's
pause: bytes wait in its bounded queue, never dropped.

Unlike Twisted's own throttling wrapper in ``protocols.policies`` (checks
once a second, then pauses every connection for ``bytes/limit - 1`` seconds), the
buckets here refill on every tick (at most 100 ms) and a session waits for
at most the bytes it asked for.
"""

import math
from collections import deque

from twisted.logger import Logger

#: Requests this small are served between ticks when tokens allow, even
#: while bulk sessions wait: interactive traffic.
SMALL_REQUEST = 1024

#: Tokens of the relay's bucket held back from each tick's bulk shares for
#: small requests (at most 5% of a tick's worth).
RESERVE = 4096

#: A tick longer than this would let buckets sit unrefilled too long.
MAX_TICK = 0.1

#: Float rounding forgiven when counting whole bytes in a bucket (a refill of
#: 0.01 s at 1000 B/s is 9.999999999999787 tokens, and should be 10).
EPSILON = 1e-6


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
    def _reserve(self):
        if self._global.unlimited:
            return 0
        return min(RESERVE, int(self._global.rate * self.tick / 20))

    @property
    def waiting(self):
        return len(self._waiting)

    @property
    def limited(self):
        """
        Whether either rate is set.  With neither (the default) a session
        need not register: every request would be granted at once.
        """
        return self.session_rate is not None or not self._global.unlimited

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
        small = nbytes <= SMALL_REQUEST
        if self._distributing or (self._waiting and not small):
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
        # A few tokens stay back for small requests (a keystroke, a prompt)
        # that come between ticks: they go at once instead of a tick later.
        grants = fair_shares(max(0, self._global.available - self._reserve), demands)
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
