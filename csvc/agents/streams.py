"""
The control plane's registry of streams an agent sends in numbered boxes
(an exec's ExecOutput, a download's DownloadChunk): which instance each is
on, the last box taken, and the receiver's side of its credit window.  A
box is refused (``OutputRefused``, and the agent drops the stream) when
its stream is unknown or on another instance, out of order, or beyond the
window; a taken box goes to the stream's *consumer*, whose answer is the
agent's acknowledgement.  ``agents/execs.py`` and ``agents/transfers.py``
are the two kinds, each with its own bound per project.
"""

from collections import OrderedDict

from twisted.internet.defer import maybeDeferred

from csvc.wire.commands import OutputRefused
from csvc.wire.credit import CreditWindow


class StreamRecord:
    def __init__(self, instance_uuid, consumer, project_id, window):
        self.instance_uuid = instance_uuid
        self.consumer = consumer
        self.project_id = project_id
        #: The last box taken.
        self.seq = 0
        #: The agent's boxes not yet answered: at most the window.
        self.credit = CreditWindow(window)


class StreamRegistry:
    """
    Streams by id.  A kind names its streams in refusals (``kind``) and may
    keep more per stream in its records and per project in ``_remove``.
    """

    kind = "stream"

    def __init__(self, window):
        self._window = window
        self._records = OrderedDict()

    def __len__(self):
        return len(self._records)

    def _remove(self, stream_id):
        return self._records.pop(stream_id, None)

    def _owned(self, instance_uuid, stream_id):
        record = self._records.get(stream_id)
        if record is None:
            raise OutputRefused(f"{self.kind} {stream_id} is unknown or no longer wanted")
        if record.instance_uuid != instance_uuid:
            raise OutputRefused(f"{self.kind} {stream_id} is not on this agent's instance")
        return record

    def _admit(self, record, stream_id, seq):
        """
        Refuse box ``seq`` unless it is the next and within the window.
        """
        if seq != record.seq + 1:
            raise OutputRefused(f"{self.kind} {stream_id}: chunk {seq} after {record.seq}")
        if not record.credit.can_send:
            raise OutputRefused(f"{self.kind} {stream_id}: more than {self._window} chunks unanswered")

    def _take(self, record, seq, output, *args):
        """
        Box ``seq`` (admitted) goes to ``output(*args)``; its answer returns
        the credit.
        """
        record.seq = seq
        record.credit.sent()

        def taken(result):
            record.credit.acked()
            return result

        return maybeDeferred(output, *args).addBoth(taken)

    def _lost(self, instance_uuid):
        """
        Remove and return the records of an instance whose agent is gone.
        """
        lost = [(stream_id, r) for stream_id, r in self._records.items() if r.instance_uuid == instance_uuid]
        for stream_id, _record in lost:
            self._remove(stream_id)
        return [record for _stream_id, record in lost]
