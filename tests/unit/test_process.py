"""
csvc/process.py: the services shorten the GIL's switch interval and, once
the reactor runs, freeze what is alive then out of the cyclic collector.
"""

import gc
import sys

from csvc import process


class Reactor:
    def __init__(self):
        self.when_running = []

    def callWhenRunning(self, f, *args):
        self.when_running.append((f, args))


def test_tune():
    before = sys.getswitchinterval()
    reactor = Reactor()
    try:
        process.tune(reactor)
        assert sys.getswitchinterval() == process.GIL_SWITCH_INTERVAL
        assert len(reactor.when_running) == 1
        f, args = reactor.when_running[0]
        f(*args)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        sys.setswitchinterval(before)



def test_the_allocator_takes_the_settings():
    # Debian's glibc has mallopt and accepts both values (it answers 0 for a
    # parameter or value it refuses).
    assert process.tune_allocator() is True


def test_the_allocator_is_left_alone_when_asked(monkeypatch):
    monkeypatch.setenv("CSVC_MALLOC", "default")
    assert process.tune_allocator() is False
