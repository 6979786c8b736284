"""
A windowed stream's sender in Twisted: items from a source (a push producer:
a client's connection, an engine stream) go one at a time through ``send``
within a credit window, in order, and the source is paused while the
window says so (``csvc.wire.credit.WindowedQueue``); and the receiver's
side, whose answers are the sender's credit: ``HeldAnswers``.
"""

from collections import deque

from twisted.internet.defer import Deferred, succeed

from csvc.wire.credit import WindowedQueue


class Pump:
    """
    Sends what is fed to it with ``send(item)``, which returns a Deferred
    that fires once the receiver has taken the item (its acknowledgement).
    At most ``window`` items are unacknowledged; ``source``
    (``pauseProducing``/``resumeProducing``) is paused while the window is
    full or more than ``hold`` bytes wait, and resumed as soon as neither
    holds.

    Until ``open`` (when made with ``ready=False``) items wait: the receiver
    cannot take them yet.  ``end(close)`` calls ``close()`` (a Deferred) once,
    when everything fed before has been sent and acknowledged; what is fed
    after ``end`` is dropped.  A failed send or close is given to
    ``failed(failure)`` (dropped without it) and counts as answered: the
    stream goes on.  ``stop`` drops what waits and sends nothing more.
    """

    def __init__(self, send, source, window, hold=0, ready=True, failed=None, weigh=len):
        self._send = send
        self._source = source
        self._queue = WindowedQueue(window, hold=hold, ready=ready, weigh=weigh)
        self._failed = failed
        self._paused = False
        self._close = None
        self._ended = False
        self._closed = False
        self._stopped = False

    @property
    def ended(self):
        return self._ended

    @property
    def paused(self):
        """
        Whether the source is paused by this pump.
        """
        return self._paused

    def feed(self, items):
        if self._ended or self._stopped:
            return
        self._queue.push(items)
        self._pump()

    def open(self):
        """
        The receiver can take items now.
        """
        self._queue.ready = True
        self._pump()

    def discard(self):
        """
        Forget what waits (the receiver will never take it).
        """
        self._queue.clear()
        self._pump()

    def end(self, close):
        if self._ended or self._stopped:
            return
        self._ended = True
        self._close = close
        self._pump()

    def stop(self):
        self._stopped = True
        self._queue.clear()

    def _pump(self):
        queue = self._queue
        # One at a time: a send answered at once re-enters here and sends
        # the next in order before this loop goes on.
        while queue.sendable and not self._stopped:
            self._send(queue.pop()).addCallbacks(self._answered, self._send_failed)
        if self._stopped:
            return
        if self._ended and not self._closed and queue.ready and queue.idle:
            self._closed = True
            self._close().addErrback(self._report)
        paused = queue.paused
        if paused != self._paused:
            self._paused = paused
            if paused:
                self._source.pauseProducing()
            else:
                self._source.resumeProducing()

    def _answered(self, _):
        self._queue.acked()
        self._pump()

    def _send_failed(self, failure):
        self._report(failure)
        self._answered(None)

    def _report(self, failure):
        if self._failed is not None:
            self._failed(failure)


class HeldAnswers:
    """
    The receiver's side of a window: the answer to each item taken (which
    returns the sender one credit) is held while what the items go to is
    paused (its consumer paused the receiver as a push producer), and given
    when it resumes.  The sender's window bounds what is held.
    """

    def __init__(self):
        self.paused = False
        self._held = deque()

    def __len__(self):
        return len(self._held)

    def answer(self):
        """
        The answer to an item just taken: fired now, or on resume.
        """
        if not self.paused:
            return succeed(None)
        d = Deferred()
        self._held.append(d)
        return d

    def pause(self):
        self.paused = True

    def resume(self):
        self.paused = False
        self.release()

    def release(self, failure=None):
        """
        Give every held answer now: fired, or failed with ``failure`` (the
        receiver is gone: the sender stops).
        """
        held, self._held = self._held, deque()
        for d in held:
            if failure is None:
                d.callback(None)
            else:
                d.errback(failure)
