"""
Where notifications go: one small interface (``ISink``) and the JSON-lines
log.  A sink's ``deliver`` is called on the reactor thread for every
notification and must neither block nor raise; whatever is slow (a disk, a
remote URL) happens behind a bounded buffer.
"""

import json
import os
from collections import deque

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from zope.interface import Interface, implementer


class ISink(Interface):
    def start():
        """
        Begin accepting notifications (the notifier is starting).
        """

    def stop():
        """
        Deliver what can be delivered and release resources; a Deferred
        that fires when done (or None).
        """

    def deliver(envelope, project_id):
        """
        Take one notification of ``project_id`` (None: the service's own,
        such as an instance's).  Returns at once and never raises.
        """


class ThreadExecutor:
    """
    One named thread, owned by its sink: ``run(f, *args)`` calls ``f`` there
    and returns a Deferred of its result.
    """

    def __init__(self, reactor, name):
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name=name)

    def start(self):
        self._pool.start()

    def stop(self):
        self._pool.stop()

    def run(self, f, *args):
        return deferToThreadPool(self._reactor, self._pool, f, *args)


@implementer(ISink)
class JsonLinesSink:
    """
    Appends each notification as one JSON object per line to ``path``.

    The lines wait in a bounded buffer (``max_pending``) and are written in
    batches on the sink's own thread, one batch at a time: the reactor never
    waits for the disk.  Lines are flushed to the OS after each batch, not
    fsynced.  When the disk falls so far behind that the buffer is full, the
    oldest waiting line is dropped, counted in ``dropped`` and warned about.
    """

    log = Logger()

    def __init__(self, path, executor, max_pending=10000, batch=512):
        self.path = path
        self._executor = executor
        self._max_pending = max_pending
        self._batch = batch
        self._pending = deque()
        self._writing = None
        self._file = None
        self._accepting = False
        #: lines dropped because the buffer was full, or lost to a failed write
        self.dropped = 0
        self.written = 0
        self._dropped_reported = 0

    def start(self):
        self._executor.start()
        self._accepting = True

    def deliver(self, envelope, project_id):
        if not self._accepting:
            return
        line = json.dumps(envelope, separators=(",", ":"), sort_keys=True, default=str) + "\n"
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self.dropped += 1
            if self.dropped - self._dropped_reported == 1:
                self.log.warn(
                    "notification log {path} is behind: its buffer of {limit} lines is full; "
                    "dropping the oldest",
                    path=self.path, limit=self._max_pending,
                )
        self._pending.append(line)
        self._kick()

    def _kick(self):
        if self._writing is not None or not self._pending:
            return
        if self.dropped > self._dropped_reported:
            self.log.warn(
                "notification log {path}: {count} line(s) dropped (buffer full) since the last report",
                path=self.path, count=self.dropped - self._dropped_reported,
            )
            self._dropped_reported = self.dropped
        lines = [self._pending.popleft() for _ in range(min(self._batch, len(self._pending)))]
        self._writing = self._executor.run(self._write, lines)
        self._writing.addCallbacks(self._written, self._failed, errbackArgs=(len(lines),))
        self._writing.addBoth(self._next)

    def _write(self, lines):
        """
        On the sink's thread.
        """
        if self._file is None:
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write("".join(lines))
        self._file.flush()
        return len(lines)

    def _written(self, count):
        self.written += count

    def _failed(self, failure, count):
        self.dropped += count
        self._dropped_reported += count
        self.log.error(
            "writing {count} notification(s) to {path} failed: {why}",
            count=count, path=self.path, why=failure.getErrorMessage(),
        )

    def _next(self, _):
        self._writing = None
        self._kick()

    def stop(self):
        """
        Write out what is buffered, close the file, stop the thread.
        """
        self._accepting = False
        done = Deferred()

        def drained():
            if self._writing is not None:
                self._writing.addBoth(lambda _: drained())
                return
            if self._pending:
                self._kick()
                drained()
                return
            closing = self._executor.run(self._close)
            closing.addErrback(lambda f: self.log.failure("closing {path} failed", f, path=self.path))
            closing.addBoth(lambda _: (self._executor.stop(), done.callback(None)))

        drained()
        return done

    def _close(self):
        if self._file is not None:
            self._file.close()
            self._file = None
