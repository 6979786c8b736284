"""
The safe defaults every container gets (``csvc.compute.defaults``): a
member may ask for less, never for more; an admin's own values stand.
"""

from hypothesis import given
from hypothesis import strategies as st

from csvc.compute.defaults import Confinement, confine, update_within

DEFAULTS = Confinement(pids_limit=4096, memory_mib=512, drop_net_raw=True, no_new_privileges=True)


def host(spec):
    return spec["docker_config"]["HostConfig"]


def test_a_bare_create_gets_every_default():
    spec = confine({"image": "i"}, DEFAULTS)
    assert spec["memory"] == 512
    assert host(spec) == {"PidsLimit": 4096, "CapDrop": ["NET_RAW"], "SecurityOpt": ["no-new-privileges"]}


def test_the_callers_spec_is_not_changed():
    given_spec = {"image": "i", "docker_config": {"HostConfig": {"CapDrop": ["MKNOD"]}}}
    confine(given_spec, DEFAULTS)
    assert given_spec == {"image": "i", "docker_config": {"HostConfig": {"CapDrop": ["MKNOD"]}}}


@given(st.one_of(st.none(), st.integers(min_value=-5, max_value=100000)))
def test_a_members_pids_limit_is_never_above_the_default(limit):
    spec = {"image": "i", "docker_config": {"HostConfig": {"PidsLimit": limit}}}
    got = host(confine(spec, DEFAULTS))["PidsLimit"]
    assert 1 <= got <= 4096
    if limit is not None and 1 <= limit <= 4096:
        assert got == limit


def test_an_admins_pids_limit_stands():
    spec = {"image": "i", "docker_config": {"HostConfig": {"PidsLimit": -1}}}
    assert host(confine(spec, DEFAULTS, admin=True))["PidsLimit"] == -1


def test_a_memory_limit_given_is_kept():
    assert confine({"image": "i", "memory": 64}, DEFAULTS)["memory"] == 64


def test_net_raw_is_dropped_beside_the_clients_own_drops_once():
    spec = {"image": "i", "docker_config": {"HostConfig": {"CapDrop": ["MKNOD"]}}}
    assert host(confine(spec, DEFAULTS))["CapDrop"] == ["MKNOD", "NET_RAW"]
    spec = {"image": "i", "docker_config": {"HostConfig": {"CapDrop": ["cap_net_raw"]}}}
    assert host(confine(spec, DEFAULTS))["CapDrop"] == ["cap_net_raw"]
    spec = {"image": "i", "docker_config": {"HostConfig": {"CapDrop": ["ALL"]}}}
    assert host(confine(spec, DEFAULTS))["CapDrop"] == ["ALL"]


def test_an_admin_who_adds_net_raw_keeps_it():
    spec = {"image": "i", "docker_config": {"HostConfig": {"CapAdd": ["NET_RAW"]}}}
    assert "CapDrop" not in host(confine(spec, DEFAULTS, admin=True))


def test_no_new_privileges_is_set_once_and_an_admins_choice_stands():
    spec = {"image": "i", "docker_config": {"HostConfig": {"SecurityOpt": ["no-new-privileges:true"]}}}
    assert host(confine(spec, DEFAULTS))["SecurityOpt"] == ["no-new-privileges"]
    spec = {"image": "i", "docker_config": {"HostConfig": {"SecurityOpt": ["no-new-privileges=false"]}}}
    assert host(confine(spec, DEFAULTS, admin=True))["SecurityOpt"] == ["no-new-privileges=false"]


def test_the_operator_turns_each_default_off():
    spec = confine({"image": "i"}, Confinement(pids_limit=0, memory_mib=0, drop_net_raw=False,
                                               no_new_privileges=False))
    assert "memory" not in spec and "docker_config" not in spec


def test_an_update_keeps_a_members_pids_limit_within_the_default():
    assert update_within({"PidsLimit": -1}, DEFAULTS) == {"PidsLimit": 4096}
    assert update_within({"PidsLimit": 10, "Memory": 5}, DEFAULTS) == {"PidsLimit": 10, "Memory": 5}
    assert update_within({"PidsLimit": -1}, DEFAULTS, admin=True) == {"PidsLimit": -1}
    assert update_within({"Memory": 5}, DEFAULTS) == {"Memory": 5}
