"""
Webhook destinations (``csvc.notify.destinations``): internal addresses are
refused, by address or by a name that resolves to one, when subscribing and
again when connecting; an operator's allow list lets some through.
"""

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.web.client import URI

from csvc.notify.destinations import (
    CheckedEndpoints,
    Destinations,
    UnsafeDestination,
    parse_networks,
    why_internal,
)
from tests.resolvers import PUBLIC, TableResolver


@pytest.mark.parametrize(
    "address, why",
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local (where cloud metadata lives)"),
        ("fe80::1", "link-local (where cloud metadata lives)"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("100.64.0.1", "not a public address"),
        ("::ffff:127.0.0.1", "loopback, inside an IPv6 address"),
        ("::ffff:169.254.169.254", "link-local (where cloud metadata lives), inside an IPv6 address"),
        ("2002:a00:1::1", "private, inside an IPv6 address"),
        ("64:ff9b::a9fe:a9fe", "link-local (where cloud metadata lives), inside an IPv6 address"),
        (PUBLIC, None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
        ("::ffff:93.184.215.14", None),
    ],
)
def test_what_is_internal(address, why):
    assert why_internal(address) == why


def check(destinations, url):
    d = destinations.check_url(url)
    failures = []
    d.addErrback(failures.append)
    if failures:
        failures[0].trap(UnsafeDestination)
        return str(failures[0].value)
    return None


def test_urls_naming_or_resolving_to_internal_addresses_are_refused():
    resolver = TableResolver({"meta.evil.test": ["93.184.215.15", "169.254.169.254"], "nowhere.test": []})
    destinations = Destinations(resolver, clock=Clock())
    assert check(destinations, "https://hooks.example/x") is None
    assert check(destinations, "http://127.0.0.1:8080/hook") == (
        "the url http://127.0.0.1:8080/hook is refused: 127.0.0.1 is loopback: csvc does not send "
        "notifications there"
    )
    assert check(destinations, "http://[::1]/") .startswith("the url http://[::1]/ is refused: ::1 is loopback")
    # One internal address among public ones is enough to refuse.
    assert check(destinations, "http://meta.evil.test/") == (
        "the url http://meta.evil.test/ is refused: meta.evil.test resolves to 169.254.169.254, which is "
        "link-local (where cloud metadata lives): csvc does not send notifications there"
    )
    assert check(destinations, "http://nowhere.test/") == (
        "the url http://nowhere.test/ is refused: the host nowhere.test does not resolve to any address"
    )
    assert resolver.asked == ["hooks.example", "meta.evil.test", "nowhere.test"]


def test_an_operators_allow_list_lets_internal_networks_through():
    destinations = Destinations(TableResolver({"localhost": ["127.0.0.1", "::1"]}),
                                allow=parse_networks("127.0.0.0/8"), clock=Clock())
    assert check(destinations, "http://127.0.0.1:9/") is None
    assert "localhost resolves to ::1, which is loopback" in check(destinations, "http://localhost/")
    destinations.allow = parse_networks(["127.0.0.0/8", "::1"])
    assert check(destinations, "http://localhost/") is None
    assert "10.0.0.1 is private" in check(destinations, "http://10.0.0.1/")
    with pytest.raises(ValueError, match="'10.0.0.300/8' is not an IP network"):
        parse_networks("127.0.0.0/8, 10.0.0.300/8")


class Factory:
    pass


def test_deliveries_connect_to_the_address_that_was_checked():
    reactor = MemoryReactorClock()
    resolver = TableResolver({"hooks.example": ["93.184.215.15"]})
    endpoints = CheckedEndpoints(reactor, Destinations(resolver, clock=reactor), connect_timeout=7)
    endpoint = endpoints.endpointForURI(URI.fromBytes(b"http://hooks.example:8080/x"))
    endpoint.connect(Factory())
    ((host, port, _factory, timeout, _bind),) = reactor.tcpClients
    assert (host, port, timeout) == ("93.184.215.15", 8080, 7)


def test_a_name_that_now_resolves_internally_is_not_connected_to(caplog_events):
    reactor = MemoryReactorClock()
    resolver = TableResolver({"hooks.example": ["10.1.2.3"]})
    endpoints = CheckedEndpoints(reactor, Destinations(resolver, clock=reactor))
    d = endpoints.endpointForURI(URI.fromBytes(b"https://hooks.example/x")).connect(Factory())
    failure = result_of_failure(d)
    assert failure.check(UnsafeDestination)
    assert "hooks.example resolves to 10.1.2.3, which is private" in str(failure.value)
    assert reactor.tcpClients == [] and reactor.sslClients == []
    assert any("webhook delivery to hooks.example:443 refused" in text for text in caplog_events)


def result_of_failure(d):
    failures = []
    d.addErrback(failures.append)
    assert len(failures) == 1 and isinstance(failures[0], Failure)
    return failures[0]


@pytest.fixture
def caplog_events():
    from twisted.logger import formatEvent, globalLogPublisher

    texts = []

    def observer(event):
        texts.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    yield texts
    globalLogPublisher.removeObserver(observer)


def test_https_goes_over_tls_to_the_checked_address():
    reactor = MemoryReactorClock()
    endpoints = CheckedEndpoints(reactor, Destinations(TableResolver(), clock=reactor))
    endpoints.endpointForURI(URI.fromBytes(b"https://hooks.example/x")).connect(Factory())
    ((host, port, factory, _timeout, _bind),) = reactor.tcpClients
    assert (host, port) == (PUBLIC, 443)
    # The TLS wrapper's factory, not the bare one.
    assert not isinstance(factory, Factory)


def test_a_host_name_that_is_not_one_is_refused_without_resolving():
    from csvc.notify.destinations import Destinations, UnsafeDestination

    class Never:
        def resolveHostName(self, *args, **kwargs):
            raise AssertionError("not to be resolved")

    destinations = Destinations(Never(), clock=Clock())
    for host in ("0" * 300, "a" * 64 + ".example", "-bad.example", "bad-.example", "a..b"):
        failure = failureResultOf(destinations.check_url(f"https://{host}/hook"), UnsafeDestination)
        assert "is not valid" in str(failure.value)


def test_a_name_that_takes_too_long_to_resolve_is_refused():
    from csvc.notify.destinations import Destinations, UnsafeDestination

    received = []

    class Slow:
        def resolveHostName(self, receiver, host, port):
            received.append(receiver)

    clock = Clock()
    destinations = Destinations(Slow(), clock=clock)
    d = destinations.check_url("https://hooks.example.org/x")
    assert received and not d.called
    clock.advance(destinations.resolve_timeout)
    failure = failureResultOf(d, UnsafeDestination)
    assert "did not resolve within 5 s" in str(failure.value)
    # The resolver answering late changes nothing.
    received[0].resolutionComplete()


def failureResultOf(d, *types):
    """
    The failure ``d`` has already failed with (one of ``types``).
    """
    failures = []
    d.addErrback(failures.append)
    assert failures, "the Deferred has not failed"
    assert failures[0].check(*types), failures[0]
    return failures[0]
