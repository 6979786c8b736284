"""
The fast path's switch (``--fast-path on|off|auto``), and the hijack of a
twisted.web connection through public methods (``HijackableChannel``).
"""

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.internet.error import ConnectionDone
from twisted.python import usage
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface import implementer

from csvc import config, fastpath
from csvc.agent.service import Options as AgentOptions
from csvc.relay.hijack import RAW, HijackableChannel, HijackResource

TESTED = dict(fastpath.TESTED)


def test_auto_is_on_only_with_the_tested_releases():
    assert fastpath.decide("auto", TESTED) is True
    assert fastpath.decide("auto", {**TESTED, "twisted": "99.1.0"}) is False
    assert fastpath.decide("auto", {**TESTED, "autobahn": "24.4.2"}) is False
    assert fastpath.decide("auto", {**TESTED, "autobahn": None}) is False


def test_on_and_off_are_what_they_say_whatever_is_installed():
    other = {"twisted": "24.3.0", "autobahn": "24.4.2"}
    assert fastpath.decide("on", other) is True and fastpath.decide("off", TESTED) is False


def test_another_mode_is_refused_by_name():
    with pytest.raises(ValueError, match="fast-path must be one of on, off, auto, not 'fast'"):
        fastpath.decide("fast")


def test_the_switch_service_sets_it_when_started():
    switch = fastpath.Switch(True)
    service = fastpath.FastPathSwitch("off", switch=switch)
    assert switch.on is True
    service.startService()
    assert switch.on is False


def test_the_default_mode_is_the_environment_s(monkeypatch):
    monkeypatch.setenv(fastpath.ENVIRONMENT, "off")
    assert fastpath.default_mode() == "off"
    assert config.resolve({})["fast-path"] == "off"
    assert config.resolve({"fast-path": "on"})["fast-path"] == "on"
    monkeypatch.delenv(fastpath.ENVIRONMENT)
    assert config.resolve({})["fast-path"] == "auto"


def test_a_bad_mode_is_a_clear_error_on_both_processes():
    with pytest.raises(config.ConfigError, match="fast-path must be one of on, off, auto, not 'yes'"):
        config.resolve({"fast-path": "yes"})
    with pytest.raises(usage.UsageError, match="--fast-path 'yes': on, off or auto"):
        AgentOptions().parseOptions(["--enroll-token", "t", "--fast-path", "yes"])


# -- the hijack -----------------------------------------------------------------


@implementer(IHalfCloseableProtocol)
class Stream(Protocol):
    def __init__(self):
        self.received = b""
        self.half_closed = False
        self.lost = None

    def dataReceived(self, data):
        self.received += data

    def readConnectionLost(self):
        self.half_closed = True

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        self.lost = reason


class Later(Resource):
    """
    Renders a ``HijackResource`` once ``ready`` fires (a route that waits
    for the store).
    """

    isLeaf = True

    def __init__(self, hijack):
        super().__init__()
        self.hijack = hijack
        self.ready = Deferred()

    def render(self, request):
        self.ready.addCallback(lambda _: self.hijack.render(request))
        return NOT_DONE_YET


def channel_of(resource):
    site = Site(resource)
    site.protocol = HijackableChannel
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


HEAD = b"POST /containers/x/attach HTTP/1.1\r\nHost: csvc\r\nUpgrade: tcp\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n"


def test_bytes_sent_before_a_late_hijack_reach_the_stream_in_order():
    stream = Stream()
    later = Later(HijackResource(stream, RAW, Clock()))
    channel, transport = channel_of(later)
    channel.dataReceived(HEAD + b"early ")
    channel.dataReceived(b"bytes ")
    assert transport.value() == b"" and stream.received == b""
    later.ready.callback(None)
    assert transport.value().startswith(b"HTTP/1.1 101 UPGRADED\r\n")
    channel.dataReceived(b"then more")
    assert stream.received == b"early bytes then more"
    # The channel no longer registers as the transport's producer.
    assert transport.producer is None and transport.producerState == "producing"


def test_the_client_s_half_close_and_the_end_reach_the_stream():
    stream = Stream()
    channel, transport = channel_of(HijackResource(stream, RAW, Clock()))
    assert IHalfCloseableProtocol(channel, None) is None
    channel.dataReceived(HEAD + b"stdin")
    assert stream.received == b"stdin" and stream.transport is transport
    # What the TCP transport asks for on a FIN.
    IHalfCloseableProtocol(channel).readConnectionLost()
    assert stream.half_closed
    channel.connectionLost(Failure(ConnectionDone()))
    assert stream.lost.check(ConnectionDone)


def test_requests_not_hijacked_are_twisted_web_s_own():
    class Hello(Resource):
        isLeaf = True

        def render_GET(self, request):
            return b"hello"

    channel, transport = channel_of(Hello())
    channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: csvc\r\n\r\nGET /b HTTP/1.1\r\nHost: csvc\r\n\r\n")
    assert transport.value().count(b"HTTP/1.1 200 OK") == 2 and transport.value().endswith(b"hello")
    assert channel._csvc_held is None and not transport.disconnecting
