"""
The control plane's transfers: downloads the agents stream to HTTP clients
(export, archive get, changes, streamed stats) and uploads the control plane
streams to agents (archive put).

A download's chunks come as DownloadChunk boxes; the registry checks that the
agent's instance owns the transfer and that chunks come in order within the
window, and hands each to the transfer's *consumer*, whose answer is the
agent's acknowledgement.  ``ResponseDownload`` is the consumer that writes to
an HTTP response and is that response's push producer: while the client's
connection is backed up it holds its answers, the agent's window fills and the
agent stops reading the engine.  A consumer has ``output(data)`` (a Deferred,
or None, once taken; ``OutputRefused`` when no one wants it), ``ended(error)``
and ``failed(exc)`` (the agent is gone).
"""

import uuid as uuidlib
from collections import deque

from twisted.internet.defer import Deferred, fail, inlineCallbacks
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from csvc.agents.streams import StreamRecord, StreamRegistry
from csvc.wire.commands import (
    CHUNK_SIZE, TRANSFER_WINDOW, CancelDownload, CancelUpload, FinishUpload, OpenDownload, OpenUpload,
    OutputRefused, UploadChunk,
)
from csvc.wire.credit import CreditWindow
from csvc.wire.pump import HeldAnswers


class TooManyTransfers(Exception):
    """
    A project (or the whole service) has as many transfers open as it may.
    """


class TransferRecord(StreamRecord):
    def __init__(self, transfer_id, instance_uuid, consumer, project_id=None, window=TRANSFER_WINDOW):
        super().__init__(instance_uuid, consumer, project_id, window)
        self.transfer_id = transfer_id


class TransferRegistry(StreamRegistry):
    """
    The downloads in flight, by transfer id, and how many transfers
    (downloads and uploads) each project has open: at most
    ``max_per_project`` each and ``max_total`` in all, so that no project
    filling its share refuses another's; beyond, ``TooManyTransfers``.
    """

    max_per_project = 16
    max_total = 256
    kind = "transfer"

    def __init__(self, window=TRANSFER_WINDOW):
        super().__init__(window)
        #: project -> transfers open
        self._open = {}

    def open_count(self, project_id=None):
        """
        Transfers open, of one project or (None) of all.
        """
        return self._open.get(project_id, 0) if project_id is not None else sum(self._open.values())

    def hold(self, project_id):
        """
        Count one more transfer of ``project_id`` (``release`` it once
        over), or ``TooManyTransfers``.
        """
        in_use = self._open.get(project_id, 0)
        if in_use >= self.max_per_project:
            raise TooManyTransfers(
                f"the project has {in_use} transfers (copies, exports, streamed stats) open, "
                f"at most {self.max_per_project}: wait for one to end"
            )
        if self.open_count() >= self.max_total:
            raise TooManyTransfers(f"the service has {self.max_total} transfers open, its most: try again soon")
        self._open[project_id] = in_use + 1

    def release(self, project_id):
        left = self._open.get(project_id, 0) - 1
        if left > 0:
            self._open[project_id] = left
        else:
            self._open.pop(project_id, None)

    def register(self, instance_uuid, consumer, project_id=None):
        """
        A new transfer id whose chunks go to ``consumer``, counted against
        ``project_id``; ``TooManyTransfers`` when it has as many as it may.
        """
        self.hold(project_id)
        transfer_id = str(uuidlib.uuid4())
        self._records[transfer_id] = TransferRecord(transfer_id, instance_uuid, consumer, project_id, self._window)
        return transfer_id

    def _remove(self, transfer_id):
        record = self._records.pop(transfer_id, None)
        if record is not None:
            self.release(record.project_id)
        return record

    def discard(self, transfer_id):
        self._remove(transfer_id)

    def chunk(self, instance_uuid, transfer_id, seq, data):
        record = self._owned(instance_uuid, transfer_id)
        self._admit(record, transfer_id, seq)
        if len(data) > CHUNK_SIZE:
            raise OutputRefused(f"transfer {transfer_id}: a chunk of {len(data)} bytes is over {CHUNK_SIZE}")
        return self._take(record, seq, record.consumer.output, data)

    def end(self, instance_uuid, transfer_id, error):
        record = self._owned(instance_uuid, transfer_id)
        self._remove(transfer_id)
        record.consumer.ended(error or None)

    def instance_lost(self, instance_uuid, exc):
        for record in self._lost(instance_uuid):
            record.consumer.failed(exc)


@implementer(IPushProducer)
class ResponseDownload:
    """
    A download's consumer writing to an HTTP response (``request``), and the
    response's push producer.  Nothing is written before ``begin`` (the
    route sets status and headers once the agent answered the open); until
    then the chunks wait, at most a window of them.  ``transform`` maps each
    chunk before it is written; after a chunk for which ``is_last`` is true
    the response ends (the rest of the download is cancelled).
    ``on_cancel`` is called once if the response ends before the download
    does.  ``done`` fires when it is over, either way.
    """

    log = Logger()

    def __init__(self, request, on_cancel, transform=None, is_last=None):
        self._request = request
        self._on_cancel = on_cancel
        self._transform = transform
        self._is_last = is_last
        self._begun = False
        self._pending = deque()  # (data, Deferred) before begin: at most a window
        self._answers = HeldAnswers()  # held while paused: at most a window
        self.gone = False
        self.over = False
        self.done = Deferred()
        request.notifyFinish().addErrback(self._client_gone)

    def begin(self):
        if self.gone or self.over or self._begun:
            return
        self._begun = True
        self._request.registerProducer(self, True)
        pending, self._pending = self._pending, deque()
        for data, d in pending:
            self._write(data).chainDeferred(d)

    def _write(self, data):
        out = self._transform(data) if self._transform is not None else data
        if out:
            self._request.write(out)
        if self._is_last is not None and self._is_last(data):
            self.close()
        if self.over:
            return fail(OutputRefused("the response is complete"))
        return self._answers.answer()

    def close(self):
        """
        End the response completely before the download ends: the agent
        stops reading the engine.
        """
        if self.gone or self.over:
            return
        self.over = True
        self._release(OutputRefused("the response is complete"))
        self._unregister()
        self._cancel()
        self.done.callback(None)

    def _unregister(self):
        if not self._begun:
            return
        self._begun = False
        if self._request.channel is not None:
            self._request.unregisterProducer()
        else:
            # The connection is gone, and the channel with it.
            self._request.producer = None

    def _cancel(self):
        on_cancel, self._on_cancel = self._on_cancel, None
        if on_cancel is not None:
            on_cancel()

    # -- consumer ----------------------------------------------------------

    def output(self, data):
        if self.gone or self.over:
            raise OutputRefused("the client went away")
        if not self._begun:
            d = Deferred()
            self._pending.append((data, d))
            return d
        return self._write(data)

    def ended(self, error):
        if self.gone or self.over:
            return
        self.over = True
        self._release(None)
        self._unregister()
        if error:
            self.log.info("a download broke off: {why}", why=error)
            transport = getattr(self._request.channel, "transport", None)
            if transport is not None:
                # The client must see an incomplete body, not a complete one.
                (getattr(transport, "abortConnection", None) or transport.loseConnection)()
        self.done.callback(error)

    def failed(self, exc):
        self.ended(str(exc) or exc.__class__.__name__)

    # -- producer ----------------------------------------------------------

    def pauseProducing(self):
        self._answers.pause()

    def resumeProducing(self):
        self._answers.resume()

    def stopProducing(self):
        self._client_gone(None)

    def _release(self, error):
        self._answers.release(error)
        pending, self._pending = self._pending, deque()
        for _data, d in pending:
            if error is None:
                d.callback(None)
            else:
                d.errback(error)

    def _client_gone(self, _reason):
        if self.gone or self.over:
            return
        self.gone = True
        self._release(OutputRefused("the client went away"))
        self._unregister()
        self._cancel()
        self.done.callback("the client went away")


class Downloads:
    """
    Open downloads from instances' agents into HTTP responses.
    """

    log = Logger()

    def __init__(self, hub):
        self._hub = hub

    @inlineCallbacks
    def open(self, row, kind, options, request, transform=None, is_last=None):
        """
        Ask the container's agent for a download into ``request``; fires
        with ``(info, consumer)`` once the agent answered (the caller sets
        the response's headers, then ``consumer.begin()``), or fails with
        the agent's error (nothing is written then).
        """
        registry = self._hub.transfers
        instance = row["instance_uuid"]
        holder = {}

        def cancel():
            transfer_id = holder.get("id")
            registry.discard(transfer_id)
            d = self._hub.call(instance, CancelDownload, transfer_id=transfer_id)
            d.addErrback(lambda f: self.log.info("cancelling transfer {id}: {why}", id=transfer_id,
                                                 why=f.getErrorMessage()))

        consumer = ResponseDownload(request, cancel, transform, is_last)
        transfer_id = holder["id"] = registry.register(instance, consumer, row["project_id"])
        try:
            result = yield self._hub.call(instance, OpenDownload, transfer_id=transfer_id, uuid=row["uuid"], kind=kind,
                                          options=options)
        except Exception:
            registry.discard(transfer_id)
            consumer.over = True
            raise
        return result["info"], consumer


@inlineCallbacks
def upload(hub, row, source, length, options, window=TRANSFER_WINDOW, chunk_size=CHUNK_SIZE):
    """
    Send ``length`` bytes read from the file ``source`` to the container's
    agent in chunks, at most ``window`` unanswered, to be extracted as
    ``options`` say; fires once the engine answered.  Cancelling it (the
    client went away) cancels the upload on the agent.
    """
    instance = row["instance_uuid"]
    transfer_id = str(uuidlib.uuid4())
    registry = hub.transfers
    registry.hold(row["project_id"])
    try:
        yield hub.call(instance, OpenUpload, transfer_id=transfer_id, uuid=row["uuid"], length=length,
                       options=options)
        try:
            yield _send_chunks(hub, instance, transfer_id, source, length, window, chunk_size)
            yield hub.call(instance, FinishUpload, transfer_id=transfer_id)
        except BaseException:
            d = hub.call(instance, CancelUpload, transfer_id=transfer_id)
            d.addErrback(lambda f: None)
            raise
    finally:
        registry.release(row["project_id"])


def _send_chunks(hub, instance, transfer_id, source, length, window, chunk_size):
    """
    Fires once every chunk is answered; fails with the first failure.
    """
    done = Deferred(lambda d: state.update(cancelled=True))
    state = {"sent": 0, "cancelled": False, "eof": False}
    credit = CreditWindow(window)

    def pump():
        while not done.called and not state["eof"] and credit.can_send:
            try:
                data = source.read(min(chunk_size, length - state["sent"]))
            except (OSError, ValueError) as exc:
                # twisted.web closes the body's file when the client goes.
                done.errback(exc)
                return
            if not data:
                state["eof"] = True
                break
            state["sent"] += len(data)
            credit.sent()
            d = hub.call(instance, UploadChunk, transfer_id=transfer_id, data=data)
            d.addCallbacks(answered, failed)
        if state["eof"] and credit.outstanding == 0 and not done.called:
            if state["sent"] != length:
                done.errback(ValueError(f"the body ended after {state['sent']} of {length} bytes"))
                return
            done.callback(None)

    def answered(_):
        credit.acked()
        pump()

    def failed(failure):
        credit.acked()
        if not done.called:
            done.errback(failure)

    if length == 0:
        state["eof"] = True
    pump()
    return done
