"""
Local instances each in their own network namespace (``--instance-netns
CIDR``): an agent that is really elsewhere on a network, dialing the control
plane over it, as a Nova server's agent does.

In the service's namespace a bridge holds the network's first address (the
gateway, where the agent port must listen); each instance gets a namespace
``csvc-<tag>-<instance name>`` with ``lo`` up and ``eth0``, one end of a veth
pair whose other end is on the bridge, with the next free address of the
network and a default route through the gateway.  Its agent runs there
(``ip netns exec``); the Docker engine's unix socket is reached as before
(unix sockets do not belong to a network namespace).

Everything is done by ``iproute2`` commands run as child processes, never
blocking the reactor; ``plan_*`` say which commands, and are tested alone.
Needs CAP_NET_ADMIN (root).  ``tag`` (from the network) keeps the names of two
services on different networks apart.
"""

import hashlib
import ipaddress
import os
import shutil

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import Logger
from twisted.python.failure import Failure


class NetnsError(Exception):
    """
    An ``ip`` command failed (the message names it and what it said).
    """


def parse_network(text):
    """
    The IPv4 network of ``--instance-netns``; ValueError saying what is wrong.
    """
    try:
        network = ipaddress.ip_network(str(text).strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 network such as 10.213.0.0/24") from None
    if network.version != 4 or network.prefixlen > 29:
        raise ValueError(f"{text!r}: an IPv4 network of at least 8 addresses is needed (a /29 or larger)")
    return network


def plan_bridge(bridge, gateway, prefixlen):
    return [
        ["link", "add", bridge, "type", "bridge"],
        ["addr", "add", f"{gateway}/{prefixlen}", "dev", bridge],
        ["link", "set", bridge, "up"],
    ]


def plan_instance(namespace, host_end, peer_end, bridge, address, gateway, prefixlen):
    inside = ["-n", namespace]
    return [
        ["netns", "add", namespace],
        ["link", "add", host_end, "type", "veth", "peer", "name", peer_end],
        ["link", "set", peer_end, "netns", namespace],
        ["link", "set", host_end, "master", bridge],
        ["link", "set", host_end, "up"],
        inside + ["link", "set", "lo", "up"],
        inside + ["link", "set", peer_end, "name", "eth0"],
        inside + ["addr", "add", f"{address}/{prefixlen}", "dev", "eth0"],
        inside + ["link", "set", "eth0", "up"],
        inside + ["route", "add", "default", "via", str(gateway)],
    ]


class NetworkNamespaces(Service):
    """
    The bridge (made at start, ``when_ready`` fires then; removed at stop) and
    one namespace per instance (``join``, ``leave``).  ``run(args)`` runs
    ``ip args`` and fires with its output, failing with ``NetnsError``.
    """

    log = Logger()

    def __init__(self, reactor, network, run=None):
        self.network = parse_network(network)
        self.gateway = self.network.network_address + 1
        self.tag = hashlib.sha1(str(self.network).encode()).hexdigest()[:6]
        self.bridge = f"csvcin{self.tag}"
        self._reactor = reactor
        self._ip = shutil.which("ip") or "/usr/sbin/ip"
        self._run = run or self._run_ip
        #: instance name -> (namespace, address, index)
        self._joined = {}
        self._next = 0
        #: None until the bridge is made (or failed: a Failure), then True
        self._made = None
        self._waiting = []

    # -- naming ------------------------------------------------------------

    def namespace(self, name):
        return f"csvc-{self.tag}-{name}"

    def wrap(self, name, argv):
        """
        ``argv`` run inside the instance's namespace.
        """
        return [self._ip, "netns", "exec", self.namespace(name), *argv]

    def address(self, name):
        joined = self._joined.get(name)
        return joined[1] if joined else None

    def _allocate(self):
        # The gateway is the first host; the broadcast address is not one.
        hosts = self.network.num_addresses - 3
        for _ in range(hosts):
            index = self._next % hosts
            self._next += 1
            if index not in {i for _, _, i in self._joined.values()}:
                return index, self.gateway + 1 + index
        raise NetnsError(f"no address left in {self.network} for another instance namespace")

    # -- running ip --------------------------------------------------------

    @inlineCallbacks
    def _run_ip(self, args):
        out, err, code = yield getProcessOutputAndValue(self._ip, args, env=dict(os.environ), reactor=self._reactor)
        if code != 0:
            said = (err or out).decode("utf-8", "replace").strip()
            raise NetnsError(f"ip {' '.join(args)} failed ({code}): {said}")
        return out

    @inlineCallbacks
    def _run_all(self, plan):
        for args in plan:
            yield self._run(args)

    @inlineCallbacks
    def _quietly(self, args):
        """
        Remove what a previous run may have left; its absence is no error.
        """
        try:
            yield self._run(args)
        except NetnsError:
            pass

    # -- life cycle --------------------------------------------------------

    def when_ready(self):
        """
        A Deferred that fires once the bridge is there (fails if it could not
        be made).
        """
        if self._made is True:
            return succeed(None)
        if self._made is not None:
            return fail(self._made)
        d = Deferred()
        self._waiting.append(d)
        return d

    def startService(self):
        Service.startService(self)
        self._make_bridge().addBoth(self._bridge_made)

    def _bridge_made(self, result):
        self._made = result if isinstance(result, Failure) else True
        if isinstance(result, Failure):
            self.log.failure("making the instance network {network} failed", result, network=str(self.network))
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(None)

    @inlineCallbacks
    def _make_bridge(self):
        yield self._quietly(["link", "del", self.bridge])
        yield self._run_all(plan_bridge(self.bridge, self.gateway, self.network.prefixlen))
        self.log.info("instance network {network}: bridge {bridge} at {gateway}", network=str(self.network),
                      bridge=self.bridge, gateway=str(self.gateway))
        return None

    @inlineCallbacks
    def join(self, name):
        """
        Give the instance its namespace (made afresh); fires with its address.
        """
        yield self.when_ready()
        if name in self._joined:
            yield self.leave(name)
        index, address = self._allocate()
        namespace = self.namespace(name)
        self._joined[name] = (namespace, address, index)
        host_end, peer_end = f"vh{self.tag}{index:05x}", f"vp{self.tag}{index:05x}"
        yield self._quietly(["netns", "del", namespace])
        yield self._quietly(["link", "del", host_end])
        try:
            yield self._run_all(
                plan_instance(namespace, host_end, peer_end, self.bridge, address, self.gateway,
                              self.network.prefixlen)
            )
        except Exception:
            self._joined.pop(name, None)
            yield self._quietly(["netns", "del", namespace])
            raise
        self.log.info("instance {name}: namespace {namespace}, address {address}", name=name, namespace=namespace,
                      address=str(address))
        return address

    @inlineCallbacks
    def leave(self, name):
        """
        Remove the instance's namespace (its veth goes with it).
        """
        joined = self._joined.pop(name, None)
        if joined is not None:
            yield self._quietly(["netns", "del", joined[0]])

    @inlineCallbacks
    def stopService(self):
        Service.stopService(self)
        for name in list(self._joined):
            yield self.leave(name)
        yield self._quietly(["link", "del", self.bridge])
