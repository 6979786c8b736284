"""
The instance's own firewall: containers on csvc's networks (their bridges
all named ``csvcbr<digest>``, ``docker_config.bridge_name``) open no
connection to the instance itself (the agent's and the control plane's
ports, sshd, anything listening there) and reach no link-local address
(the cloud's metadata service at 169.254.169.254).

Two rules per address family, each inserted first in its chain once
(``iptables -C`` before ``-I``):

- ``INPUT``: from ``csvcbr+``, what is not an answer (conntrack
  ESTABLISHED, RELATED) is rejected.  The engine's embedded resolver
  (127.0.0.11) lives in the container's own namespace: it is not the
  host's traffic.  (IPv6 neighbour discovery is let through.)
- ``DOCKER-USER`` (the engine jumps there first from ``FORWARD``; ``FORWARD``
  itself without it): from ``csvcbr+`` to ``169.254.0.0/16`` is rejected.

The rules stay when the agent stops: its containers keep running, and so
must their walls.  iptables runs through the reactor's process API, never
blocking it; the rounds take turns.
"""

import os
import shutil

from twisted.application.service import Service
from twisted.internet.defer import DeferredLock, inlineCallbacks
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import Logger

from csvc.agent.docker_config import BRIDGE_PREFIX

#: Marks csvc's rules (and makes ``-C`` find only those).
COMMENT = "csvc instance firewall"
#: Where no container may go (the metadata service is 169.254.169.254).
BLOCKED = ("169.254.0.0/16",)
#: Of the answers of iptables, at most this much is logged.
_LOGGED = 400


class InstanceFirewall:
    log = Logger()

    def __init__(self, reactor, iptables, ip6tables=None, interfaces=BRIDGE_PREFIX + "+", blocked=BLOCKED,
                 run=getProcessOutputAndValue):
        """
        ``iptables``, ``ip6tables``: the programs' paths (None: that family
        is left alone); ``run``: Twisted's ``getProcessOutputAndValue``.
        """
        self._reactor = reactor
        self._iptables = iptables
        self._ip6tables = ip6tables
        self._interfaces = interfaces
        self._blocked = tuple(blocked)
        self._run = run
        self._lock = DeferredLock()

    def input_rule(self, family):
        """
        The ``INPUT`` rule's arguments (after the chain).
        """
        rule = ["-i", self._interfaces]
        if family == 6:
            rule += ["!", "-p", "ipv6-icmp"]
        return rule + ["-m", "conntrack", "!", "--ctstate", "ESTABLISHED,RELATED",
                       "-m", "comment", "--comment", COMMENT, "-j", "REJECT"]

    def forward_rule(self, destination):
        return ["-i", self._interfaces, "-d", destination, "-m", "comment", "--comment", COMMENT, "-j", "REJECT"]

    def apply(self):
        """
        Make sure every rule is in place; fires with True when they all
        are, False (logged) when one could not be put.
        """
        return self._lock.run(self._apply)

    @inlineCallbacks
    def _apply(self):
        ok = True
        for program, family in ((self._iptables, 4), (self._ip6tables, 6)):
            if program is None:
                continue
            rules = [("INPUT", self.input_rule(family))]
            if family == 4:
                forward = "DOCKER-USER" if (yield self._iptables_ok(program, ["-L", "DOCKER-USER", "-n"])) \
                    else "FORWARD"
                rules += [(forward, self.forward_rule(destination)) for destination in self._blocked]
            for chain, rule in rules:
                ok = (yield self._ensure(program, chain, rule)) and ok
        return ok

    @inlineCallbacks
    def _iptables_ok(self, program, args):
        _out, _err, code = yield self._run(program, ["-w", "-t", "filter"] + args, env=os.environ,
                                           reactor=self._reactor)
        return code == 0

    @inlineCallbacks
    def _ensure(self, program, chain, rule):
        if (yield self._iptables_ok(program, ["-C", chain] + rule)):
            return True
        args = ["-w", "-t", "filter", "-I", chain, "1"] + rule
        out, err, code = yield self._run(program, args, env=os.environ, reactor=self._reactor)
        if code != 0:
            self.log.error("instance firewall: {program} -I {chain} failed ({code}): {why}", program=program,
                           chain=chain, code=code, why=(err or out)[:_LOGGED].decode("utf-8", "replace"))
            return False
        self.log.info("instance firewall: {chain} {rule}", chain=chain, rule=" ".join(rule))
        return True


def instance_firewall(reactor, mode, log=InstanceFirewall.log, which=shutil.which, euid=os.geteuid):
    """
    The firewall ``--instance-firewall`` asks for (``on``, ``off``,
    ``auto``: on when root with iptables), or None, said in the log.
    """
    if mode == "off":
        log.warn("instance firewall off (--instance-firewall off): containers may reach this instance's "
                 "ports and its metadata address")
        return None
    iptables = which("iptables")
    why = None
    if euid() != 0:
        why = "the agent does not run as root"
    elif iptables is None:
        why = "iptables was not found"
    if why is not None:
        (log.error if mode == "on" else log.warn)(
            "instance firewall cannot be applied: {why}; containers may reach this instance's ports and its "
            "metadata address", why=why)
        return None
    return InstanceFirewall(reactor, iptables, which("ip6tables"))


class FirewallService(Service):
    """
    Applies the firewall when the agent starts (before its link does).
    """

    def __init__(self, firewall):
        self._firewall = firewall

    def startService(self):
        Service.startService(self)
        d = self._firewall.apply()
        d.addCallback(lambda ok: ok or self._firewall.log.error(
            "instance firewall: not every rule is in place (see above)"))
        d.addErrback(lambda failure: self._firewall.log.failure("instance firewall", failure))
