"""
Instance network namespaces (``csvc.providers.netns``): the ``ip`` commands
made for the bridge and for each instance, the addresses given out, the
names kept within the kernel's 15 characters, and the settings checked.
"""

import pytest
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock

from csvc import config
from csvc.providers.netns import NetnsError, NetworkNamespaces, parse_network


class IP:
    """
    ``ip`` as a recording: every command succeeds unless it starts with one
    of ``failing``.
    """

    def __init__(self, failing=()):
        self.commands = []
        self.failing = [tuple(f) for f in failing]

    def __call__(self, args):
        self.commands.append(args)
        if any(tuple(args[: len(f)]) == f for f in self.failing):
            return fail(NetnsError(f"ip {' '.join(args)} failed (2): Cannot find device"))
        return succeed(b"")


def started(network="10.213.0.0/29", failing=()):
    ip = IP(failing)
    netns = NetworkNamespaces(Clock(), network, run=ip)
    netns.startService()
    return netns, ip


def test_the_bridge_holds_the_gateway():
    netns, ip = started()
    assert str(netns.gateway) == "10.213.0.1"
    assert ip.commands == [
        ["link", "del", netns.bridge],
        ["link", "add", netns.bridge, "type", "bridge"],
        ["addr", "add", "10.213.0.1/29", "dev", netns.bridge],
        ["link", "set", netns.bridge, "up"],
    ]
    ready = []
    netns.when_ready().addCallback(ready.append)
    assert ready == [None]


def test_each_instance_gets_a_namespace_a_veth_and_an_address():
    netns, ip = started()
    del ip.commands[:]
    addresses = []
    netns.join("local-1").addCallback(addresses.append)
    namespace = netns.namespace("local-1")
    host_end, peer_end = ip.commands[3][2], ip.commands[3][7]
    assert ip.commands == [
        ["netns", "del", namespace],
        ["link", "del", host_end],
        ["netns", "add", namespace],
        ["link", "add", host_end, "type", "veth", "peer", "name", peer_end],
        ["link", "set", peer_end, "netns", namespace],
        ["link", "set", host_end, "master", netns.bridge],
        ["link", "set", host_end, "up"],
        ["-n", namespace, "link", "set", "lo", "up"],
        ["-n", namespace, "link", "set", peer_end, "name", "eth0"],
        ["-n", namespace, "addr", "add", "10.213.0.2/29", "dev", "eth0"],
        ["-n", namespace, "link", "set", "eth0", "up"],
        ["-n", namespace, "route", "add", "default", "via", "10.213.0.1"],
    ]
    assert [str(a) for a in addresses] == ["10.213.0.2"]
    for name in (netns.bridge, host_end, peer_end):
        assert len(name) <= 15
    assert netns.wrap("local-1", ["python", "-c", "x"])[-6:] == ["netns", "exec", namespace, "python", "-c", "x"]


def test_addresses_run_out_and_come_back():
    netns, _ip = started("10.213.0.0/29")  # 8 addresses: the gateway and 5 instances
    got = []
    for i in range(5):
        netns.join(f"i{i}").addCallback(lambda a: got.append(str(a)))
    assert got == [f"10.213.0.{n}" for n in range(2, 7)]
    failures = []
    netns.join("i5").addErrback(failures.append)
    assert "no address left in 10.213.0.0/29" in str(failures[0].value)
    netns.leave("i2")
    netns.join("i5").addCallback(lambda a: got.append(str(a)))
    assert got[-1] == "10.213.0.4"


def test_a_failed_join_leaves_nothing_behind():
    netns, ip = started()
    ip.failing = [("link", "add", f"vh{netns.tag}00000")]
    failures = []
    netns.join("local-1").addErrback(failures.append)
    assert failures[0].check(NetnsError)
    assert ip.commands[-1] == ["netns", "del", netns.namespace("local-1")]
    assert netns.address("local-1") is None


def test_stop_removes_the_namespaces_and_the_bridge():
    netns, ip = started()
    netns.join("a")
    netns.join("b")
    del ip.commands[:]
    netns.stopService()
    assert ip.commands == [
        ["netns", "del", netns.namespace("a")],
        ["netns", "del", netns.namespace("b")],
        ["link", "del", netns.bridge],
    ]


def test_a_bridge_that_cannot_be_made_fails_whoever_waits():
    from twisted.logger import globalLogPublisher

    seen = []
    globalLogPublisher.addObserver(seen.append)
    try:
        netns, _ip = started(failing=[["link", "add"]])
    finally:
        globalLogPublisher.removeObserver(seen.append)
    failures = []
    netns.when_ready().addErrback(failures.append)
    assert "Cannot find device" in str(failures[0].value)
    assert any(e.get("log_failure") is not None for e in seen)


@pytest.mark.parametrize("text, message", [
    ("10.213.0.0/30", "a /29 or larger"),
    ("fd00::/64", "a /29 or larger"),
    ("ten", "is not an IPv4 network"),
])
def test_the_network_is_checked(text, message):
    with pytest.raises(ValueError, match=message):
        parse_network(text)
    with pytest.raises(config.ConfigError, match=f"instance-netns: .*{message}"):
        config.resolve({"instance-netns": text})
    assert str(config.resolve({"instance-netns": "10.213.0.7/24"})["instance-netns"]) == "10.213.0.0/24"


def test_the_agent_port_must_listen_where_the_namespaced_agents_dial(tmp_path, monkeypatch):
    from twisted.python import usage

    from csvc import server

    monkeypatch.setattr(server.os, "geteuid", lambda: 0)
    base = ["--data-dir", str(tmp_path), "--instance-netns", "10.213.0.0/24"]
    with pytest.raises(usage.UsageError, match="listen there, e.g. --agents tcp:8781:interface=10.213.0.1"):
        server.Options().parseOptions(base)
    for agents in ("tcp:8781:interface=10.213.0.1", "tcp:0:interface=0.0.0.0"):
        options = server.Options()
        options.parseOptions(base + ["--agents", agents])
        assert str(options.settings["instance-netns"]) == "10.213.0.0/24"
    with pytest.raises(usage.UsageError, match="--instance-netns is for local instances"):
        server.Options().parseOptions(base + ["--agents", "tcp:8781:interface=10.213.0.1", "--instances", "0"])
    monkeypatch.setattr(server.os, "geteuid", lambda: 1000)
    with pytest.raises(usage.UsageError, match="needs root"):
        server.Options().parseOptions(base + ["--agents", "tcp:8781:interface=10.213.0.1"])
