"""
Docker's hijacked streams on the control plane's side: an HTTP request whose
connection, after a raw ``101 UPGRADED`` (a ``200 OK`` when the client did
not ask to upgrade, as with Docker), carries the container's stream
both ways (``docker attach``, ``docker run``, ``docker exec``).

twisted.web's ``HTTPChannel`` is not half-closeable (a client's FIN would
tear the request down) and would chunk-encode the 101, so the connection is
taken from the channel, through public methods only: ``HijackableChannel``
(the API listener's channel, ``csvc.api.front.FrontChannel``, is one)
overrides ``dataReceived``, ``rawDataReceived``, ``connectionLost``,
``allContentReceived`` and ``requestDone``, keeps its own copy of what it
read while a request was being answered (twisted.web keeps that for the
next request), and, once ``hijack``ed, hands every byte, the client's
half-close (``IHalfCloseableProtocol`` through ``__conform__``) and the
connection's end to the stream's protocol.  The idle timeout and the
channel's producer registration on the transport are removed with
``setTimeout`` and ``unregisterProducer``.
"""


from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.web import http
from twisted.web.resource import IResource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


class HijackableChannel(http.HTTPChannel):
    """
    An ``HTTPChannel`` whose connection a resource can take over for a
    stream's protocol (``hijack``).
    """

    #: The stream's protocol, once hijacked.
    _csvc_stream = None
    #: What was read after the request being answered (None: none is).
    _csvc_held = None

    def allContentReceived(self):
        # From here until ``requestDone``, twisted.web keeps what it reads
        # for the next request: a copy is kept for a stream.
        self._csvc_held = []
        super().allContentReceived()

    def requestDone(self, request):
        self._csvc_held = None
        super().requestDone(request)

    def dataReceived(self, data):
        if self._csvc_stream is not None:
            self._csvc_stream.dataReceived(data)
            return
        super().dataReceived(data)

    def rawDataReceived(self, data):
        if self._csvc_stream is not None:
            # The rest of the read that ended the request's head.
            self._csvc_stream.dataReceived(data)
            return
        if self._csvc_held is not None:
            # Bounded as twisted.web's own buffer is (it pauses the
            # transport past its limit).
            self._csvc_held.append(data)
        super().rawDataReceived(data)

    def connectionLost(self, reason):
        if self._csvc_stream is not None:
            self._csvc_stream.connectionLost(reason)
            return
        super().connectionLost(reason)

    def __conform__(self, interface):
        # The transport asks for this on a FIN: a hijacked connection is
        # half-closeable if its stream is.
        if interface is IHalfCloseableProtocol and self._csvc_stream is not None:
            return IHalfCloseableProtocol(self._csvc_stream, None)
        return None

    def hijack(self, protocol, head):
        """
        Write ``head`` (the answer's status line and headers) and give the
        connection to ``protocol``, with what was read after the request.
        """
        transport = self.transport
        self.setTimeout(None)
        transport.unregisterProducer()
        leftover = b"".join(self._csvc_held or ())
        self._csvc_held = None
        self._csvc_stream = protocol
        transport.write(head)
        protocol.makeConnection(transport)
        if leftover:
            protocol.dataReceived(leftover)
        # twisted.web pauses the transport while a request is answered.
        transport.resumeProducing()


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
        content_type = b"Content-Type: " + self._content_type.encode("ascii") + b"\r\n"
        if request.requestHeaders.hasHeader(b"Upgrade"):
            head = b"HTTP/1.1 101 UPGRADED\r\n" + content_type + b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        else:
            # Not asked to upgrade, Docker answers a 200 whose body is the
            # stream, to the connection's end.
            head = b"HTTP/1.1 200 OK\r\n" + content_type + b"\r\n"
        request.channel.hijack(self._protocol, head)
        return NOT_DONE_YET

    # IResource's other methods, unused for a leaf rendered directly.
    def getChildWithDefault(self, name, request):
        return self

    def putChild(self, path, child):
        raise NotImplementedError()

