"""
Each project's share of an agent's engine threads.

The docker SDK's calls block, so the agent runs them on a pool of
``threads``.  Without shares one project's slow calls (pulls, removals of
big containers, a flood of inspections) hold every thread and every other
project's calls wait behind them.  ``EngineShares`` lets at most
``per_project`` calls of one project (``max(1, threads // 2)`` by default)
run at once and at most ``threads`` in all; the others wait in their
project's queue, taken in turn across projects as calls end.  A project
whose queue is full (``queue``) is refused with ``EngineBusy``: a bounded
wait, never an unbounded one.

The key is the project (``None`` for calls of no project: images, facts,
inventory), decided by the engine; this module knows nothing of Docker.
"""

from collections import OrderedDict, deque

from twisted.internet.defer import Deferred, maybeDeferred

from csvc.wire.commands import EngineBusy


class EngineShares:
    def __init__(self, threads, per_project=None, queue=64):
        self.threads = threads
        self.per_project = per_project if per_project is not None else max(1, threads // 2)
        self.queue = queue
        #: key -> calls running
        self._running = {}
        self._total = 0
        #: key -> deque of (Deferred, start), keys in turn order
        self._waiting = OrderedDict()

    def running(self, key):
        return self._running.get(key, 0)

    def waiting(self, key):
        return len(self._waiting.get(key, ()))

    def run(self, key, start):
        """
        ``start()`` (which returns a Deferred) once ``key`` may run another
        call; a Deferred of its result.  ``EngineBusy`` (failed Deferred)
        when the key already has ``queue`` calls waiting.
        """
        if not self._waiting.get(key) and self._may_run(key):
            return self._start(key, start)
        waiting = self._waiting.setdefault(key, deque())
        if len(waiting) >= self.queue:
            if not waiting:
                del self._waiting[key]
            return maybeDeferred(self._busy, key)
        entry = []

        def cancel(d):
            # Still waiting: leave the queue (once started it runs on).
            queue = self._waiting.get(key)
            if queue is not None and entry and entry[0] in queue:
                queue.remove(entry[0])
                if not queue:
                    del self._waiting[key]

        d = Deferred(cancel)
        entry.append((d, start))
        waiting.append(entry[0])
        return d

    def _busy(self, key):
        raise EngineBusy(
            f"this instance's engine is busy with the project's calls ({self.running(key)} running, "
            f"{self.waiting(key)} waiting): try again soon"
        )

    def _may_run(self, key):
        return self._total < self.threads and self._running.get(key, 0) < self.per_project

    def _start(self, key, start):
        self._running[key] = self._running.get(key, 0) + 1
        self._total += 1

        def ended(result):
            left = self._running[key] - 1
            if left:
                self._running[key] = left
            else:
                del self._running[key]
            self._total -= 1
            self._next()
            return result

        return maybeDeferred(start).addBoth(ended)

    def _next(self):
        """
        Start waiting calls, one key at a time in turn, while there is room.
        """
        progressed = True
        while progressed and self._total < self.threads:
            progressed = False
            for key in list(self._waiting):
                if not self._may_run(key):
                    continue
                queue = self._waiting.pop(key)
                d, start = queue.popleft()
                if queue:
                    # Back of the turn order.
                    self._waiting[key] = queue
                self._start(key, start).chainDeferred(d)
                progressed = True
                break
