"""
csvc.wire.port_rules: the rules for published ports the agent applies to
every create (``docker_config.merge``).
"""

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from csvc.wire.port_rules import (
    EPHEMERAL, MAX_BINDINGS, PortRefused, PortRules, check_publish_all, endpoint_port, parse_range, rebuild,
)

ALL = PortRules.from_options(None, None, [8780, 8781])
PUBLIC = PortRules.from_options("203.0.113.7, 2001:db8::7", "20000-20100", [20050])


def bind(ip, port):
    return {"HostIp": ip, "HostPort": port}


def test_wildcards_stay_the_engines_or_become_the_public_address():
    assert rebuild({"80/tcp": [bind("", "8080")]}, ALL) == {"80/tcp": [bind("", "8080")]}
    assert rebuild({"80/tcp": [bind("0.0.0.0", "8080")]}, ALL) == {"80/tcp": [bind("0.0.0.0", "8080")]}
    for wildcard in ("", "0.0.0.0", "::", None):
        assert rebuild({"80": [{"HostIp": wildcard, "HostPort": "20001"}]}, PUBLIC) == {
            "80/tcp": [bind("203.0.113.7", "20001")]}
    assert rebuild({"80/tcp": [bind("2001:db8::7", "20001")]}, PUBLIC) == {"80/tcp": [bind("2001:db8::7", "20001")]}


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.1.2.3", "::1", "169.254.169.254", "fe80::1", "224.0.0.1",
                                "::ffff:127.0.0.1"])
def test_host_only_addresses_are_refused(ip):
    with pytest.raises(PortRefused) as refused:
        rebuild({"80/tcp": [bind(ip, "8080")]}, ALL)
    assert not refused.value.malformed and "HostIp" in str(refused.value)


def test_only_the_named_public_addresses_when_there_are_some():
    with pytest.raises(PortRefused, match="203.0.113.7, 2001:db8::7 only"):
        rebuild({"80/tcp": [bind("198.51.100.1", "20001")]}, PUBLIC)
    # Without: any address of the instance but host-only ones.
    assert rebuild({"80/tcp": [bind("198.51.100.1", "8080")]}, ALL) == {"80/tcp": [bind("198.51.100.1", "8080")]}


def test_ports_within_the_range_never_csvcs_own():
    assert rebuild({"53/udp": [bind("", "20000-20010")]}, PUBLIC)["53/udp"][0]["HostPort"] == "20000-20010"
    for port, why in (("80", "within 1024-65535"), ("8781", "csvc's"), ("8700-8790", "port 8780")):
        with pytest.raises(PortRefused, match=why):
            rebuild({"80/tcp": [bind("", port)]}, ALL)
    with pytest.raises(PortRefused, match="within 20000-20100"):
        rebuild({"80/tcp": [bind("", "20101")]}, PUBLIC)
    with pytest.raises(PortRefused, match="port 20050"):
        rebuild({"80/tcp": [bind("", "20040-20060")]}, PUBLIC)


def test_an_empty_host_port_is_the_engines_choice_within_the_range():
    assert rebuild({"80/tcp": [bind("", "")]}, ALL) == {"80/tcp": [bind("", "")]}
    # The engine's ephemeral range is not the operator's: the operator's.
    assert rebuild({"80/tcp": [{}]}, PUBLIC) == {"80/tcp": [bind("203.0.113.7", "20000-20100")]}


@pytest.mark.parametrize("bindings, why", [
    ([], "must be an object"),
    ({"http": []}, "not a container port"),
    ({"70000/tcp": []}, "not a container port"),
    ({"80/icmp": []}, "not a container port"),
    ({"80/tcp": {"HostPort": "1"}}, "must be a list"),
    ({"80/tcp": ["8080"]}, "must be a list"),
    ({"80/tcp": [{"hostPort": "8080"}]}, "unknown field 'hostPort'"),
    ({"80/tcp": [{"HostIp": "", "HostPort": "8080", "Extra": 1}]}, "unknown field 'Extra'"),
    ({"80/tcp": [bind("localhost", "8080")]}, "not an IP address"),
    ({"80/tcp": [bind("", 8080)]}, "must be a string"),
    ({"80/tcp": [bind("", "80x")]}, "not a port"),
    ({"80/tcp": [bind("", "9000-8000")]}, "the lower first"),
    ({"80/tcp": [bind("", "0")]}, "ports are 1-65535"),
])
def test_what_is_not_a_binding_is_malformed(bindings, why):
    with pytest.raises(PortRefused, match=why) as refused:
        rebuild(bindings, ALL)
    assert refused.value.malformed


def test_bounded():
    with pytest.raises(PortRefused, match=f"at most {MAX_BINDINGS}"):
        rebuild({"80/tcp": [bind("", "")] * (MAX_BINDINGS + 1)}, ALL)
    with pytest.raises(PortRefused, match=f"at most {MAX_BINDINGS}"):
        rebuild({f"{p}/tcp": [] for p in range(1, MAX_BINDINGS + 2)}, ALL)


def test_publish_all_only_when_the_engines_choice_is_allowed():
    check_publish_all(True, ALL)
    check_publish_all(False, PUBLIC)
    with pytest.raises(PortRefused, match="publish each port with -p"):
        check_publish_all(True, PUBLIC)
    with pytest.raises(PortRefused, match="publish each port"):
        check_publish_all(True, PortRules.from_options(None, f"{EPHEMERAL[0] + 1}-65535"))
    # csvc's own ports are in use: the engine never picks them.
    check_publish_all(True, PortRules.from_options(None, None, [EPHEMERAL[0] + 1]))
    with pytest.raises(PortRefused) as refused:
        check_publish_all("yes", ALL)
    assert refused.value.malformed


def test_options():
    assert parse_range("8000") == (8000, 8000)
    assert PortRules.from_options("0.0.0.0", "1-2").addresses == ()
    for bad in ("0", "5-4", "x", "1-70000"):
        with pytest.raises(ValueError):
            parse_range(bad)
    with pytest.raises(ValueError, match="loopback"):
        PortRules.from_options("127.0.0.1")
    with pytest.raises(ValueError, match="not an IP address"):
        PortRules.from_options("example.com")
    assert endpoint_port("tcp:127.0.0.1:8781") == 8781
    assert endpoint_port("tcp:host=10.0.0.1:port=99") == 99
    assert endpoint_port("tls:10.0.0.1:8781:caCertsDir=/x") == 8781
    assert endpoint_port("unix:/run/csvc.sock") is None


_VALUES = st.sampled_from(["", "0.0.0.0", "::", "127.0.0.1", "10.0.0.1", "8080", "80", "8781", "2000-9000",
                            None, 5, [], {}])


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(st.sampled_from(["80", "80/tcp", "53/udp", "x"]),
                       st.lists(st.dictionaries(st.sampled_from(["HostIp", "HostPort", "hostip"]), _VALUES,
                                                max_size=3), max_size=3) | _VALUES, max_size=3))
def test_what_passes_is_rebuilt_and_within_the_rules(bindings):
    try:
        out = rebuild(bindings, ALL)
    except PortRefused:
        return
    for port, entries in out.items():
        assert port.split("/")[1] in ("tcp", "udp", "sctp")
        for entry in entries:
            assert set(entry) == {"HostIp", "HostPort"}
            assert not entry["HostIp"].startswith("127.")
            if entry["HostPort"]:
                assert 1024 <= int(entry["HostPort"].split("-")[0]) and "8781" != entry["HostPort"]


def test_the_control_planes_ports_are_reserved_on_its_host():
    from csvc.agent.service import Options
    from csvc.wire.port_rules import listening_port

    assert listening_port("tcp:8780:interface=127.0.0.1") == 8780
    assert listening_port("tcp:port=8781") == 8781
    assert listening_port("unix:/run/csvc.sock") is None
    options = Options()
    options.parseOptions(["--connect", "tcp:127.0.0.1:8781", "--reserved-ports", "8780, 8781",
                          "--instance-firewall", "off", "--enroll-token", "t"])
    assert {8780, 8781} <= options["port-rules"].reserved
    with pytest.raises(PortRefused):
        rebuild({"80/tcp": [{"HostIp": "", "HostPort": "8780"}]}, options["port-rules"])
    from twisted.python import usage

    with pytest.raises(usage.UsageError, match="reserved port 'x'"):
        Options().parseOptions(["--connect", "tcp:127.0.0.1:8781", "--reserved-ports", "x", "--enroll-token", "t"])


def test_local_agents_are_told_the_control_planes_ports():
    from csvc.providers.local import LocalProvider

    started = []

    class Monitor:
        def addProcess(self, name, command, env):
            started.append(command)

    from twisted.internet.task import Clock

    provider = LocalProvider(None, None, 0, 10, Clock(), reserved_ports=(8780, None, 8781))
    provider._monitor = Monitor()
    provider._start_agent("tcp:127.0.0.1:8781", {"name": "local-1"}, "token")
    command = started[0]
    assert command[command.index("--reserved-ports") + 1] == "8780,8781"
