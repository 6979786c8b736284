"""
Docker's multiplexed stream framing (``application/vnd.docker.multiplexed-stream``).

Each frame is an 8-byte header ``[stream, 0, 0, 0, size (uint32 big-endian)]``
followed by ``size`` bytes.  Stream 0 is stdin, 1 stdout, 2 stderr, 3 a system
error.  This module has no I/O: feed it bytes, it returns frames.
"""

import struct

_HEADER = struct.Struct(">BxxxL")
HEADER_SIZE = _HEADER.size

#: Refuse frames larger than this rather than buffer without bound.
MAX_FRAME = 1024 * 1024


class FrameError(Exception):
    """
    The byte stream is not a valid multiplexed stream.
    """


def encode_frame(stream, data):
    """
    One frame carrying ``data`` on ``stream``.
    """
    return _HEADER.pack(stream, len(data)) + data


class FrameParser:
    """
    Incremental parser.  ``pieces(data)`` returns the payload bytes as they
    arrive, ``(stream, piece)`` in order, a frame's payload possibly in
    several pieces (memoryviews of ``data``: nothing is copied or held
    between calls but a header cut in two).  ``feed(data)`` returns complete
    frames, ``(stream, payload)``, holding a partial frame (at most
    ``MAX_FRAME``) until the rest comes.
    """

    def __init__(self, max_frame=MAX_FRAME):
        self._max_frame = max_frame
        self._header = bytearray()
        self._stream = 0
        self._left = 0
        #: feed(): the pieces of the frame being assembled
        self._frame = []
        self._frame_size = 0

    def _check(self, stream, size):
        if stream > 3:
            raise FrameError(f"invalid stream id {stream} in frame header")
        if size > self._max_frame:
            raise FrameError(f"frame of {size} bytes exceeds {self._max_frame}")

    def _parse(self, data):
        """
        ``(stream, piece, ends_frame)`` for ``data``.
        """
        out = []
        view = memoryview(data)
        pos, end = 0, len(view)
        while pos < end:
            if self._left:
                take = min(self._left, end - pos)
                self._left -= take
                out.append((self._stream, view[pos:pos + take], not self._left))
                pos += take
                continue
            if not self._header and end - pos >= HEADER_SIZE:
                stream, size = _HEADER.unpack_from(view, pos)
                pos += HEADER_SIZE
            else:
                need = HEADER_SIZE - len(self._header)
                self._header += view[pos:pos + need]
                pos += min(need, end - pos)
                if len(self._header) < HEADER_SIZE:
                    break
                stream, size = _HEADER.unpack(self._header)
                self._header.clear()
            self._check(stream, size)
            self._stream, self._left = stream, size
            if not size:
                out.append((stream, view[pos:pos], True))
        return out

    def pieces(self, data):
        return [(stream, piece) for stream, piece, _ends in self._parse(data) if piece]

    def feed(self, data):
        frames = []
        for stream, piece, ends in self._parse(data):
            self._frame.append(piece)
            self._frame_size += len(piece)
            if ends:
                frames.append((stream, b"".join(self._frame)))
                self._frame, self._frame_size = [], 0
            else:
                # Held past this call: a copy, not a view of the caller's data.
                self._frame[-1] = bytes(piece)
        return frames

    @property
    def pending(self):
        """
        Bytes held for a frame not yet complete (``feed``).
        """
        return len(self._header) + (HEADER_SIZE + self._frame_size if self._left or self._frame else 0)
