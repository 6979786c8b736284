"""
Which registry an image reference names, and the pulls a member may not
make: every spelling of an internal host a member might try, through the
table resolver of the tests and through the machine's own getaddrinfo.
"""

import socket

import pytest
from twisted.internet._resolver import GAIResolver
from twisted.internet.task import Clock

from csvc.compute.registries import BadReference, RegistryPolicy, registry_of
from csvc.policy import Forbidden
from tests.resolvers import TableResolver


@pytest.mark.parametrize("image, registry", [
    ("busybox", None),
    ("library/busybox:1.36", None),
    ("user/repo:tag", None),
    ("2130706433/x", None),  # a Docker Hub namespace, not an address
    ("localhost/x", ("localhost", 443)),
    ("quay.io/team/app", ("quay.io", 443)),
    ("host:5000/x", ("host", 5000)),
    ("[::1]:5000/x", ("::1", 5000)),
    # Namespaces are lower-case: an upper-case first component is a host
    # to the engines (distribution/reference), in any letter case.
    ("LOCALHOST/x", ("localhost", 443)),
    ("Metadata/latest", ("metadata", 443)),
    ("LocalHost:5000/x", ("localhost", 5000)),
])
def test_registry_of(image, registry):
    assert registry_of(image) == registry


@pytest.mark.parametrize("image", ["[::1/x", "[::1]x/y", ":5000/x", "host:0/x", "host:65536/x", "host:5x/x",
                                   "a" * 1025 + "/x"])
def test_references_that_name_no_registry_are_bad(image):
    with pytest.raises(BadReference):
        registry_of(image)


def refusal(policy, image):
    d = policy.check_pull(image)
    failures = []
    d.addErrback(lambda f: failures.append(f.trap(Forbidden) and f.value))
    assert d.called, image
    return str(failures[0]) if failures else None


TABLE = TableResolver({
    "metadata": ["169.254.169.254"],
    "127.1": ["127.0.0.1"],
    "nowhere.example": [],
})


@pytest.mark.parametrize("image, why", [
    ("LOCALHOST/x", "127.0.0.1 is loopback"),
    ("LocalHost:5000/x", "127.0.0.1 is loopback"),
    ("localhost.:5000/x", "127.0.0.1 is loopback"),
    ("registry.localhost/x", "127.0.0.1 is loopback"),
    ("Metadata/latest", "metadata resolves to 169.254.169.254, which is link-local"),
    ("127.1/x", "127.1 resolves to 127.0.0.1, which is loopback"),
    ("[::ffff:127.0.0.1]:5000/x", "loopback, inside an IPv6 address"),
    ("[::ffff:a9fe:a9fe]/x", "link-local"),
    ("[0:0:0:0:0:0:0:1]/x", "is loopback"),
    ("[fe80::1]/x", "link-local"),
    ("0.0.0.0:5000/x", "unspecified"),
    ("10.0.0.1/x", "private"),
    ("nowhere.example/x", "does not resolve to any address"),
    ("bad_host.example/x", "is not valid"),
])
def test_a_member_cannot_pull_from_an_internal_registry(image, why):
    message = refusal(RegistryPolicy(TABLE, Clock()), image)
    assert message is not None and why in message, (image, message)


@pytest.mark.parametrize("image", ["busybox", "quay.io/team/app", "user/repo", "Public.Example/app"])
def test_public_registries_are_pulled_from(image):
    assert refusal(RegistryPolicy(TABLE, Clock()), image) is None


class NowReactor:
    """
    What ``GAIResolver`` needs of a reactor, answering at once.
    """

    def callFromThread(self, f, *args, **kwargs):
        f(*args, **kwargs)


class NowPool:
    """
    A thread pool that runs its work on the calling thread (getaddrinfo of
    numeric hosts does not wait on the network).
    """

    def callInThreadWithCallback(self, onResult, f, *args, **kwargs):
        try:
            result = f(*args, **kwargs)
        except BaseException as exc:
            onResult(False, exc)
        else:
            onResult(True, result)


@pytest.mark.parametrize("image", ["127.1/x", "0x7f.1/x", "0177.0.0.1:5000/x", "127.0.1:5000/x",
                                   "0x7f000001:5000/x", "2130706433:5000/x"])
def test_the_machines_resolver_reads_odd_spellings_of_loopback(image):
    """
    What libc's getaddrinfo makes of shorthand, octal and hex addresses:
    loopback, refused (the engines resolve them the same way).
    """
    host = registry_of(image)[0]
    try:
        socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        pytest.skip(f"this libc does not read {host} as an address")
    resolver = GAIResolver(NowReactor(), lambda: NowPool())
    message = refusal(RegistryPolicy(resolver, Clock()), image)
    assert message is not None and "loopback" in message, (image, message)
