"""
Which registries a tenant may pull from.  The instances' engines pull, on
the instances' own networks: a registry named by a loopback, private or
link-local address (the cloud's metadata service among them), or by a name
that resolves to one, would let a tenant reach what only the operator
should.  Such pulls are refused unless the operator allows those networks
(``--registry-allow-private``).

The registry of an image reference is its first component when that has a
``.`` or a ``:``, is ``localhost`` or has an upper-case letter (Docker's
rule, ``distribution/reference``: namespaces are lower-case, so ``LOCALHOST/x``
and ``Metadata/x`` name hosts to the engines that follow it); otherwise
Docker Hub.  Names resolve without blocking (``csvc.notify.destinations``,
as webhooks' do); one that does not resolve here is refused.  The engine
resolves again when it pulls, so a name whose answers change between the
two is not caught here (the engines' own resolvers are their operator's).
"""

import ipaddress

from twisted.internet.defer import inlineCallbacks

from csvc.notify.destinations import Destinations, UnsafeDestination
from csvc.policy import Forbidden

#: Longest image reference taken (Docker's own limit on a name is 255 per
#: component; a reference has a few).
MAX_REFERENCE = 1024


class BadReference(ValueError):
    """
    An image reference csvc cannot read.
    """


def registry_of(image):
    """
    ``(host, port)`` of the registry an image reference names, or None for
    Docker Hub.  ``[::1]:5000/x`` gives ``("::1", 5000)``.
    """
    if len(image) > MAX_REFERENCE:
        raise BadReference(f"the image reference is {len(image)} characters long, more than {MAX_REFERENCE}")
    first, slash, _rest = image.partition("/")
    if not slash or not (first == "localhost" or "." in first or ":" in first or first.lower() != first):
        return None
    if first.startswith("["):
        host, bracket, after = first[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise BadReference(f"the registry {first!r} is not a host[:port]")
        port_text = after[1:]
    else:
        host, _colon, port_text = first.partition(":")
    if not host:
        raise BadReference(f"the registry {first!r} names no host")
    port = 443
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise BadReference(f"the registry {first!r} has no valid port")
        port = int(port_text)
    return host.lower(), port


class RegistryPolicy:
    """
    ``allow``: networks (``ipaddress`` networks) pulls may reach although
    internal; ``resolver``: an ``IHostnameResolver`` (the reactor's; None:
    names are not resolved, only addresses and ``localhost`` are checked).
    """

    def __init__(self, resolver, clock, allow=()):
        self._resolver = resolver
        self._destinations = Destinations(
            resolver, allow, clock=clock,
            refused="the instances reach it on their own networks (the operator may allow it with "
                    "--registry-allow-private)",
        )

    @inlineCallbacks
    def check_pull(self, image):
        """
        Fires when ``image`` may be pulled; ``Forbidden`` naming the
        registry and why not.
        """
        try:
            registry = registry_of(image)
        except BadReference as exc:
            raise Forbidden(f"pull of {image[:200]!r}: {exc}") from None
        if registry is None:
            return
        host, port = registry
        if host.rstrip(".") == "localhost" or host.rstrip(".").endswith(".localhost"):
            # Loopback by name (RFC 6761), whatever a resolver says.
            addresses = ["127.0.0.1", "::1"]
        elif self._resolver is None and not _is_address(host):
            return
        else:
            addresses = [host]
        try:
            for address in addresses:
                yield self._destinations.addresses(address, port)
        except UnsafeDestination as exc:
            raise Forbidden(f"pulls from the registry {host[:200]}:{port} are refused: {exc}") from None


def _is_address(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
