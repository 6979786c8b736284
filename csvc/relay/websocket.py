"""
Attach over WebSocket: the protocol adapter between a client and an
``AttachSession`` (output) and the container's stdin (through the agent).

Messages are binary.  With the subprotocol ``channel.csvc.v1`` each message
starts with a channel byte (0 stdin, 1 stdout, 2 stderr, 3 status JSON, 4
resize JSON, 255 close stdin); without one, the stream is the raw terminal
bytes both ways.
"""

import json
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.logger import Logger

from csvc.fastpath.frames import FastFrames
from csvc.wire.commands import STDIN_WINDOW, stdin_pieces
from csvc.wire.pump import Pump
from csvc.relay.session import AttachSession

SUBPROTOCOL = "channel.csvc.v1"

STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE_STDIN = 0, 1, 2, 3, 4, 255

#: Largest message a client may send (stdin): a 1 MiB paste and its
#: channel byte (the browser's terminal sends larger ones in pieces).  It
#: reaches the agent in pieces of ``STDIN_PIECE``.  Output messages are at
#: most one chunk (CHUNK_SIZE) plus the channel byte: autobahn's limit,
#: which covers both ways, is for what clients send; output written by
#: ``_send_binary`` is bounded by the chunk instead.
MAX_CLIENT_MESSAGE = 1024 * 1024 + 1

#: The largest message (one frame) written to a client autobahn's way.
MAX_FRAME = 64 * 1024

#: The longest resize body taken (``{"cols": C, "rows": R}`` with room): a
#: longer one is refused before it is parsed, so its depth is bounded too.
RESIZE_MAX = 256

# Not the protocol's own ``log``: autobahn's (txaio's) sits there, filtered
# to info; a Logger there would print every frame at debug level.
_log = Logger()


def origin_allowed(origin, host, secure, allowed_origins=()):
    """
    As Nova's console proxy: a browser's Origin must name the host it
    connected to (or one of ``allowed_origins``), with the matching scheme.
    Clients that send no Origin (not browsers) pass.
    """
    if not origin:
        return True
    parts = urlsplit(origin)
    expected_scheme = "https" if secure else "http"
    if parts.scheme not in (expected_scheme, "wss" if secure else "ws"):
        return False
    if parts.netloc.lower() == (host or "").lower():
        return True
    return origin.lower().rstrip("/") in {o.lower().rstrip("/") for o in allowed_origins}


_CHANNEL_BYTE = [bytes((i,)) for i in range(256)]


class AttachProtocol(FastFrames, WebSocketServerProtocol):
    """
    One attached client.  ``context`` (set by the factory) carries what the
    HTTP side decided: the container, the streams, stdin, where to start,
    and the service objects.
    """

    @property
    def project_id(self):
        """
        Whose session this is (the relay counts them against the quota).
        """
        return getattr(self.factory.context, "project_id", None)

    def onConnect(self, request):
        context = self.factory.context
        origin = request.headers.get("origin")
        host = request.headers.get("host")
        if not origin_allowed(origin, host, context.secure, context.allowed_origins):
            raise ConnectionDeny(403, f"origin {origin} is not allowed")
        self._channels = SUBPROTOCOL in request.protocols and not context.raw_only
        return SUBPROTOCOL if self._channels else None

    def onOpen(self):
        context = self.factory.context
        self._context = context
        # Stdin's pieces within the window, the client paused while it is
        # full: what waits is at most what the client sent before the pause
        # (its messages are bounded).
        self._stdin_pump = Pump(self._write_stdin, self.transport, STDIN_WINDOW, failed=self._stdin_failed)
        self._idle_call = None
        # Looked up once: _touch runs for every message.
        self._idle_timeout = getattr(context, "idle_timeout", None)
        self._clock = context.clock
        self._touch()
        self._session = context.open_session(self)
        self.registerProducer(self._session, True)
        context.opened(self)
        self._session.start()

    def _touch(self):
        """
        Traffic either way: the idle timeout starts again.  Called for every
        message, so it only notes the time; the timer, when it fires, looks
        at it and waits again for what is left.
        """
        if not self._idle_timeout:
            return
        self._last_traffic = self._clock.seconds()
        if self._idle_call is None or not self._idle_call.active():
            self._idle_call = self._clock.callLater(self._idle_timeout, self._idle_check)

    def _idle_check(self):
        left = self._last_traffic + self._idle_timeout - self._clock.seconds()
        if left > 0:
            self._idle_call = self._clock.callLater(left, self._idle_check)
        else:
            self._idle_expired()

    def _idle_expired(self):
        self._status_error("idle timeout: no traffic either way")
        self.sendClose(4000, "idle timeout")

    # -- output ------------------------------------------------------------

    def output(self, stream, data):
        self._touch()
        if self._channels:
            self._send_binary(_CHANNEL_BYTE[stream], data)
        else:
            self._send_binary(b"", data)

    def _send_binary(self, prefix, data):
        """
        One binary message, ``prefix + data``: written by the fast path when
        it can (``FastFrames.send_now``), else with autobahn's
        ``sendMessage``, in messages of at most ``MAX_FRAME`` bytes, each
        with the prefix.
        """
        if self.send_now(prefix, data):
            return
        step = max(1, min(self.maxMessagePayloadSize or MAX_FRAME, MAX_FRAME) - len(prefix))
        for start in range(0, len(data) or 1, step):
            self.sendMessage(prefix + data[start:start + step], isBinary=True)

    def finished(self, exit_code, reason):
        status = {"exit_code": exit_code}
        if reason:
            status["reason"] = reason
        if self._channels:
            self.sendMessage(bytes((STATUS,)) + json.dumps(status).encode(), isBinary=True)
        self.unregisterProducer()
        close_reason = f"exit_code={exit_code}" if exit_code is not None else (reason or "")
        self.sendClose(1000, close_reason[:120])

    # -- input -------------------------------------------------------------

    def onMessage(self, payload, isBinary):
        self._touch()
        if not self._channels:
            self._stdin(payload)
            return
        if not payload:
            return
        channel, body = payload[0], payload[1:]
        if channel == STDIN:
            self._stdin(body)
        elif channel == RESIZE:
            self._resize(body)
        elif channel == CLOSE_STDIN:
            self._close_stdin()
        else:
            self._status_error(f"unknown channel {channel}")

    def _status_error(self, message):
        if self._channels:
            self.sendMessage(bytes((STATUS,)) + json.dumps({"error": message}).encode(), isBinary=True)

    def _stdin(self, data):
        if not data:
            return
        if not self._context.stdin:
            self._status_error("stdin is not attached (attach with stdin=true to an interactive container)")
            return
        self._stdin_pump.feed(stdin_pieces(data))

    def _write_stdin(self, data):
        return self._context.write_stdin(data)

    def _stdin_failed(self, failure):
        _log.info("stdin of {uuid} failed: {why}", uuid=self._context.container_uuid, why=failure.getErrorMessage())
        self._status_error(f"stdin failed: {failure.getErrorMessage()}")

    def _close_stdin(self):
        if not self._context.stdin:
            return
        # Once what came before has been taken; stdin sent after is dropped.
        self._stdin_pump.end(self._context.close_stdin)

    def _resize(self, body):
        try:
            if len(body) > RESIZE_MAX:
                raise ValueError("too long")
            size = json.loads(body)
            cols, rows = int(size["cols"]), int(size["rows"])
            if not (0 < cols <= 10000 and 0 < rows <= 10000):
                raise ValueError("out of range")
        except (ValueError, KeyError, TypeError, OverflowError):
            # OverflowError: Python's JSON takes Infinity, which int() refuses.
            self._status_error('resize takes {"cols": C, "rows": R}, positive integers')
            return
        d = self._context.resize(rows, cols)
        d.addErrback(lambda f: self._status_error(f"resize failed: {f.getErrorMessage()}"))

    # -- the end -----------------------------------------------------------

    def onClose(self, wasClean, code, reason):
        idle = getattr(self, "_idle_call", None)
        if idle is not None and idle.active():
            idle.cancel()
        session = getattr(self, "_session", None)
        if session is not None:
            session.stop()
            self._context.closed(self)


class AttachContext:
    """
    What one attach was granted, and the calls its protocol makes.
    """

    def __init__(self, containers, journal, store, row, streams, stdin, next_seq, *, clock, throttle=None,
                 secure=False, allowed_origins=(), registry=None, raw_only=False, idle_timeout=None):
        self.journal = journal
        self.store = store
        self.container_uuid = row["uuid"]
        self.project_id = row.get("project_id")
        self.streams = streams
        self.stdin = stdin and row["interactive"]
        self.next_seq = next_seq
        self.throttle = throttle
        self.secure = secure
        self.allowed_origins = allowed_origins
        # Docker's attach/ws: raw bytes both ways, no channel subprotocol.
        self.raw_only = raw_only
        # Seconds without traffic either way before the relay closes (4000).
        self.idle_timeout = idle_timeout
        self.clock = clock
        self._containers = containers
        self._row = row
        self._registry = registry

    def open_session(self, sink):
        """
        The producer of the client's output (``start``, ``stop``, and
        ``sink.output``/``sink.finished`` calls): here the container's
        journal; an exec's context gives its own.
        """
        return AttachSession(
            self.journal,
            self.store,
            self.container_uuid,
            self.streams,
            self.next_seq,
            sink,
            throttle=self.throttle,
        )

    def write_stdin(self, data):
        return self._containers.write_stdin(self._row, data)

    def close_stdin(self):
        return self._containers.close_stdin(self._row)

    def resize(self, rows, cols):
        return self._containers.resize(self._row, rows, cols)

    def opened(self, protocol):
        if self._registry is not None:
            self._registry.add(protocol)

    def closed(self, protocol):
        if self._registry is not None:
            self._registry.discard(protocol)


def attach_factory(context):
    """
    A WebSocket factory for one attach (the resource builds one protocol).
    """
    factory = WebSocketServerFactory()
    factory.protocol = AttachProtocol
    factory.context = context
    factory.setProtocolOptions(
        maxFramePayloadSize=MAX_CLIENT_MESSAGE,
        maxMessagePayloadSize=MAX_CLIENT_MESSAGE,
        autoPingInterval=20,
        # Pings queue behind buffered output: allow far more than a drain.
        autoPingTimeout=120,
        openHandshakeTimeout=10,
        closeHandshakeTimeout=5,
        # The Origin check is ours (origin_allowed), done in onConnect.
        allowedOrigins=["*"],
    )
    factory.noisy = False
    return factory
