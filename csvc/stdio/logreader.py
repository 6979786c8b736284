"""
Turning an engine's log stream into numbered, resumable output chunks.

The agent reads a container's output from the engine's durable log (Docker's
``logs`` endpoint with ``follow``), not from an attach socket, so that a
restarted agent can resume exactly where the store left off.  A *cursor* says
how far the output has been consumed:

- non-TTY containers: ``T|<timestamp>|<k>|<off>``: the ``k``-th log message
  (counted from 0) carrying exactly ``<timestamp>`` has been consumed up to
  byte ``off``.  The stream is read with ``timestamps=1&since=<timestamp>``;
  each multiplexed frame is one log message, ``<timestamp> <bytes>``.
- TTY containers: ``R|<n>``: ``n`` bytes of the raw stream have been consumed.
  The raw stream has no frame boundaries that survive timestamps, so it is
  re-read from the start and the first ``n`` bytes skipped.
- ``""``: nothing consumed yet.

``LogReader`` is sans-IO: ``feed(data)`` returns ``(stream, data, cursor)``
chunks of at most ``chunk_size`` bytes, merging consecutive bytes of one
stream, where ``cursor`` is the position just after the chunk.
"""

import re
from datetime import datetime, timezone

from csvc.stdio.frames import FrameParser

#: RFC 3339 with nanoseconds, as Docker writes it: 2026-11-26T01:25:24.812202554Z
_TS_LEN = 30
_TS_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{9}Z")


class CursorError(ValueError):
    pass


def parse_cursor(cursor):
    """
    ``(kind, fields)`` of a cursor string; kind is ``None`` for the start.
    """
    if not cursor:
        return None, ()
    parts = cursor.split("|")
    try:
        if parts[0] == "T" and len(parts) == 4 and _TS_PATTERN.fullmatch(parts[1]):
            fields = (parts[1], int(parts[2]), int(parts[3]))
            if min(fields[1:]) >= 0:
                return "T", fields
        if parts[0] == "R" and len(parts) == 2 and int(parts[1]) >= 0:
            return "R", (int(parts[1]),)
    except ValueError:
        pass
    raise CursorError(f"invalid output cursor {cursor!r}")


def since_param(cursor):
    """
    The ``since`` query value (Unix seconds with nanoseconds) to resume
    ``cursor`` from, or ``None`` to read from the start.
    """
    kind, fields = parse_cursor(cursor)
    if kind != "T":
        return None
    ts = fields[0]
    seconds = datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    nanos = ts[20:29] if len(ts) >= 29 and ts[19] == "." else "0"
    return f"{int(seconds.timestamp())}.{nanos.ljust(9, '0')}"


class LogReader:
    """
    Parse one read of a container's log stream, resuming from ``cursor``.
    """

    def __init__(self, tty, cursor="", chunk_size=32 * 1024):
        self._tty = tty
        self._chunk_size = chunk_size
        kind, fields = parse_cursor(cursor)
        if tty:
            if kind == "T":
                raise CursorError("a TTY container's cursor counts raw bytes")
            self._consumed = fields[0] if kind == "R" else 0
            self._skip = self._consumed
        else:
            if kind == "R":
                raise CursorError("a non-TTY container's cursor is a timestamp")
            self._frames = FrameParser()
            self._ts, self._k = "", -1
            self._resume = fields if kind == "T" else None
        self.cursor = cursor

    def feed(self, data):
        out = []
        if self._tty:
            self._feed_raw(data, out)
        else:
            for stream, payload in self._frames.feed(data):
                self._message(stream, payload, out)
        return out

    def _feed_raw(self, data, out):
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        for start in range(0, len(data), self._chunk_size):
            piece = data[start:start + self._chunk_size]
            self._consumed += len(piece)
            self.cursor = f"R|{self._consumed}"
            self._emit(out, 1, piece, self.cursor)

    def _message(self, stream, payload, out):
        if stream not in (1, 2):
            return
        ts = payload[:_TS_LEN].decode("ascii", "replace")
        body = payload[_TS_LEN + 1:]
        k = self._k + 1 if ts == self._ts else 0
        self._ts, self._k = ts, k
        skip = 0
        if self._resume is not None:
            r_ts, r_k, r_off = self._resume
            if ts < r_ts or (ts == r_ts and k < r_k):
                return
            self._resume = None
            if ts == r_ts and k == r_k:
                skip = r_off
                if skip >= len(body):
                    return
        if not body:
            self.cursor = f"T|{ts}|{k}|0"
            return
        offset = skip
        while offset < len(body):
            piece = body[offset:offset + self._chunk_size]
            offset += len(piece)
            self.cursor = f"T|{ts}|{k}|{offset}"
            self._emit(out, stream, piece, self.cursor)

    def _emit(self, out, stream, piece, cursor):
        if out and out[-1][0] == stream and len(out[-1][1]) + len(piece) <= self._chunk_size:
            out[-1] = (stream, out[-1][1] + piece, cursor)
        else:
            out.append((stream, piece, cursor))
