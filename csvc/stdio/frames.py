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
    Incremental parser: ``feed(data)`` returns the complete frames as a list
    of ``(stream, payload)``; a partial frame waits for more bytes.  At most
    one frame (``MAX_FRAME``) is buffered.
    """

    def __init__(self, max_frame=MAX_FRAME):
        self._buffer = bytearray()
        self._max_frame = max_frame

    def feed(self, data):
        self._buffer += data
        frames = []
        view = self._buffer
        pos = 0
        while len(view) - pos >= HEADER_SIZE:
            stream, size = _HEADER.unpack_from(view, pos)
            if stream > 3:
                raise FrameError(f"invalid stream id {stream} in frame header")
            if size > self._max_frame:
                raise FrameError(f"frame of {size} bytes exceeds {self._max_frame}")
            end = pos + HEADER_SIZE + size
            if len(view) < end:
                break
            frames.append((stream, bytes(view[pos + HEADER_SIZE:end])))
            pos = end
        del self._buffer[:pos]
        return frames

    @property
    def pending(self):
        """
        Bytes held for a frame not yet complete.
        """
        return len(self._buffer)
