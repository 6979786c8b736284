"""
Writing to a TCP or UNIX transport without waiting for the reactor's next
turn.

Twisted's ``write`` only queues: the bytes are joined into one buffer (a
copy) and sent when the reactor next finds the socket writable, after
asking epoll to watch it (and, once the buffer is empty, to stop).  For the
relay's hot paths (output frames to a WebSocket client, boxes on an agent
link, a container's stdin on the engine's socket) that was a copy per
byte, two ``epoll_ctl`` calls and a reactor turn per message (profiled:
docs/benchmarks.md, "Output in larger chunks").  With the fast path on,
``write_now`` sends at once with ``sendmsg`` when the transport has nothing
queued, which is the usual case, and queues only what the socket did not
take, through the transport, so ordering, producers and closing stay
Twisted's.

It reads the queue of ``twisted.internet.abstract.FileDescriptor``
(``dataBuffer``, ``offset``, ``_tempDataBuffer``, ``_writeDisconnecting``):
private.  The fast path off, any other transport (TLS endpoints' wrappers,
a test's) and a plain one that started TLS (``startTLS``) get the public
way: one ``write`` of the pieces joined.
"""

from twisted.internet import tcp, unix

from csvc.fastpath import SWITCH

#: Plain stream sockets: TCP, and UNIX (the engine's API socket).
_PLAIN = (tcp.Server, tcp.Client, unix.Server, unix.Client)


def _queue_empty(transport):
    return (
        not transport.TLS
        and not transport._tempDataBuffer
        and transport.offset == len(transport.dataBuffer)
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnecting
    )


def write_now(transport, pieces):
    """
    Write ``pieces`` (a list of bytes-like objects) to ``transport``.
    What is queued is joined into one ``bytes`` (Twisted's transports take
    nothing else, and would join the pieces themselves).
    """
    if SWITCH.on and type(transport) in _PLAIN and _queue_empty(transport):
        try:
            sent = transport.socket.sendmsg(pieces)
        except OSError:
            # EAGAIN, or an error the transport will meet and report itself.
            sent = 0
        if sent:
            for i, piece in enumerate(pieces):
                n = len(piece)
                if sent < n:
                    pieces = [memoryview(piece)[sent:]] + pieces[i + 1:]
                    break
                sent -= n
            else:
                return
    transport.write(b"".join(pieces))
