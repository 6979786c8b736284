"""
A faster reader of AMP's wire format, for the control plane's end of agent
links.

AMP parses boxes key by key and value by value through
``Int16StringReceiver`` and ``StatefulStringProtocol``: for an Output box
(seven keys) that is some fifteen method calls, each slicing the receive
buffer, and the buffer is concatenated again on every read.  Profiled at
130 MB/s of output through the relay, it was about a third of the reactor's
time.  ``FastBoxReceiver.dataReceived`` reads whole boxes in one loop over
the buffer instead and hands each to ``ampBoxReceived`` exactly as AMP does;
the wire format, its limits (keys up to 255 bytes; values up to 65,535 by
their 16-bit length) and what happens when a key is too long (the
connection is dropped, failing outstanding calls with ``TooLong``) are
AMP's own.

Only for protocols that never switch away from boxes (``StartTLS`` and
``ProtocolSwitchCommand`` hand the connection to something else mid-stream);
TLS on agent links wraps the whole connection instead.
"""

from twisted.protocols.amp import AmpBox

_MAX_KEY_LENGTH = 0xFF


class FastBoxReceiver:
    """
    Mix in before ``amp.AMP``.
    """

    _rx = b""

    def dataReceived(self, data):
        buf = self._rx + data if self._rx else data
        n = len(buf)
        start = 0
        receiver = self.boxReceiver
        while True:
            box = AmpBox()
            i = start
            complete = False
            while i + 2 <= n:
                key_len = (buf[i] << 8) | buf[i + 1]
                if key_len == 0:
                    i += 2
                    complete = True
                    break
                if key_len > _MAX_KEY_LENGTH:
                    self._rx = b""
                    self._keyLengthLimitExceeded = True
                    self.transport.loseConnection()
                    return
                key_end = i + 2 + key_len
                if key_end + 2 > n:
                    break
                value_len = (buf[key_end] << 8) | buf[key_end + 1]
                value_end = key_end + 2 + value_len
                if value_end > n:
                    break
                box[buf[i + 2:key_end]] = buf[key_end + 2:value_end]
                i = value_end
            if not complete:
                break
            start = i
            receiver.ampBoxReceived(box)
        self._rx = buf[start:] if start < n else b""
