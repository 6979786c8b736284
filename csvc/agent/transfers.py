"""
Transfers on the agent: byte streams between a container's engine and the
control plane that do not fit one AMP value.

A *download* (export, archive get, changes, streamed stats) is the engine's
response body read by an ``OutputFollower``: chunks of at most
``CHUNK_SIZE`` go out as DownloadChunk boxes, at most ``TRANSFER_WINDOW``
unanswered, and once a chunk's worth waits for the window the engine's
stream is paused (so a client that stops reading stops this agent reading
the engine).  DownloadEnd
follows once every chunk is answered.

An *upload* (archive put) is the body of a request to the engine, produced
from UploadChunk boxes: a chunk is answered once the engine's connection took
it, which is the control plane's window.
"""

from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web.client import ResponseDone
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from csvc.wire import commands
from csvc.wire.pump import HeldAnswers
from csvc.agent.output import OutputFollower

#: What a download may be of.
KINDS = ("export", "archive", "changes", "stats")


class RawChunks:
    """
    An ``OutputReader`` for bytes that mean nothing to the agent: chunks of
    at most ``chunk_size``, as they come.
    """

    cursor = ""

    def __init__(self, chunk_size=commands.CHUNK_SIZE):
        self._chunk_size = chunk_size

    def feed(self, data):
        size = self._chunk_size
        return [(1, data[i:i + size], "") for i in range(0, len(data), size)]


class LineTooLong(ValueError):
    pass


class LineChunks:
    """
    An ``OutputReader`` for a stream of JSON lines (the engine's stats): one
    chunk per complete line, at most ``limit`` bytes (a longer one is an
    error, not a split document).
    """

    cursor = ""

    def __init__(self, limit=commands.CHUNK_SIZE):
        self._limit = limit
        self._partial = b""

    def feed(self, data):
        self._partial += data
        *lines, self._partial = self._partial.split(b"\n")
        if len(self._partial) > self._limit or any(len(line) + 1 > self._limit for line in lines):
            raise LineTooLong(f"a line of the engine's stream is longer than {self._limit} bytes")
        return [(1, line + b"\n", "") for line in lines if line.strip()]


class DownloadFollower(OutputFollower):
    """
    An ``OutputFollower`` that remembers whether the engine's stream ended
    cleanly (``error`` is None then).
    """

    error = None

    def connectionLost(self, reason):
        if not reason.check(ResponseDone):
            self.error = reason.getErrorMessage() or reason.type.__name__
        super().connectionLost(reason)


class Downloads:
    """
    The agent's open downloads, by the control plane's transfer id.
    """

    log = Logger()

    def __init__(self, engine, call, window=commands.TRANSFER_WINDOW):
        self._engine = engine
        self._call = call
        self._window = window
        self._followers = {}

    def __len__(self):
        return len(self._followers)

    @inlineCallbacks
    def open(self, transfer_id, uuid, kind, options):
        if kind not in KINDS:
            raise commands.InvalidSpec(f"unknown download kind {kind!r}")
        if transfer_id in self._followers:
            raise commands.EngineError(f"transfer {transfer_id} is already open")

        def send(seq, stream, data, cursor):
            return self._call(commands.DownloadChunk, transfer_id=transfer_id, seq=seq, data=data)

        reader = LineChunks() if kind == "stats" else RawChunks()
        follower = DownloadFollower(send, reader, 0, window=self._window)
        self._followers[transfer_id] = follower
        follower.done.addCallbacks(
            self._ended, self._failed, callbackArgs=(transfer_id, follower), errbackArgs=(transfer_id, follower)
        )
        try:
            info = yield self._engine.download(uuid, kind, options, follower)
        except Exception:
            if self._followers.get(transfer_id) is follower:
                del self._followers[transfer_id]
            raise
        return info

    def cancel(self, transfer_id):
        follower = self._followers.pop(transfer_id, None)
        if follower is not None:
            follower.stop()

    def disconnected(self):
        followers, self._followers = self._followers, {}
        for follower in followers.values():
            follower.stop()

    def _ended(self, last_seq, transfer_id, follower):
        if self._followers.get(transfer_id) is not follower:
            return None  # cancelled: the control plane asked for the end
        del self._followers[transfer_id]
        return self._report(transfer_id, follower.error or "")

    def _failed(self, failure, transfer_id, follower):
        if self._followers.get(transfer_id) is not follower:
            return None
        del self._followers[transfer_id]
        follower.stop()
        return self._report(transfer_id, failure.getErrorMessage() or "the download broke off")

    def _report(self, transfer_id, error):
        d = self._call(commands.DownloadEnd, transfer_id=transfer_id, error=error)
        d.addErrback(lambda f: self.log.info("end of transfer {id} not reported: {why}", id=transfer_id,
                                             why=f.getErrorMessage()))
        return d


@implementer(IBodyProducer, IPushProducer)
class UploadBody:
    """
    The body of an engine request, written as UploadChunk boxes arrive.
    ``write`` fires once the engine's connection took the bytes (at once
    unless the transport paused this producer).  If the engine answers (or
    the connection drops) before the body is complete, further bytes are
    dropped: the answer says what happened.
    """

    def __init__(self, length):
        self.length = length
        self._consumer = None
        self._stopped = False
        # Answers held while the engine's connection is backed up: at most
        # the control plane's window.
        self._answers = HeldAnswers()
        self._finished = Deferred()
        #: fires once the engine's connection asks for the body
        self.ready = Deferred()

    def startProducing(self, consumer):
        self._consumer = consumer
        if not self.ready.called:
            self.ready.callback(None)
        return self._finished

    def write(self, data):
        if self._stopped or self._finished.called:
            return succeed(None)
        self._consumer.write(data)
        return self._answers.answer()

    def finish(self):
        if not self._stopped and not self._finished.called:
            self._finished.callback(None)

    def pauseProducing(self):
        self._answers.pause()

    def resumeProducing(self):
        self._answers.resume()

    def stopProducing(self):
        self._stopped = True
        self._answers.release()


class Upload:
    def __init__(self, body, answer):
        self.body = body
        self.answer = answer


class Uploads:
    """
    The agent's open uploads, by the control plane's transfer id.
    """

    def __init__(self, engine):
        self._engine = engine
        self._uploads = {}

    def __len__(self):
        return len(self._uploads)

    @inlineCallbacks
    def open(self, transfer_id, uuid, length, options):
        if transfer_id in self._uploads:
            raise commands.EngineError(f"transfer {transfer_id} is already open")
        if length < 0:
            raise commands.InvalidSpec("an upload's length cannot be negative")
        body = UploadBody(length)
        answer = self._engine.upload(uuid, options, body)
        upload = Upload(body, answer)
        self._uploads[transfer_id] = upload
        # The engine may refuse before it asks for the body (a missing
        # container, a bad path): that is the open's answer.
        opened = Deferred()

        def settle(result):
            if not opened.called:
                opened.callback(None)
            return result

        def early(failure):
            if not opened.called:
                opened.errback(failure)
                return None
            return failure

        answer.addCallbacks(settle, early)
        body.ready.addCallback(settle)
        try:
            yield opened
        except Exception:
            self._uploads.pop(transfer_id, None)
            raise

    def _upload(self, transfer_id):
        upload = self._uploads.get(transfer_id)
        if upload is None:
            raise commands.NoSuchTransfer(f"no open upload {transfer_id} on this agent")
        return upload

    def write(self, transfer_id, data):
        try:
            return self._upload(transfer_id).body.write(data)
        except commands.NoSuchTransfer:
            return fail()

    @inlineCallbacks
    def finish(self, transfer_id):
        upload = self._upload(transfer_id)
        upload.body.finish()
        try:
            yield upload.answer
        finally:
            self._uploads.pop(transfer_id, None)

    def cancel(self, transfer_id):
        upload = self._uploads.pop(transfer_id, None)
        if upload is not None:
            _drop(upload.answer)

    def disconnected(self):
        uploads, self._uploads = self._uploads, {}
        for upload in uploads.values():
            _drop(upload.answer)


def _drop(answer):
    answer.addErrback(lambda f: None)
    answer.cancel()
