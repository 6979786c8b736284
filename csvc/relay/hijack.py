"""
Docker's hijacked streams on the control plane's side: an HTTP request whose
connection, after a raw ``101 UPGRADED`` (a ``200 OK`` when the client did
not ask to upgrade, as with Docker), carries the container's stream
both ways (``docker attach``, ``docker run``, ``docker exec``).

twisted.web's ``HTTPChannel`` is not half-closeable (a client's FIN would
tear the request down) and would chunk-encode the 101, so the connection is
taken from the channel: its producer registration and idle timeout removed,
the bytes it already read handed over, and the transport's protocol swapped
for the stream's own.  This reaches into ``HTTPChannel``'s private
``_dataBuffer``, ``_buffer`` and ``_networkProducer``: setup.py pins the
Twisted release it was written against, and tests/integration cover it.
"""

from twisted.web.resource import IResource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


@implementer(IResource)
class HijackResource:
    """
    Renders by taking the connection over for ``protocol``.  Returned from a
    Klein route, it makes Klein leave the request alone.
    """

    isLeaf = True

    def __init__(self, protocol, content_type, clock, delay=0.05):
        self._protocol = protocol
        self._content_type = content_type
        self._clock = clock
        self._delay = delay

    def render(self, request):
        channel = request.channel
        transport = channel.transport
        channel.setTimeout(None)
        channel._networkProducer.unregisterProducer()
        leftover = b"".join(channel._dataBuffer) + bytes(getattr(channel, "_buffer", b""))
        channel._dataBuffer = []
        channel.transport = None
        transport.protocol = self._protocol
        content_type = b"Content-Type: " + self._content_type.encode("ascii") + b"\r\n"
        if request.requestHeaders.hasHeader(b"Upgrade"):
            transport.write(b"HTTP/1.1 101 UPGRADED\r\n" + content_type + b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
        else:
            # Not asked to upgrade, Docker answers a 200 whose body is the
            # stream, to the connection's end.
            transport.write(b"HTTP/1.1 200 OK\r\n" + content_type + b"\r\n")
        self._protocol.makeConnection(transport)
        if leftover:
            self._protocol.dataReceived(leftover)
        transport.resumeProducing()
        return NOT_DONE_YET

    # IResource's other methods, unused for a leaf rendered directly.
    def getChildWithDefault(self, name, request):
        return self

    def putChild(self, path, child):
        raise NotImplementedError()

