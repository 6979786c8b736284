"""
WebSocket frames of attach sessions written and read around autobahn's
machinery: the fast path's (``csvc.fastpath``), through autobahn's
private state (``_dataReceived``, ``_perMessageCompress``, ``send_state``,
``send_queue``, ``current_frame``, ``inside_message``...).  With the switch
off, ``FastFrames`` leaves everything to autobahn: ``send_now`` declines
and the protocol sends with ``sendMessage``; received bytes go to
autobahn's own ``dataReceived``.
"""

import struct

from csvc.fastpath import SWITCH
from csvc.fastpath.sockets import write_now

#: Server-to-client frame headers (RFC 6455 5.2: FIN, binary, unmasked).
_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")


class FastFrames:
    """
    Mix in before ``WebSocketServerProtocol``; the protocol handles whole
    messages in ``onMessage``.
    """

    def send_now(self, prefix, data):
        """
        Write one binary message, ``prefix + data``, as one frame, header
        and payload without joining them, in the usual case (the fast path
        on, the connection open, no compression, no fragmentation, nothing
        queued); autobahn's ``sendMessage`` would copy the payload and
        format debug strings for every frame.  False when not written (the
        caller sends it autobahn's way).
        """
        n = len(prefix) + len(data)
        if (
            not SWITCH.on
            or self.state != self.STATE_OPEN
            or self._perMessageCompress is not None
            or self.send_state != self.SEND_STATE_GROUND
            or self.send_queue
            or 0 < self.autoFragmentSize < n
        ):
            return False
        if n < 126:
            header = bytes((0x82, n))
        elif n < 65536:
            header = _HEADER_16.pack(0x82, 126, n)
        else:
            header = _HEADER_64.pack(0x82, 127, n)
        write_now(self.transport, [header + prefix, data])
        return True

    def dataReceived(self, data):
        if not SWITCH.on:
            super().dataReceived(data)
            return
        # autobahn's version only adds a debug log line whose arguments it
        # builds on every read, disabled or not (``hltype``/``hlval``: four
        # ``click.style`` calls, a fifth of a keystroke's time in the control
        # plane's main thread under cProfile).
        self._dataReceived(data)

    def _dataReceived(self, data):
        """
        Keystrokes are most of what clients send: small binary messages, one
        frame each.  While autobahn is between frames, such frames are read
        here and handed to ``onMessage`` (bench/hops.py: 22 us per 2-byte
        message through autobahn's parser and callbacks, 11-16 us here, once
        on every keystroke's path).  Anything else (control frames, text,
        fragments, long or oversized frames, a frame cut by the read) goes
        to autobahn from there on, as before.  (With the switch off,
        autobahn's ``dataReceived`` calls this too: all goes to autobahn.)
        """
        if (
            SWITCH.on
            and self.state == self.STATE_OPEN
            and not self.data
            and self.current_frame is None
            and not self.inside_message
            and not self.logOctets
            and not self.logFrames
        ):
            data = self._simple_frames(data)
            if not data:
                return
        super()._dataReceived(data)

    def _simple_frames(self, data):
        """
        Deliver the complete, masked, unfragmented binary frames of up to
        65,535 bytes at the start of ``data``; return what is left.
        """
        n = len(data)
        i = 0
        limit = self.maxMessagePayloadSize
        while i + 6 <= n and self.state == self.STATE_OPEN:
            if data[i] != 0x82 or not data[i + 1] & 0x80:
                break
            length = data[i + 1] & 0x7F
            start = i + 6
            if length == 126:
                start = i + 8
                if start > n:
                    break
                length = (data[i + 2] << 8) | data[i + 3]
            elif length == 127:
                break
            if limit and length > limit:
                break
            end = start + length
            if end > n:
                break
            mask = data[start - 4:start]
            payload = data[start:end]
            if length:
                words = (mask * (length // 4 + 1))[:length]
                payload = (int.from_bytes(payload, "little") ^ int.from_bytes(words, "little")).to_bytes(
                    length, "little"
                )
            self.trafficStats.incomingOctetsWireLevel += end - i
            i = end
            self.onMessage(payload, True)
        return data[i:] if i else data
