"""
csvc/compute/service.py ``at_address``: a container port's engine bindings
as a client reaches them at its instance's address.
"""

from csvc.compute.service import at_address


def binding(ip, port):
    return {"HostIp": ip, "HostPort": port}


def test_wildcards_become_the_instance_address():
    assert at_address([binding("0.0.0.0", "32781")], "10.0.0.5") == [binding("10.0.0.5", "32781")]
    assert at_address([binding("", "32781")], "10.0.0.5") == [binding("10.0.0.5", "32781")]


def test_the_other_familys_wildcard_goes_when_both_are_bound():
    # Docker 20.10 may give 0.0.0.0 and :: different host ports for -P.
    both = [binding("0.0.0.0", "32781"), binding("::", "32780")]
    assert at_address(both, "127.0.0.1") == [binding("127.0.0.1", "32781")]
    assert at_address(both, "fd00::5") == [binding("fd00::5", "32780")]
    # The same port on both: one entry either way.
    same = [binding("0.0.0.0", "8080"), binding("::", "8080")]
    assert at_address(same, "127.0.0.1") == [binding("127.0.0.1", "8080")]


def test_a_single_family_is_kept_and_specific_addresses_stay():
    assert at_address([binding("::", "32780")], "127.0.0.1") == [binding("127.0.0.1", "32780")]
    assert at_address([binding("192.0.2.7", "80")], "127.0.0.1") == [binding("192.0.2.7", "80")]
    both = [binding("0.0.0.0", "32781"), binding("::", "32780")]
    # No instance address known: the engine's bindings as they are.
    assert at_address(both, None) == both
