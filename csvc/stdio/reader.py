"""
Turning an engine's output stream into numbered, resumable output chunks.

The agent reads a container's output from one of two engine streams carrying
the same bytes:

- the *attach* stream, opened before the agent starts the container: every
  byte as soon as the process writes it (partial lines included), which
  interactive terminals need;
- the engine's durable *log*, read from its start: used to recover after the
  agent itself restarted, or when the engine started the container on its own
  (restart policy), since an attach opened after the start may miss bytes.
  Docker's log splits output at newlines (or 16 KiB), so it is slower to show
  a partial line, but it holds every byte.

Both carry each stream's bytes in the same order, so a *cursor* counting the
bytes consumed per stream is a position in either:  ``C|<stdout>|<stderr>``
(a TTY container has only stdout).  Reading the log with a cursor skips that
many bytes of each stream; reading an attach stream continues the counts.

``OutputReader`` is sans-IO: ``feed(data)`` returns ``(stream, data, cursor)``
chunks of at most ``chunk_size`` bytes, consecutive bytes of one stream merged,
``cursor`` being the position just after the chunk.
"""

from csvc.wire.commands import CHUNK_SIZE
from csvc.stdio.frames import FrameParser


class CursorError(ValueError):
    pass


def parse_cursor(cursor):
    """
    ``(stdout, stderr)`` bytes consumed, from a cursor string ("" = none).
    """
    if not cursor:
        return 0, 0
    parts = cursor.split("|")
    if len(parts) == 3 and parts[0] == "C" and parts[1].isdigit() and parts[2].isdigit():
        return int(parts[1]), int(parts[2])
    raise CursorError(f"invalid output cursor {cursor!r}")


def format_cursor(counts):
    return f"C|{counts[0]}|{counts[1]}"


class OutputReader:
    """
    Parse one engine stream of a container's output.

    ``tty``: the stream is raw bytes (all stdout), else Docker's multiplexed
    frames.  ``skip``: the stream starts at the beginning of the output (the
    log), so the bytes the cursor counts are dropped; otherwise (an attach
    opened before the start) the stream continues where the cursor is.
    """

    def __init__(self, tty, cursor="", skip=False, chunk_size=CHUNK_SIZE):
        self._tty = tty
        self._chunk_size = chunk_size
        self._counts = list(parse_cursor(cursor))
        self._skip = list(self._counts) if skip else [0, 0]
        self._frames = None if tty else FrameParser()

    @property
    def cursor(self):
        return format_cursor(self._counts)

    def feed(self, data):
        # Chunks being filled: [stream, [pieces], size, cursor]; the pieces
        # are joined once at the end, not copied again for every frame (a
        # read of many small frames would be quadratic otherwise).
        out = []
        if self._tty:
            self._take(1, data, out)
        else:
            # Payload pieces as they arrive (views of ``data``): joined once
            # below, into their chunk.
            for stream, payload in self._frames.pieces(data):
                if stream in (1, 2):
                    self._take(stream, payload, out)
        return [(stream, b"".join(parts), cursor) for stream, parts, _size, cursor in out]

    def _take(self, stream, data, out):
        index = stream - 1
        if self._skip[index]:
            dropped = min(self._skip[index], len(data))
            self._skip[index] -= dropped
            data = data[dropped:]
        # Fill the last chunk of the same stream up to the chunk size before
        # starting another, splitting pieces where they cross it: Docker's
        # frames are 32 KiB, so whole-piece merging never made two into one.
        while data:
            last = out[-1] if out else None
            if last is None or last[0] != stream or last[2] >= self._chunk_size:
                last = [stream, [], 0, ""]
                out.append(last)
            room = self._chunk_size - last[2]
            piece, data = data[:room], data[room:]
            self._counts[index] += len(piece)
            last[1].append(piece)
            last[2] += len(piece)
            last[3] = format_cursor(self._counts)
