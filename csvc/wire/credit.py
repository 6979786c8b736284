"""
The credit window both sides of a stream share, without I/O.

A sender may have at most ``size`` items (boxes, chunks, calls) sent and not
yet acknowledged; an acknowledgement returns one credit.  ``CreditWindow``
counts; ``WindowedQueue`` keeps what waits for credit, in order, and says
when the source of the items should be paused (the window is full, or more
than ``hold`` bytes wait) and when it may resume.  The receiver's side is
its answer: an item is acknowledged when the receiver answers it, so it has
no state of its own here.

``csvc.wire.pump.Pump`` drives a ``WindowedQueue`` with Deferreds and a
producer; everything here is plain counting, tested by properties.
"""

from collections import deque


class WindowExceeded(Exception):
    """
    More was sent than the window has credit for, or more acknowledged than
    was sent: a bug of the sender, never the peer's doing.
    """


class CreditWindow:
    """
    The sender's count of unacknowledged items, at most ``size``.
    """

    def __init__(self, size):
        if size < 1:
            raise ValueError(f"a window holds at least one item, not {size}")
        self.size = size
        self.outstanding = 0

    @property
    def credit(self):
        """
        How many more may be sent now.
        """
        return self.size - self.outstanding

    @property
    def can_send(self):
        return self.outstanding < self.size

    @property
    def full(self):
        return self.outstanding >= self.size

    def sent(self, n=1):
        """
        ``n`` items went.  True when they used the last credit (the sender
        should pause).
        """
        if n < 0 or n > self.credit:
            raise WindowExceeded(f"{n} sent with {self.credit} of {self.size} credit")
        was_full = self.full
        self.outstanding += n
        return self.full and not was_full

    def acked(self, n=1):
        """
        ``n`` items were acknowledged.  True when this returned credit to a
        full window (the sender may resume).
        """
        if n < 0 or n > self.outstanding:
            raise WindowExceeded(f"{n} acknowledged with {self.outstanding} outstanding")
        was_full = self.full
        self.outstanding -= n
        return was_full and not self.full


class WindowedQueue:
    """
    Items waiting to be sent within a ``CreditWindow`` of ``size``, in the
    order they were pushed.

    While ``ready`` is false (the receiver cannot take them yet: a container
    not running) nothing is sendable and items wait.  ``paused`` is true while
    the window is full or more than ``hold`` bytes (``weigh(item)`` each)
    wait: the source should not be read from then, so what waits is at most
    ``hold`` bytes and one read.
    """

    def __init__(self, size, hold=0, ready=True, weigh=len):
        self.window = CreditWindow(size)
        self.hold = hold
        self.ready = ready
        self._weigh = weigh
        self._waiting = deque()
        self.waiting_bytes = 0

    def __len__(self):
        return len(self._waiting)

    def push(self, items):
        for item in items:
            self._waiting.append(item)
            self.waiting_bytes += self._weigh(item)

    @property
    def sendable(self):
        """
        True when ``pop`` may be called: something waits, the receiver is
        ready, and the window has credit.
        """
        return bool(self._waiting) and self.ready and self.window.can_send

    def pop(self):
        """
        The next item, counted as sent.
        """
        if not self.sendable:
            raise WindowExceeded("nothing may be sent now")
        item = self._waiting.popleft()
        self.waiting_bytes -= self._weigh(item)
        self.window.sent()
        return item

    def acked(self):
        self.window.acked()

    def clear(self):
        """
        Forget what waits (its receiver is gone); what is outstanding stays
        counted until answered.
        """
        self._waiting.clear()
        self.waiting_bytes = 0

    @property
    def paused(self):
        return self.window.full or self.waiting_bytes > self.hold

    @property
    def idle(self):
        """
        Nothing waits and nothing is unacknowledged.
        """
        return not self._waiting and self.window.outstanding == 0
