"""
csvc.agent.firewall: the iptables commands the instance's firewall runs,
through a recording stand-in for ``getProcessOutputAndValue``.
"""

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel

from csvc.agent.firewall import COMMENT, FirewallService, InstanceFirewall, instance_firewall


class Iptables:
    """
    Answers as iptables would on a host holding ``rules`` (a set of
    ``(program, chain, tuple(rule))``) and the chains ``chains``.
    """

    def __init__(self, chains=("INPUT", "FORWARD", "DOCKER-USER"), refuse=()):
        self.rules = []
        self.calls = []
        self.chains = set(chains)
        self.refuse = set(refuse)

    def __call__(self, program, args, env=None, reactor=None):
        self.calls.append((program, tuple(args)))
        assert args[:3] == ["-w", "-t", "filter"]
        op, chain = args[3], args[4]
        if op == "-L":
            return succeed((b"", b"", 0 if chain in self.chains else 1))
        if op == "-C":
            return succeed((b"", b"", 0 if (program, chain, tuple(args[5:])) in self.rules else 1))
        assert op == "-I" and args[5] == "1"
        if chain in self.refuse:
            return succeed((b"", b"iptables: No chain/target/match by that name.\n", 1))
        self.rules.insert(0, (program, chain, tuple(args[6:])))
        return succeed((b"", b"", 0))


def firewall(iptables, ip6=True):
    return InstanceFirewall(Clock(), "/sbin/iptables", "/sbin/ip6tables" if ip6 else None, run=iptables)


def test_rules_put_once_first_in_their_chains():
    iptables = Iptables()
    wall = firewall(iptables)
    assert wall.apply().result is True
    assert sorted((p, c) for p, c, _ in iptables.rules) == [
        ("/sbin/ip6tables", "INPUT"), ("/sbin/iptables", "DOCKER-USER"), ("/sbin/iptables", "INPUT")]
    rules = {(p, c): " ".join(r) for p, c, r in iptables.rules}
    assert rules[("/sbin/iptables", "INPUT")] == (
        f"-i csvcbr+ -m conntrack ! --ctstate ESTABLISHED,RELATED -m comment --comment {COMMENT} -j REJECT")
    assert rules[("/sbin/ip6tables", "INPUT")].startswith("-i csvcbr+ ! -p ipv6-icmp -m conntrack")
    assert rules[("/sbin/iptables", "DOCKER-USER")] == (
        f"-i csvcbr+ -d 169.254.0.0/16 -m comment --comment {COMMENT} -j REJECT")
    # Again: checked, not put twice.
    iptables.calls.clear()
    assert wall.apply().result is True
    assert len(iptables.rules) == 3
    assert not [c for c in iptables.calls if c[1][3] == "-I"]


def test_forward_without_the_engines_user_chain():
    iptables = Iptables(chains=("INPUT", "FORWARD"))
    assert firewall(iptables, ip6=False).apply().result is True
    assert sorted(c for _, c, _ in iptables.rules) == ["FORWARD", "INPUT"]


def test_a_rule_not_put_is_logged_and_reported():
    iptables = Iptables(refuse={"DOCKER-USER"})
    events = []
    wall = firewall(iptables, ip6=False)
    wall.log = Logger(observer=events.append)
    assert wall.apply().result is False
    [error] = [e for e in events if e["log_level"] == LogLevel.error]
    assert error["chain"] == "DOCKER-USER" and "No chain" in error["why"]
    # The other rule is in place all the same.
    assert [c for _, c, _ in iptables.rules] == ["INPUT"]


def test_rounds_take_turns():
    pending = []

    def run(program, args, env=None, reactor=None):
        from twisted.internet.defer import Deferred
        d = Deferred()
        pending.append((args, d))
        return d

    wall = InstanceFirewall(Clock(), "/sbin/iptables", None, run=run)
    first, second = wall.apply(), wall.apply()
    # One command at a time, the second round's after the first's.
    while pending:
        assert len(pending) == 1
        args, d = pending.pop()
        d.callback((b"", b"", 0))
    assert first.result is True and second.result is True


def test_which_firewall():
    events = []
    log = Logger(observer=events.append)

    def which(name):
        return {"iptables": "/sbin/iptables"}.get(name)

    assert instance_firewall(Clock(), "off", log=log, which=which, euid=lambda: 0) is None
    assert "off" in events[-1]["log_format"]
    assert instance_firewall(Clock(), "auto", log=log, which=which, euid=lambda: 1000) is None
    assert events[-1]["why"] == "the agent does not run as root" and events[-1]["log_level"] == LogLevel.warn
    assert instance_firewall(Clock(), "on", log=log, which=lambda name: None, euid=lambda: 0) is None
    assert events[-1]["why"] == "iptables was not found" and events[-1]["log_level"] == LogLevel.error
    assert isinstance(instance_firewall(Clock(), "auto", log=log, which=which, euid=lambda: 0), InstanceFirewall)


def test_the_service_applies_it_at_start():
    iptables = Iptables()
    service = FirewallService(firewall(iptables))
    service.startService()
    assert len(iptables.rules) == 3
