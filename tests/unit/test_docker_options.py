"""
The judgement of a Docker create body's options: host-escaping ones refused
by policy for members, honoured ones validated and kept, unknown ones
warned about and dropped; and their merge into the engine's create config.
"""

import re

import pytest

from csvc import policy
from csvc.agent import docker_config
from csvc.api import docker_options
from csvc.api.auth import Identity
from csvc.api.schemas import BadRequest

MEMBER = Identity(project_id="alpha", user_id="u")
ADMIN = Identity(project_id="admin-project", user_id="a", is_admin=True)

#: (HostConfig fragment, rule, text the 403 names)
REFUSED = [
    ({"Privileged": True}, "container:create:privileged", "HostConfig.Privileged"),
    ({"CapAdd": ["SYS_ADMIN"]}, "container:create:cap_add", "HostConfig.CapAdd"),
    ({"Devices": [{"PathOnHost": "/dev/kmsg", "PathInContainer": "/dev/kmsg", "CgroupPermissions": "rwm"}]},
     "container:create:devices", "HostConfig.Devices"),
    ({"DeviceRequests": [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}]},
     "container:create:device_requests", "HostConfig.DeviceRequests"),
    ({"SecurityOpt": ["seccomp=unconfined"]}, "container:create:security_opt", "seccomp=unconfined"),
    ({"SecurityOpt": ["apparmor=unconfined"]}, "container:create:security_opt", "apparmor=unconfined"),
    ({"SecurityOpt": ["label=disable"]}, "container:create:security_opt", "label=disable"),
    ({"SecurityOpt": ["no-new-privileges=false"]}, "container:create:security_opt", "no-new-privileges=false"),
    ({"Binds": ["/etc:/host-etc:ro"]}, "container:create:host_bind", "HostConfig.Binds /etc"),
    ({"Mounts": [{"Type": "bind", "Source": "/", "Target": "/host"}]}, "container:create:host_bind",
     "HostConfig.Mounts bind /"),
    ({"Mounts": [{"Type": "volume", "Source": "v", "Target": "/v",
                  "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"o": "bind", "device": "/etc"}}}}]},
     "container:create:volume_driver", "volume driver options"),
    ({"Mounts": [{"Type": "volume", "Source": "v", "Target": "/v",
                  "VolumeOptions": {"DriverConfig": {"Name": "sshfs"}}}]},
     "container:create:volume_driver", "volume driver sshfs"),
    ({"NetworkMode": "host"}, "container:create:network_mode", "HostConfig.NetworkMode host"),
    ({"NetworkMode": "container:abc"}, "container:create:network_mode", "HostConfig.NetworkMode container:abc"),
    ({"PidMode": "host"}, "container:create:pid_mode", "HostConfig.PidMode host"),
    ({"IpcMode": "host"}, "container:create:ipc_mode", "HostConfig.IpcMode host"),
    ({"UTSMode": "host"}, "container:create:uts_mode", "HostConfig.UTSMode host"),
    ({"UsernsMode": "host"}, "container:create:userns_mode", "HostConfig.UsernsMode host"),
    ({"PidMode": "container:other"}, "container:create:pid_mode", "HostConfig.PidMode container:other"),
    ({"Sysctls": {"net.ipv4.ip_forward": "1"}}, "container:create:sysctls", "HostConfig.Sysctls"),
    ({"CgroupParent": "/"}, "container:create:cgroup_parent", "HostConfig.CgroupParent"),
    ({"VolumeDriver": "convoy"}, "container:create:volume_driver", "HostConfig.VolumeDriver convoy"),
    ({"Runtime": "runsc"}, "container:create:runtime", "HostConfig.Runtime runsc"),
    ({"Ulimits": [{"Name": "rtprio", "Soft": 99, "Hard": 99}]}, "container:create:ulimits",
     "HostConfig.Ulimits rtprio"),
    ({"Ulimits": [{"Name": "memlock", "Soft": -1, "Hard": -1}]}, "container:create:ulimits",
     "HostConfig.Ulimits memlock"),
]


def body(**host):
    return {"Image": "busybox", "HostConfig": host}


@pytest.mark.parametrize("host, rule, option", REFUSED)
def test_refused_for_a_member_naming_the_option_and_the_rule(host, rule, option):
    assert rule in policy.RULES
    assert [r for r, _ in docker_options.refusals(body(**host))] == [rule]
    with pytest.raises(policy.Forbidden) as refused:
        docker_options.enforce(body(**host), MEMBER)
    assert option in str(refused.value)
    assert rule in str(refused.value)


@pytest.mark.parametrize("host, rule, option", REFUSED)
def test_allowed_for_an_admin(host, rule, option):
    docker_options.enforce(body(**host), ADMIN)


def test_what_the_cli_sends_by_default_is_not_refused():
    cli = body(
        Binds=None, NetworkMode="default", PortBindings={}, RestartPolicy={"Name": "no", "MaximumRetryCount": 0},
        AutoRemove=True, VolumeDriver="", CapAdd=None, CapDrop=None, CgroupnsMode="", Dns=[], DnsOptions=[],
        DnsSearch=[], ExtraHosts=None, GroupAdd=None, IpcMode="", Cgroup="", Links=None, OomScoreAdj=0,
        PidMode="", Privileged=False, PublishAllPorts=False, ReadonlyRootfs=False, SecurityOpt=None,
        UTSMode="", UsernsMode="", ShmSize=0, ConsoleSize=[40, 120], Isolation="", CpuShares=0, Memory=0,
        NanoCpus=0, CgroupParent="", BlkioWeight=0, Devices=[], DeviceCgroupRules=None, DeviceRequests=None,
        MemoryReservation=0, MemorySwap=0, MemorySwappiness=None, OomKillDisable=False, PidsLimit=None,
        Ulimits=None, MaskedPaths=None, ReadonlyPaths=None, LogConfig={"Type": "", "Config": {}},
    )
    cli.update(Hostname="", Domainname="", User="", Tty=False, Env=[], Cmd=["true"], Volumes={},
               WorkingDir="", Entrypoint=None, OnBuild=None, Labels={}, AttachStdout=True,
               NetworkingConfig={"EndpointsConfig": {}})
    assert docker_options.refusals(cli) == []
    docker_options.enforce(cli, MEMBER)
    kept, warnings = docker_options.honoured(cli)
    assert warnings == []
    assert "Hostname" not in kept["Config"]
    assert "OomScoreAdj" not in kept["HostConfig"]


def test_tightening_security_options_and_named_volumes_are_a_members():
    allowed = body(SecurityOpt=["no-new-privileges"], Binds=["data:/data:ro"],
                   Mounts=[{"Type": "volume", "Source": "cache", "Target": "/cache"},
                           {"Type": "tmpfs", "Target": "/t"}],
                   NetworkMode="none", IpcMode="private", CapDrop=["ALL"])
    assert docker_options.refusals(allowed) == []
    kept, warnings = docker_options.honoured(allowed)
    assert kept["HostConfig"]["Binds"] == ["data:/data:ro"]


def test_honoured_options_are_kept_and_unknown_ones_warned_about():
    kept, warnings = docker_options.honoured({
        "Image": "busybox", "Hostname": "web", "User": "1000", "StopTimeout": 3, "MacAddress": "02:42:ac:11:00:02",
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000},
        "HostConfig": {"Memory": 64 * 1024 * 1024, "Ulimits": [{"Name": "nofile", "Soft": 512, "Hard": 512}],
                       "ReadonlyRootfs": True, "Tmpfs": {"/run": "size=1m"}, "ExtraHosts": ["db:10.0.0.9"],
                       "OomScoreAdj": -500, "VolumesFrom": ["other"]},
    })
    assert kept["Config"] == {"Hostname": "web", "User": "1000", "StopTimeout": 3,
                              "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000}}
    assert kept["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert kept["HostConfig"]["Tmpfs"] == {"/run": "size=1m"}
    assert "OomScoreAdj" not in kept["HostConfig"] and "VolumesFrom" not in kept["HostConfig"]
    assert sorted(warnings) == sorted([
        "MacAddress is not supported by csvc and was ignored",
        "HostConfig.OomScoreAdj is not supported by csvc and was ignored",
        "HostConfig.VolumesFrom is not supported by csvc and was ignored",
    ])


@pytest.mark.parametrize("fragment, field", [
    ({"HostConfig": {"Memory": "lots"}}, "HostConfig.Memory"),
    ({"HostConfig": {"Binds": ["data"]}}, "HostConfig.Binds"),
    ({"HostConfig": {"Binds": ["bad name!:/x"]}}, "HostConfig.Binds"),
    ({"HostConfig": {"Mounts": [{"Type": "npipe", "Target": "/x"}]}}, "HostConfig.Mounts"),
    ({"HostConfig": {"NetworkMode": "tenant/net"}}, "HostConfig.NetworkMode: invalid network name"),
    ({"HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}, "HostConfig.RestartPolicy"),
    ({"HostConfig": {"AutoRemove": True, "RestartPolicy": {"Name": "always"}}}, "--restart and --rm"),
    ({"StopTimeout": "soon"}, "StopTimeout"),
    ({"HostConfig": {"OomKillDisable": True}}, "HostConfig.OomKillDisable"),
    ({"HostConfig": {"Ulimits": [{"Name": "NOFILE", "Soft": 1, "Hard": 1}]}}, "is not a resource limit"),
    ({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_000_000}}, "Healthcheck.Interval: at least 1s"),
    ({"Healthcheck": {"Test": ["CMD", "true"], "Timeout": -5}}, "Healthcheck.Timeout: at least 1s"),
    ({"Healthcheck": {"Test": ["CMD", "true"], "StartPeriod": 999_999_999}}, "Healthcheck.StartPeriod"),
    ({"Healthcheck": {"Test": ["CMD", "true"], "Retries": 10**9}}, "Healthcheck.Retries"),
])
def test_invalid_values_are_a_400_naming_the_field(fragment, field):
    with pytest.raises(BadRequest) as bad:
        docker_options.honoured(dict({"Image": "busybox"}, **fragment))
    assert field in str(bad.value)


def test_merge_keeps_csvcs_own_fields_and_scopes_named_volumes():
    own = {"Image": "busybox", "Labels": {"csvc.uuid": "u"}, "Tty": False,
           "HostConfig": {"LogConfig": {"Type": "local", "Config": {}}, "AutoRemove": False}}
    spec = {"project_id": "alpha", "docker_config": {
        "Config": {"Hostname": "web", "Labels": {"csvc.uuid": "forged"}, "Tty": True},
        "HostConfig": {"LogConfig": {"Type": "json-file"}, "AutoRemove": True, "ReadonlyRootfs": True,
                       "Binds": ["data:/data:ro"], "Mounts": [{"Type": "volume", "Source": "c", "Target": "/c"}]},
    }}
    merged = docker_config.merge(own, spec)
    assert merged["Labels"] == {"csvc.uuid": "u"}
    assert merged["Hostname"] == "web" and merged["Tty"] is True
    assert merged["HostConfig"]["LogConfig"] == {"Type": "local", "Config": {}}
    assert merged["HostConfig"]["AutoRemove"] is False
    assert merged["HostConfig"]["ReadonlyRootfs"] is True
    assert merged["HostConfig"]["Binds"] == ["csvc-alpha-data:/data:ro"]
    assert merged["HostConfig"]["Mounts"][0]["Source"] == "csvc-alpha-c"
    assert docker_config.merge(own, {"project_id": "alpha"}) == own


def test_anonymous_mounts_become_the_projects_labelled_volumes():
    own = {"Image": "busybox", "HostConfig": {}}
    spec = {"project_id": "alpha", "uuid": "u1", "docker_config": {
        "Config": {"Volumes": {"/data/": {}, "/bound": {}, "/tmp": {}, "/named": {}}},
        "HostConfig": {"Binds": ["/srv:/bound"], "Tmpfs": {"/tmp": ""},
                       "Mounts": [{"Type": "volume", "Source": "n", "Target": "/named"}]},
    }}
    merged = docker_config.merge(own, spec, image_volumes=["/data", "/image"])
    added = merged["HostConfig"]["Mounts"][1:]
    # One each for /data (given twice) and the image's /image; none where
    # the client mounts something already.
    assert [m["Target"] for m in added] == ["/data", "/image"]
    for mount in added:
        name = docker_config.anonymous_volume("u1", mount["Target"])
        assert re.fullmatch(r"[0-9a-f]{64}", name)
        assert mount == {"Type": "volume", "Target": mount["Target"],
                         "Source": docker_config.engine_volume("alpha", name),
                         "VolumeOptions": {"Labels": {docker_config.ANONYMOUS_VOLUME: ""}}}
    # Another container's volume at the same path is another volume.
    assert docker_config.anonymous_volume("u2", "/data") != docker_config.anonymous_volume("u1", "/data")
    assert docker_config.anonymous_volume("u1", "/data/") == docker_config.anonymous_volume("u1", "/data")


def test_engine_volume_names_of_two_projects_never_meet():
    assert docker_config.engine_volume("alpha", "x-y") != docker_config.engine_volume("alpha-x", "y")
    assert docker_config.engine_volume("a b", "v") != docker_config.engine_volume("a_b", "v")
    assert docker_config.engine_volume("0123abcd", "v") == "csvc-0123abcd-v"
    assert docker_config.unscoped("alpha", docker_config.engine_volume("alpha", "x-y")) == "x-y"
    assert docker_config.unscoped("alpha", "bridge") == "bridge"
    assert docker_config.unscoped("alpha", docker_config.engine_volume("beta", "v")) == "csvc-beta-v"


# -- LogConfig ---------------------------------------------------------------


@pytest.mark.parametrize("log_config, kept", [
    (None, None),
    ({"Type": "", "Config": {}}, None),  # what the CLI sends without --log-driver
    ({"Type": "local", "Config": {"max-size": "10m", "max-file": "3"}},
     {"Type": "local", "Config": {"max-size": "10m", "max-file": "3"}}),
    ({"Type": "json-file", "Config": {"max-size": "1g"}}, {"Type": "json-file", "Config": {"max-size": "1g"}}),
    ({"Type": "", "Config": {"max-file": "16"}}, {"Type": "json-file", "Config": {"max-file": "16"}}),
])
def test_log_config_within_bounds_is_kept(log_config, kept):
    assert docker_options.log_options(log_config) == kept


@pytest.mark.parametrize("log_config, words", [
    ({"Type": "syslog"}, "HostConfig.LogConfig.Type 'syslog' is not supported"),
    ({"Type": "none"}, "HostConfig.LogConfig.Type 'none' is not supported"),
    ({"Type": "local", "Config": {"max-size": "512k"}}, "max-size '512k': must be between 1m and 1g"),
    ({"Type": "local", "Config": {"max-size": "2g"}}, "max-size '2g'"),
    ({"Type": "local", "Config": {"max-size": "ten"}}, "max-size 'ten'"),
    ({"Type": "local", "Config": {"max-file": "0"}}, "max-file '0': must be between 1 and 16"),
    ({"Type": "local", "Config": {"compress": "false"}}, "HostConfig.LogConfig.Config 'compress'"),
    ("json-file", "HostConfig.LogConfig: must be an object"),
])
def test_other_log_drivers_and_options_are_a_400_naming_them(log_config, words):
    with pytest.raises(BadRequest) as bad:
        docker_options.honoured({"Image": "busybox", "HostConfig": {"LogConfig": log_config}})
    assert words in str(bad.value)


def test_merge_applies_the_clients_log_options_to_csvcs_driver():
    own = {"Image": "busybox", "HostConfig": {"LogConfig": {"Type": "local", "Config": {"max-size": "128m",
                                                                                          "max-file": "8"}}}}
    spec = {"project_id": "alpha", "docker_config": {"HostConfig": {
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}}}}}
    merged = docker_config.merge(own, spec)
    assert merged["HostConfig"]["LogConfig"] == {"Type": "local", "Config": {"max-size": "10m", "max-file": "8"}}


# -- update ------------------------------------------------------------------


def test_update_takes_what_changes_and_skips_the_clis_zero_values():
    body = {"Memory": 64 * 1024 * 1024, "MemorySwap": 0, "CpuShares": 0, "BlkioWeight": 0, "KernelMemory": 0,
            "CpusetCpus": "", "Devices": None, "PidsLimit": 10, "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}}
    assert docker_options.update_fields(body) == {"Memory": 64 * 1024 * 1024, "PidsLimit": 10}


@pytest.mark.parametrize("body, words", [
    ({}, "you must provide one or more flags"),
    ({"BlkioWeight": 300}, "BlkioWeight cannot be updated by csvc"),
    ({"Memory": "64m"}, "Memory: must be an integer"),
    ({"RestartPolicy": {"Name": "maybe"}}, "invalid restart policy"),
])
def test_update_refuses_what_it_cannot_do_naming_it(body, words):
    with pytest.raises(BadRequest) as bad:
        docker_options.update_fields(body)
    assert words in str(bad.value)


# -- networks ----------------------------------------------------------------


def test_a_projects_network_is_kept_with_its_aliases():
    kept, warnings = docker_options.honoured({
        "Image": "busybox",
        "HostConfig": {"NetworkMode": "backend"},
        "NetworkingConfig": {"EndpointsConfig": {"backend": {"Aliases": ["db"], "IPAMConfig": {"IPv4Address": "x"}},
                                                 "bridge": {}}},
    })
    assert kept["HostConfig"]["NetworkMode"] == "backend"
    assert kept["NetworkingConfig"] == {"EndpointsConfig": {"backend": {"Aliases": ["db"]}}}
    assert warnings == ["NetworkingConfig.EndpointsConfig.backend.IPAMConfig is not supported by csvc and was ignored"]
    # Without aliases, the network is still where inspect finds it.
    kept, _ = docker_options.honoured({"Image": "busybox", "HostConfig": {"NetworkMode": "b"}})
    assert kept["NetworkingConfig"] == {"EndpointsConfig": {"b": {"Aliases": []}}}
    # The engine's own networks keep no NetworkingConfig.
    kept, warnings = docker_options.honoured({"Image": "busybox", "HostConfig": {"NetworkMode": "bridge"},
                                              "NetworkingConfig": {"EndpointsConfig": {"bridge": {}}}})
    assert "NetworkingConfig" not in kept and warnings == []


@pytest.mark.parametrize("body, text", [
    ({"HostConfig": {"NetworkMode": "a"}, "NetworkingConfig": {"EndpointsConfig": {"a": {}, "b": {}}}},
     "connect it to b after"),
    ({"NetworkingConfig": {"EndpointsConfig": {"b": {}}}}, "its HostConfig.NetworkMode (bridge)"),
    ({"HostConfig": {"NetworkMode": "a"}, "NetworkingConfig": {"EndpointsConfig": {"a": {"Aliases": ["x y"]}}}},
     "invalid alias 'x y'"),
    ({"HostConfig": {"NetworkMode": "a"}, "NetworkingConfig": []}, "NetworkingConfig must be an object"),
])
def test_bad_networking_is_a_400_naming_it(body, text):
    with pytest.raises(BadRequest) as bad:
        docker_options.honoured(dict({"Image": "busybox"}, **body))
    assert text in str(bad.value)


def test_merge_puts_the_container_on_the_projects_network_by_its_name():
    own = {"Image": "busybox", "HostConfig": {}}
    spec = {"project_id": "alpha", "uuid": "u1", "name": "web", "docker_config": {
        "Config": {}, "HostConfig": {"NetworkMode": "backend"},
        "NetworkingConfig": {"EndpointsConfig": {"backend": {"Aliases": ["www", "web"]}}},
    }}
    merged = docker_config.merge(own, spec)
    engine = docker_config.engine_network("alpha", "backend")
    assert merged["HostConfig"]["NetworkMode"] == engine
    assert merged["NetworkingConfig"] == {"EndpointsConfig": {engine: {"Aliases": ["web", "www"]}}}
    for mode in ("bridge", "none", "container:abc", "host"):
        spec["docker_config"]["HostConfig"]["NetworkMode"] = mode
        merged = docker_config.merge(own, spec)
        assert merged["HostConfig"]["NetworkMode"] == mode and "NetworkingConfig" not in merged


def test_ordinary_limits_and_health_checks_are_a_members():
    kept, _ = docker_options.honoured({"Image": "busybox", "Healthcheck": {
        "Test": ["CMD", "true"], "Interval": 2_000_000_000, "Timeout": 0, "Retries": 3}, "HostConfig": {
        "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]}})
    assert kept["Config"]["Healthcheck"]["Interval"] == 2_000_000_000
    assert kept["HostConfig"]["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    docker_options.enforce(body(Ulimits=[{"Name": "nofile", "Soft": 1024, "Hard": 2048}]), MEMBER)
