"""
Bandwidth throttling for the attach relay (csvc.relay.throttle), driven by
``twisted.internet.task.Clock``.
"""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from csvc.relay.throttle import (
    EPSILON,
    AlreadyWaiting,
    Throttle,
    TokenBucket,
    fair_shares,
)

CHUNK = 64 * 1024
STEP = 0.01  # the simulated reactor's granularity
DURATION = 10.0


class BulkSession:
    """
    Always has another chunk to send: asks again as soon as a request is
    granted in full.  Records every grant and when it came.
    """

    def __init__(self, throttle, clock, chunk=CHUNK, repeat=True):
        self.throttle = throttle
        self.clock = clock
        self.chunk = chunk
        self.repeat = repeat
        self.requested = 0
        self.granted = 0
        self.grants = []  # [(time, n)]
        self.share = throttle.register(self)

    def ask(self, n=None):
        n = self.chunk if n is None else n
        self.requested += n
        self.throttle.request(self.share, n)

    def grant(self, n):
        assert n >= 1
        self.granted += n
        self.grants.append((self.clock.seconds(), n))
        assert self.granted <= self.requested
        if self.repeat and self.granted == self.requested:
            self.ask()


def run(clock, seconds=DURATION):
    clock.pump([STEP] * int(round(seconds / STEP)))


def granted_between(session, start, end):
    return sum(n for t, n in session.grants if start <= t < end)


def jain(values):
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


# TokenBucket


def test_bucket_starts_full_and_refills():
    bucket = TokenBucket(rate=1000, burst=100, now=0.0)
    assert bucket.available == 100
    assert bucket.take(150) == 100
    assert bucket.available == 0
    assert bucket.time_until(50) == pytest.approx(0.05)
    bucket.refill(0.05)
    assert bucket.available == 50
    bucket.refill(10.0)
    assert bucket.available == 100  # capped at burst
    assert bucket.time_until(1000) == 0.0  # more than burst: a full bucket


def test_bucket_ignores_clock_going_back():
    bucket = TokenBucket(rate=1000, burst=100, now=5.0)
    bucket.take(100)
    bucket.refill(4.0)
    assert bucket.available == 0
    bucket.refill(5.01)
    assert bucket.available == 10


def test_unlimited_bucket():
    bucket = TokenBucket(rate=None, burst=None, now=0.0)
    assert bucket.take(10**12) == 10**12
    assert bucket.available == math.inf
    assert bucket.time_until(10**12) == 0.0


@given(
    rate=st.integers(min_value=1, max_value=10**8),
    burst=st.integers(min_value=1, max_value=10**7),
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=2.0, allow_nan=False),
            st.integers(min_value=0, max_value=10**8),
        ),
        max_size=60,
    ),
)
def test_bucket_never_exceeds_rate_plus_burst(rate, burst, steps):
    now = 100.0
    bucket = TokenBucket(rate, burst, now)
    start = now
    total = 0
    for dt, n in steps:
        now += dt
        bucket.refill(now)
        taken = bucket.take(n)
        assert 0 <= taken <= n
        total += taken
        # allowing only float rounding, far below one byte
        bound = rate * (now - start) + burst
        assert total <= bound + EPSILON + 1e-12 * bound


@given(
    rate=st.integers(min_value=1, max_value=10**6),
    burst=st.integers(min_value=1, max_value=10**6),
    n=st.integers(min_value=1, max_value=10**6),
)
def test_bucket_time_until_is_enough(rate, burst, n):
    bucket = TokenBucket(rate, burst, 0.0)
    bucket.take(burst)
    wait = bucket.time_until(n)
    bucket.refill(wait * (1 + 1e-9) + 1e-12)
    assert bucket.available >= min(n, burst)


# fair_shares


@given(
    available=st.integers(min_value=0, max_value=10**6),
    demands=st.lists(st.integers(min_value=0, max_value=10**5), max_size=20),
    start=st.integers(min_value=0, max_value=19),
)
def test_fair_shares_is_max_min_fair(available, demands, start):
    grants = fair_shares(available, demands, start)
    assert all(0 <= g <= d for g, d in zip(grants, demands))
    assert sum(grants) == min(available, sum(demands))  # work-conserving
    short = [g for g, d in zip(grants, demands) if g < d]
    if short:
        # whoever is short got no less than anyone else, give or take a byte
        assert max(grants) - min(short) <= 1


def test_fair_shares_odd_bytes_rotate():
    assert fair_shares(2, [5, 5, 5], start=0) == [1, 1, 0]
    assert fair_shares(2, [5, 5, 5], start=2) == [1, 0, 1]
    assert fair_shares(math.inf, [3, 0, 7]) == [3, 0, 7]


# Throttle: rates


def test_session_cap_single_bulk_session():
    clock = Clock()
    rate = 100_000
    throttle = Throttle(clock, session_rate=rate)
    session = BulkSession(throttle, clock)
    session.ask()
    run(clock)
    achieved = session.granted / DURATION
    assert achieved == pytest.approx(rate, rel=0.05)
    # and in steady state (burst excluded), too
    assert granted_between(session, 1.0, 9.0) / 8.0 == pytest.approx(rate, rel=0.05)


def test_global_cap_eight_bulk_sessions_fair():
    clock = Clock()
    rate = 1_000_000
    throttle = Throttle(clock, global_rate=rate)
    sessions = [BulkSession(throttle, clock) for _ in range(8)]
    for s in sessions:
        s.ask()
    run(clock)
    totals = [s.granted for s in sessions]
    assert sum(totals) / DURATION == pytest.approx(rate, rel=0.05)
    assert jain(totals) >= 0.95
    # fair in every second, not only on average
    for second in range(1, 10):
        per = [granted_between(s, second, second + 1) for s in sessions]
        assert jain(per) >= 0.95
    # and at the cap over any two seconds (a one-second window can gain or
    # lose a whole late tick, 60 ms at 10 ms steps, i.e. 6%)
    for second in range(1, 9):
        window = sum(granted_between(s, second, second + 2) for s in sessions)
        assert window / 2 == pytest.approx(rate, rel=0.05)


def test_session_and_global_caps_together():
    clock = Clock()
    throttle = Throttle(clock, global_rate=1_000_000, session_rate=50_000)
    sessions = [BulkSession(throttle, clock) for _ in range(8)]
    for s in sessions:
        s.ask()
    run(clock)
    # 8 x 50 kB/s is under the global cap: each session gets its own cap
    for s in sessions:
        assert s.granted / DURATION == pytest.approx(50_000, rel=0.05)


def test_interactive_byte_among_bulk_sessions_within_one_tick():
    clock = Clock()
    tick = 0.05
    throttle = Throttle(clock, global_rate=1_000_000, tick=tick)
    bulk = [BulkSession(throttle, clock) for _ in range(8)]
    for s in bulk:
        s.ask()
    run(clock, 2.0)  # saturated
    assert throttle.waiting == 8
    keys = BulkSession(throttle, clock, chunk=1, repeat=False)
    latencies = []
    for i in range(20):
        clock.advance(0.013 * (i % 4 + 1))  # land at various points of a tick
        asked = clock.seconds()
        keys.ask()
        while keys.granted < keys.requested:
            clock.advance(0.001)
        latencies.append(keys.grants[-1][0] - asked)
    # a keystroke waits at most one tick (50 ms) behind 8 bulk uploads,
    # give or take the 1 ms step of this simulation
    assert max(latencies) <= tick + 0.001 + 1e-9
    assert min(latencies) < tick / 2
    assert keys.granted == 20


def test_no_bytes_lost():
    clock = Clock()
    throttle = Throttle(clock, global_rate=300_000, session_rate=70_000)
    sizes = [1, 17, 4096, CHUNK, 3 * CHUNK, 123_457, 5, 900_001]
    sessions = [BulkSession(throttle, clock, chunk=n, repeat=False) for n in sizes]
    for s in sessions:
        s.ask()
    run(clock, 30.0)
    for s in sessions:
        assert s.granted == s.requested
    assert sum(s.granted for s in sessions) == sum(sizes)
    assert throttle.waiting == 0
    assert clock.getDelayedCalls() == []  # nobody waits: no timer


def test_unlimited_grants_at_once_without_timers():
    clock = Clock()
    throttle = Throttle(clock)
    sessions = [BulkSession(throttle, clock, chunk=10**9, repeat=False) for _ in range(3)]
    for s in sessions:
        s.ask()
        assert s.grants == [(0.0, 10**9)]
    assert clock.getDelayedCalls() == []


def test_timer_only_while_someone_waits():
    clock = Clock()
    throttle = Throttle(clock, session_rate=1000)
    session = BulkSession(throttle, clock, repeat=False)
    session.ask(100)  # within the burst
    assert session.granted == 100
    assert clock.getDelayedCalls() == []
    session.ask(5000)
    assert len(clock.getDelayedCalls()) == 1
    run(clock, 6.0)
    assert session.granted == 5100
    assert clock.getDelayedCalls() == []


def test_one_request_per_session():
    clock = Clock()
    throttle = Throttle(clock, session_rate=1000)
    session = BulkSession(throttle, clock, repeat=False)
    session.ask(10_000)
    with pytest.raises(AlreadyWaiting):
        throttle.request(session.share, 1)
    assert throttle.waiting == 1


def test_unregister_stops_grants_and_timer():
    clock = Clock()
    throttle = Throttle(clock, global_rate=1000)
    a = BulkSession(throttle, clock, repeat=False)
    b = BulkSession(throttle, clock, repeat=False)
    a.ask(10_000)
    b.ask(10_000)
    clock.advance(0.05)
    throttle.unregister(a.share)
    before = a.granted
    clock.advance(0.05)
    assert a.granted == before
    throttle.unregister(b.share)
    assert clock.getDelayedCalls() == []
    with pytest.raises(ValueError):
        throttle.request(a.share, 1)


def test_failing_session_does_not_stall_others():
    clock = Clock()
    throttle = Throttle(clock, global_rate=10_000)

    class Broken:
        def grant(self, n):
            raise RuntimeError("boom")

    broken = throttle.register(Broken())
    good = BulkSession(throttle, clock, repeat=False)
    throttle.request(broken, 50_000)
    good.ask(50_000)
    run(clock, 20.0)
    assert good.granted == 50_000


def test_tick_is_bounded():
    with pytest.raises(ValueError):
        Throttle(Clock(), tick=0.5)


def test_a_keystroke_among_saturating_bulk_sessions_goes_at_once():
    """
    Each tick holds a few tokens back from the bulk shares, so a small
    request between ticks needs no tick at all.
    """
    clock = Clock()
    throttle = Throttle(clock, global_rate=1_000_000, tick=0.05)
    bulk = [BulkSession(throttle, clock) for _ in range(8)]
    for s in bulk:
        s.ask()
    run(clock, 2.0)
    assert throttle.waiting == 8
    keys = BulkSession(throttle, clock, chunk=1, repeat=False)
    for i in range(20):
        clock.advance(0.013 * (i % 4 + 1))
        asked = clock.seconds()
        keys.ask()
        assert keys.granted == i + 1, "the keystroke waited for a tick"
        assert keys.grants[-1][0] == asked
    # A large request still queues behind the bulk sessions.
    big = BulkSession(throttle, clock, chunk=64 * 1024, repeat=False)
    big.ask()
    assert big.granted == 0


def test_limited_only_with_a_rate():
    clock = Clock()
    assert not Throttle(clock).limited
    assert Throttle(clock, session_rate=1000).limited
    assert Throttle(clock, global_rate=1000).limited
