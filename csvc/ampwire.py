"""
A faster reader and writer of AMP's wire format, for both ends of agent
links.

Reading: AMP parses boxes key by key and value by value through
``Int16StringReceiver`` and ``StatefulStringProtocol``: for an Output box
(seven keys) that is some fifteen method calls, each slicing the receive
buffer, and the buffer is concatenated again on every read.  Profiled at
130 MB/s of output through the relay, it was about a third of the reactor's
time.  ``FastBoxes.dataReceived`` reads boxes in one loop over the buffer
instead, keeps a box that is still arriving as pieces until its next value
can be complete (an Output box is up to 256 KiB: it is not joined again on
every read), and hands each box to ``ampBoxReceived`` exactly as AMP does.
Pieces of ``commands.Bytes`` values (keys with a dot) are handed over as
memoryviews of the receive buffer and joined once, by ``Bytes``.

Writing: ``sendBox`` sends a box's keys and values as they are, with
``csvc.sockwrite.write_now``, instead of joining them into one string that
the transport then copies again.

The wire format, its limits (keys up to 255 bytes; values up to 65,535 by
their 16-bit length) and what happens when a key is too long (the
connection is dropped, failing outstanding calls with ``TooLong``) are
AMP's own.

Only for protocols that never switch away from boxes (``StartTLS`` and
``ProtocolSwitchCommand`` hand the connection to something else mid-stream);
TLS on agent links wraps the whole connection instead.
"""

from struct import Struct

from twisted.protocols.amp import MAX_KEY_LENGTH, MAX_VALUE_LENGTH, AmpBox, TooLong

from csvc.sockwrite import write_now

_LENGTH = Struct("!H")
#: Values at least this long go out as their own piece, not copied.
_OWN_PIECE = 4096


class FastBoxes:
    """
    Mix in before ``amp.AMP``.
    """

    #: Received bytes not parsed yet (from the start of a key).
    _rx = b""
    #: Bytes received after ``_rx``, kept apart until there are enough.
    _more = None
    _more_len = 0
    #: ``_rx`` and ``_more`` together must reach this length before the
    #: next key or value can be parsed.
    _need = 0
    #: The box being parsed: its keys and values so far.
    _box = None

    def dataReceived(self, data):
        if self._rx:
            if len(self._rx) + self._more_len + len(data) < self._need:
                # A large value still coming: keep the pieces, join once.
                if self._more is None:
                    self._more = []
                self._more.append(data)
                self._more_len += len(data)
                return
            if self._more:
                self._more.append(data)
                data = b"".join(self._more)
                self._more = None
                self._more_len = 0
            buf = self._rx + data
        else:
            buf = data
        n = len(buf)
        view = memoryview(buf)
        i = 0
        box = self._box
        if box is None:
            box = AmpBox()
        receiver = self.boxReceiver
        while True:
            if i + 2 > n:
                need = i + 2
                break
            key_len = (buf[i] << 8) | buf[i + 1]
            if key_len == 0:
                i += 2
                receiver.ampBoxReceived(box)
                box = AmpBox()
                continue
            if key_len > MAX_KEY_LENGTH:
                self._rx = b""
                self._box = None
                self._keyLengthLimitExceeded = True
                self.transport.loseConnection()
                return
            key_end = i + 2 + key_len
            if key_end + 2 > n:
                need = key_end + 2
                break
            value_end = key_end + 2 + ((buf[key_end] << 8) | buf[key_end + 1])
            if value_end > n:
                need = value_end
                break
            key = buf[i + 2:key_end]
            # A piece of a ``commands.Bytes`` value: a view, joined there.
            box[key] = view[key_end + 2:value_end] if b"." in key else buf[key_end + 2:value_end]
            i = value_end
        self._box = box if box else None
        self._need = need - i
        self._rx = buf[i:] if i < n else b""

    def sendBox(self, box):
        if self._locked or self.transport is None or self._startingTLSBuffer is not None:
            # Switched, lost or starting TLS: AMP's own way (and errors).
            super().sendBox(box)
            return
        pieces = []
        small = bytearray()
        for key, value in box.items():
            if type(key) is str:
                raise TypeError(f"Unicode key not allowed: {key!r}")
            if type(value) is str:
                raise TypeError(f"Unicode value for key {key!r} not allowed: {value!r}")
            if len(key) > MAX_KEY_LENGTH:
                raise TooLong(True, True, key, None)
            n = len(value)
            if n > MAX_VALUE_LENGTH:
                raise TooLong(False, True, value, key)
            small += _LENGTH.pack(len(key))
            small += key
            small += _LENGTH.pack(n)
            if n >= _OWN_PIECE:
                pieces.append(small)
                pieces.append(value)
                small = bytearray()
            else:
                small += value
        small += b"\0\0"
        pieces.append(small)
        write_now(self.transport, pieces)
