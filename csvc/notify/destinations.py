"""
Where a webhook may be sent: not to the service's own network.  A tenant's
URL must not make the control plane POST to loopback, link-local (the cloud's
metadata service at 169.254.169.254), private, shared, unspecified, multicast
or otherwise non-public addresses, in IPv4 or IPv6 (IPv4-mapped and 6to4
included), whether the URL names the address or a host name that resolves to
one.

The check is made twice: when a subscription is created (a 400 naming the
URL and why) and at every delivery, since DNS can change.  At delivery the
connection goes to the very address that was checked (``CheckedEndpoints``,
the webhook HTTP agent's endpoint factory), so a name cannot resolve to a
public address for the check and an internal one for the connection.

Resolution goes through the reactor's ``IHostnameResolver`` (getaddrinfo on
a thread pool): it never blocks the reactor.  An operator may allow internal
networks (CIDRs, ``--webhook-allow-internal``): tests deliver to a loopback
receiver that way.
"""

import ipaddress
import re
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred, TimeoutError as ResolveTimeout, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IResolutionReceiver, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer


#: The well-known NAT64 prefix: an IPv4 address in its last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeDestination(Exception):
    """
    A webhook URL names, or resolves to, an address csvc does not send to
    (the message says which and why).
    """


def parse_networks(text):
    """
    CIDRs from a comma-separated string or a list (``127.0.0.0/8, ::1``);
    ValueError naming the one that is not a network.
    """
    if text is None or text == "":
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    networks = []
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP network (CIDR such as 127.0.0.0/8 or ::1/128)") from None
    return tuple(networks)


def why_internal(address):
    """
    None for a public address, else what it is ("loopback", "link-local
    (cloud metadata)", ...).
    """
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = why_internal(str(embedded))
            return f"{inner}, inside an IPv6 address" if inner else None
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (where cloud metadata lives)"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "not a public address"
    return None


_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _bad_hostname(host):
    """
    Why ``host`` is not a host name (RFC 1123), or None.
    """
    if len(host) > 253:
        return f"{len(host)} characters, more than 253"
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    for label in labels:
        if not _LABEL.match(label):
            return "each label must be 1-63 letters, digits or hyphens, not starting or ending with one"
    return None


class Destinations:
    """
    The policy: ``allow`` (networks that may be sent to although internal),
    the resolver (an ``IHostnameResolver``: the reactor's, in service) and
    the clock its lookups are timed by.
    """

    log = Logger()

    #: Seconds a host name may take to resolve before the URL is refused
    #: (with no DNS reachable, getaddrinfo waits for its own timeouts).
    resolve_timeout = 5.0

    def __init__(self, resolver, allow=(), *, clock, refused="csvc does not send notifications there"):
        """
        ``refused``: what a refusal of an internal address adds (what csvc
        does not do there).
        """
        self._resolver = resolver
        self.allow = tuple(allow)
        self._clock = clock
        self.refused = refused

    def refusal(self, address):
        """
        None when ``address`` may be sent to, else why not.
        """
        ip = ipaddress.ip_address(address)
        if any(ip.version == net.version and ip in net for net in self.allow):
            return None
        return why_internal(address)

    @inlineCallbacks
    def addresses(self, host, port):
        """
        Fires with the addresses to connect to for ``host`` (an address
        itself, or a name resolved without blocking), every one of them
        allowed; fails with ``UnsafeDestination`` otherwise.
        """
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host)
            found = [host]
        except ValueError:
            why = _bad_hostname(host)
            if why:
                raise UnsafeDestination(f"the host name {host[:80]!r} is not valid: {why}")
            try:
                found = yield self._resolve(host, port).addTimeout(self.resolve_timeout, self._clock)
            except ResolveTimeout:
                raise UnsafeDestination(
                    f"the host {host} did not resolve within {self.resolve_timeout:g} s"
                ) from None
            if not found:
                raise UnsafeDestination(f"the host {host} does not resolve to any address")
        for address in found:
            why = self.refusal(address)
            if why is not None:
                named = address if address == host else f"{host} resolves to {address}, which"
                raise UnsafeDestination(f"{named} is {why}: {self.refused}")
        return found

    def _resolve(self, host, port):
        return resolve(self._resolver, host, port)

    @inlineCallbacks
    def check_url(self, url):
        """
        Fires when ``url`` may be sent to; ``UnsafeDestination`` naming the
        URL and why not.
        """
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            host = parts.hostname
        except ValueError as exc:
            raise UnsafeDestination(f"the url {url} is not valid: {exc}") from None
        if not host:
            raise UnsafeDestination(f"the url {url} names no host")
        try:
            yield self.addresses(host, port)
        except UnsafeDestination as exc:
            raise UnsafeDestination(f"the url {url} is refused: {exc}") from None


def resolve(resolver, host, port):
    """
    The addresses ``host`` resolves to through ``resolver`` (an
    ``IHostnameResolver``), each once, in the order they came: a Deferred.
    """
    d = Deferred()
    found = []

    @implementer(IResolutionReceiver)
    class Receiver:
        def resolutionBegan(self, resolution):
            pass

        def addressResolved(self, address):
            found.append(address.host)

        def resolutionComplete(self):
            d.callback(list(dict.fromkeys(found)))

    resolver.resolveHostName(Receiver(), host, port)
    return d


@implementer(IAgentEndpointFactory)
class CheckedEndpoints:
    """
    The webhook agent's endpoints: each connection resolves its host, checks
    every address against ``destinations`` and connects to the first one,
    TLS over it for https (verified against the host name).
    """

    log = Logger()

    def __init__(self, reactor, destinations, connect_timeout=30.0, tls_policy=None):
        self._reactor = reactor
        self._destinations = destinations
        self._timeout = connect_timeout
        self._tls = tls_policy or BrowserLikePolicyForHTTPS()

    def endpointForURI(self, uri):
        host = uri.host.decode("ascii") if isinstance(uri.host, bytes) else uri.host
        tls = None
        if uri.scheme == b"https":
            tls = self._tls.creatorForNetloc(uri.host, uri.port)
        return _CheckedEndpoint(self, host, uri.port, tls)

    @inlineCallbacks
    def connect(self, host, port, tls, factory):
        try:
            addresses = yield self._destinations.addresses(host, port)
        except UnsafeDestination as exc:
            self.log.warn("webhook delivery to {host}:{port} refused: {why}", host=host, port=port, why=str(exc))
            raise
        address = addresses[0]
        kind = TCP6ClientEndpoint if ipaddress.ip_address(address).version == 6 else TCP4ClientEndpoint
        endpoint = kind(self._reactor, address, port, timeout=self._timeout)
        if tls is not None:
            endpoint = wrapClientTLS(tls, endpoint)
        return (yield endpoint.connect(factory))


@implementer(IStreamClientEndpoint)
class _CheckedEndpoint:
    def __init__(self, endpoints, host, port, tls):
        self._endpoints = endpoints
        self._host = host
        self._port = port
        self._tls = tls

    def connect(self, protocolFactory):
        return self._endpoints.connect(self._host, self._port, self._tls, protocolFactory)
