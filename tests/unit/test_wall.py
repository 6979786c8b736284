"""
The agent's wall (``csvc.agent.wall``): the final engine create config a
member's container may not have (host binds, privilege, capabilities, the
host's or another project's namespaces, devices, foreign volume drivers...),
however its keys are spelt, since Go reads ``privileged`` as
``Privileged``; what a member may have passes; an admin's passes what
policy let through.  Then the Docker engine's create, update, exec and
network connect with the wall in front of a recording SDK client: nothing
refused reaches the engine.
"""

import copy

import pytest
from hypothesis import given, settings, strategies as st
from twisted.internet.task import Clock
from twisted.logger import Logger

from csvc.agent import wall
from csvc.wire import commands
from csvc.agent.docker_config import engine_network, engine_volume
from csvc.agent import docker_create, docker_engine, lxc_engine

PROJECT = "p1"
OTHER = "p2"


def member_config():
    """
    A final create config as the agent builds one for a member who used
    what csvc honours: named volumes, a tmpfs, the project's network, ports.
    """
    return {
        "Image": "csvc/busybox",
        "Cmd": ["sh", "-c", "echo hi"],
        "Entrypoint": None,
        "Env": ["SECRET=hunter2"],
        "WorkingDir": "",
        "Labels": {"csvc.uuid": "u1", "csvc.project": PROJECT},
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "AttachStdin": False,
        "AttachStdout": True,
        "AttachStderr": True,
        "User": "root",
        "Hostname": "web",
        "ExposedPorts": {"80/tcp": {}},
        "Volumes": {"/data": {}},
        "HostConfig": {
            "LogConfig": {"Type": "local", "Config": {"max-size": "128m", "max-file": "8"}},
            "AutoRemove": False,
            "Memory": 64 * 1024 * 1024,
            "NanoCpus": 500000000,
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
            "Binds": [engine_volume(PROJECT, "cache") + ":/cache:ro"],
            "Mounts": [
                {"Type": "volume", "Target": "/data", "Source": engine_volume(PROJECT, "a" * 64),
                 "VolumeOptions": {"Labels": {"com.docker.volume.anonymous": ""}}},
                {"Type": "tmpfs", "Target": "/scratch", "TmpfsOptions": {"SizeBytes": 1 << 20}},
                {"Type": "volume", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Name": "local"}}},
            ],
            "Tmpfs": {"/run": "size=1m"},
            "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "ExtraHosts": ["db:10.0.0.2"],
            "PidsLimit": 100,
            "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
            "ReadonlyRootfs": True,
            "Init": True,
            "NetworkMode": engine_network(PROJECT, "front"),
            "IpcMode": "private",
            "Privileged": False,
            "CapAdd": [],
            "Sysctls": {},
            "Runtime": "runc",
        },
        "NetworkingConfig": {"EndpointsConfig": {engine_network(PROJECT, "front"): {"Aliases": ["web"]}}},
    }


def rules(violations):
    return {v.rule for v in violations}


def with_host(**fields):
    config = member_config()
    config["HostConfig"].update(fields)
    return config


#: (what, HostConfig fields to set, the rule that refuses them)
ESCAPES = [
    ("privileged", {"Privileged": True}, "privileged"),
    ("added capabilities", {"CapAdd": ["SYS_ADMIN"]}, "cap_add"),
    ("a device", {"Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda",
                               "CgroupPermissions": "rwm"}]}, "devices"),
    ("device cgroup rules", {"DeviceCgroupRules": ["b 8:* rmw"]}, "devices"),
    ("a GPU", {"DeviceRequests": [{"Driver": "nvidia", "Count": -1}]}, "device_requests"),
    ("a host path in Binds", {"Binds": ["/:/host"]}, "host_bind"),
    ("a bind mount", {"Mounts": [{"Type": "bind", "Source": "/etc", "Target": "/etc2"}]}, "host_bind"),
    ("an npipe mount", {"Mounts": [{"Type": "npipe", "Source": "/run/docker.sock", "Target": "/s"}]}, "host_bind"),
    ("a volume driver in a mount", {"Mounts": [{"Type": "volume", "Target": "/d", "Source": engine_volume(
        PROJECT, "v"), "VolumeOptions": {"DriverConfig": {"Name": "sshfs"}}}]}, "volume_driver"),
    ("the local driver's options", {"Mounts": [{"Type": "volume", "Target": "/d", "VolumeOptions": {
        "DriverConfig": {"Name": "local", "Options": {"type": "none", "o": "bind", "device": "/"}}}}]},
     "volume_driver"),
    ("a volume driver", {"VolumeDriver": "convoy"}, "volume_driver"),
    ("the host's network", {"NetworkMode": "host"}, "network_mode"),
    ("the host's pids", {"PidMode": "host"}, "pid_mode"),
    ("the host's ipc", {"IpcMode": "host"}, "ipc_mode"),
    ("the host's uts", {"UTSMode": "host"}, "uts_mode"),
    ("the host's user namespace", {"UsernsMode": "host"}, "userns_mode"),
    ("a stranger's pids", {"PidMode": "container:theirs"}, "pid_mode"),
    ("a stranger's network", {"NetworkMode": "container:theirs"}, "network_mode"),
    ("unconfined seccomp", {"SecurityOpt": ["seccomp=unconfined"]}, "security_opt"),
    ("unconfined apparmor", {"SecurityOpt": ["no-new-privileges", "apparmor=unconfined"]}, "security_opt"),
    ("unmasked /proc", {"SecurityOpt": ["systempaths=unconfined"]}, "security_opt"),
    ("sysctls", {"Sysctls": {"kernel.shm_rmid_forced": "1"}}, "sysctls"),
    ("a cgroup parent", {"CgroupParent": "/system.slice"}, "cgroup_parent"),
    ("another runtime", {"Runtime": "runsc-unsafe"}, "runtime"),
    ("no masked paths", {"MaskedPaths": []}, "host_option"),
    ("another container's volumes", {"VolumesFrom": ["theirs"]}, "host_option"),
    ("the host's cgroup namespace", {"CgroupnsMode": "host"}, "host_option"),
    ("a file on the host", {"ContainerIDFile": "/etc/cron.d/x"}, "host_option"),
    ("another project's volume", {"Binds": [engine_volume(OTHER, "data") + ":/d"]}, "volume"),
    ("another project's volume mounted", {"Mounts": [{"Type": "volume", "Source": engine_volume(OTHER, "d"),
                                                      "Target": "/d"}]}, "volume"),
    ("another project's network", {"NetworkMode": engine_network(OTHER, "back")}, "network_mode"),
    ("an operator's network", {"NetworkMode": "corp"}, "network_mode"),
    ("an unknown field", {"Bogus": 1}, "unknown_key"),
    ("another log driver", {"LogConfig": {"Type": "syslog", "Config": {"syslog-address": "udp://x:514"}}},
     "log_driver"),
]


def test_what_a_member_may_have_passes():
    assert wall.create_violations(member_config(), PROJECT) == []


def test_the_engines_own_networks_and_a_project_containers_namespaces_pass():
    config = with_host(NetworkMode="container:mine", PidMode="container:mine", IpcMode="container:mine")
    del config["NetworkingConfig"]
    assert wall.joined_containers(config) == {"mine"}
    assert wall.create_violations(config, PROJECT, project_containers={"mine"}) == []
    for mode in ("", "default", "bridge", "none", None):
        assert wall.create_violations(with_host(NetworkMode=mode), PROJECT) == []


def test_the_projects_default_network_named_by_its_id_passes_once_the_engine_says_so():
    config = with_host(NetworkMode="0123abcd")
    config["NetworkingConfig"] = {"EndpointsConfig": {"0123abcd": {"Aliases": ["web"]}}}
    assert wall.network_refs(config, PROJECT) == {"0123abcd"}
    assert rules(wall.create_violations(config, PROJECT)) == {"network_mode", "network"}
    assert wall.create_violations(config, PROJECT, project_networks={"0123abcd"}) == []


@pytest.mark.parametrize("what, fields, rule", ESCAPES, ids=[e[0] for e in ESCAPES])
def test_each_escape_is_refused_naming_its_rule(what, fields, rule):
    found = wall.create_violations(with_host(**fields), PROJECT)
    assert rule in rules(found), found
    # What is named is where, never a value that could be a secret.
    assert all("hunter2" not in str(v) for v in found)


ADMIN_ONLY = [e for e in ESCAPES if e[2] not in ("unknown_key", "log_driver")]


@pytest.mark.parametrize("what, fields, rule", ADMIN_ONLY, ids=[e[0] for e in ADMIN_ONLY])
def test_an_admins_container_has_what_policy_let_it_have(what, fields, rule):
    assert wall.create_violations(with_host(**fields), PROJECT, admin=True) == []


def test_what_the_wall_does_not_understand_is_refused_even_an_admin():
    assert rules(wall.create_violations(with_host(Bogus=1), PROJECT, admin=True)) == {"unknown_key"}
    config = with_host()
    config["HostConfig"]["privileged"] = True
    assert rules(wall.create_violations(config, PROJECT, admin=True)) == {"duplicate_key"}


def test_host_fields_at_the_top_level_are_refused():
    # The engine's deprecated create wrapper reads HostConfig's fields at
    # the body's top level too.
    for field in ("Privileged", "VolumeDriver", "Cpuset", "Binds"):
        config = member_config()
        config[field] = True
        assert rules(wall.create_violations(config, PROJECT)) == {"unknown_key"}, field


def test_links_on_an_endpoint_are_refused():
    config = member_config()
    config["NetworkingConfig"]["EndpointsConfig"]["bridge"] = {"Links": ["theirs:db"]}
    assert rules(wall.create_violations(config, PROJECT)) == {"network"}


def test_malformed_values_are_refused_not_crashed_on():
    for fields in ({"Binds": "/:/host"}, {"Mounts": {"Type": "bind"}}, {"Mounts": ["bind"]},
                   {"Binds": [1]}, {"SecurityOpt": "seccomp=unconfined"}, {"PidMode": 1},
                   {"LogConfig": {"Type": "local", "Config": "x"}}):
        assert wall.create_violations(with_host(**fields), PROJECT), fields
    assert wall.create_violations({"HostConfig": []}, PROJECT)
    assert wall.create_violations([], PROJECT)


def test_a_refusal_names_a_bounded_number_of_violations():
    found = wall.create_violations(with_host(**{f"Bogus{i}": 1 for i in range(20)}), PROJECT)
    assert len(found) == 20
    assert wall.describe(found).endswith("; and 15 more")
    long_key = "K" * 10000
    assert len(wall.describe(wall.create_violations(with_host(**{long_key: 1}), PROJECT))) < 200


# -- any spelling Go reads as the field -------------------------------------

#: letters Go's encoding/json (1.21 and after) folds to an ASCII letter
_LOOKALIKES = {"s": "\u017f", "k": "\u212a", "i": "\u0131", "I": "\u0130"}


def respellings(name, lookalikes=False):
    """
    ``name`` with each letter's case chosen freely (and, with
    ``lookalikes``, some letters replaced by non-ASCII ones Go folds to them).
    """
    def letter(c):
        options = [c.lower(), c.upper()]
        if lookalikes and c in _LOOKALIKES:
            options.append(_LOOKALIKES[c])
        if lookalikes and c.lower() in _LOOKALIKES:
            options.append(_LOOKALIKES[c.lower()])
        return st.sampled_from(options)

    return st.tuples(*[letter(c) for c in name]).map("".join)


def respelt(config, path, spelling):
    """
    ``config`` with the key at ``path`` (a list of keys) spelt ``spelling``.
    """
    config = copy.deepcopy(config)
    parent = config
    for key in path[:-1]:
        parent = parent[key]
    parent[spelling] = parent.pop(path[-1])
    return config


HOST_ESCAPES = [(fields, rule) for _what, fields, rule in ESCAPES if rule not in ("unknown_key",)]


@st.composite
def respelt_escape(draw, lookalikes):
    fields, rule = draw(st.sampled_from(HOST_ESCAPES))
    field, value = next(iter(fields.items()))
    config = member_config()
    config["HostConfig"].pop(field, None)
    config["HostConfig"][field] = value
    spelling = draw(respellings(field, lookalikes))
    config = respelt(config, ["HostConfig", field], spelling)
    top = draw(respellings("HostConfig", lookalikes))
    return respelt(config, ["HostConfig"], top), rule


@settings(max_examples=300, deadline=None)
@given(respelt_escape(lookalikes=False))
def test_any_casing_of_an_escaping_key_is_refused_by_its_rule(case):
    config, rule = case
    assert rule in rules(wall.create_violations(config, PROJECT))


@settings(max_examples=300, deadline=None)
@given(respelt_escape(lookalikes=True))
def test_any_spelling_go_reads_as_an_escaping_key_is_refused(case):
    config, _rule = case
    assert wall.create_violations(config, PROJECT)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["Privileged", "CapAdd", "NetworkMode", "Binds", "SecurityOpt"]), st.data())
def test_a_second_spelling_of_a_field_is_refused(field, data):
    spelling = data.draw(respellings(field).filter(lambda s: s != field))
    config = member_config()
    config["HostConfig"][spelling] = config["HostConfig"].get(field)
    assert "duplicate_key" in rules(wall.create_violations(config, PROJECT))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_mount_typed_bind_in_any_casing_of_its_keys_is_refused(data):
    mount = {"Type": "bind", "Source": "/", "Target": "/host"}
    spelt = {data.draw(respellings(key)): value for key, value in mount.items()}
    assert "host_bind" in rules(wall.create_violations(with_host(Mounts=[spelt]), PROJECT))


_FREE_VALUES = {
    "Memory": st.integers(0, 1 << 40), "CpuShares": st.integers(0, 1024), "PidsLimit": st.integers(-1, 1000),
    "ShmSize": st.integers(0, 1 << 30), "ReadonlyRootfs": st.booleans(), "Init": st.booleans(),
    "CapDrop": st.lists(st.sampled_from(["ALL", "NET_RAW", "CHOWN"]), max_size=3),
    "Dns": st.lists(st.sampled_from(["1.1.1.1", "9.9.9.9"]), max_size=2),
    "SecurityOpt": st.lists(st.sampled_from(sorted(wall.TIGHTENING)), max_size=2),
    "IpcMode": st.sampled_from(["", "private", "shareable", "none"]),
    "NetworkMode": st.sampled_from(["", "default", "bridge", "none", engine_network(PROJECT, "n")]),
    "Privileged": st.just(False), "CapAdd": st.just([]), "Runtime": st.sampled_from(["", "runc"]),
    "Binds": st.lists(st.sampled_from([engine_volume(PROJECT, "a") + ":/a", engine_volume(PROJECT, "b") + ":/b:ro"]),
                      max_size=2),
}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(_FREE_VALUES)), st.none(), max_size=6), st.data())
def test_allowed_configs_pass_however_their_keys_are_cased(chosen, data):
    host = {"LogConfig": {"Type": "local", "Config": {}}}
    for field in chosen:
        host[data.draw(respellings(field))] = data.draw(_FREE_VALUES[field])
    config = {"Image": "csvc/busybox", data.draw(respellings("HostConfig")): host}
    assert wall.create_violations(config, PROJECT) == []


# -- update, exec, connect ---------------------------------------------------


def test_an_update_changes_resources_and_the_restart_policy_only():
    assert wall.update_violations({"Memory": 1 << 20, "cpuquota": 50000, "RestartPolicy": {"Name": "always"}}) == []
    for body, rule in (({"Privileged": True}, "unknown_key"), ({"Devices": []}, "unknown_key"),
                       ({"CgroupParent": "/"}, "unknown_key"), ({"Memory": 1, "memory": 2}, "duplicate_key"),
                       ({"Memory": "1g"}, "malformed"), ({"RestartPolicy": {"Name": "no", "X": 1}}, "unknown_key")):
        assert rule in rules(wall.update_violations(body)), body


def test_an_exec_is_not_privileged_unless_an_admins_and_any_user_is_fine():
    spec = {"command": ["id"], "tty": False, "interactive": False, "environment": {}, "workdir": None,
            "user": "root"}
    assert wall.exec_violations(spec) == []
    assert rules(wall.exec_violations(dict(spec, privileged=True))) == {"privileged"}
    assert wall.exec_violations(dict(spec, privileged=True, admin=True)) == []
    assert rules(wall.exec_violations(dict(spec, cap_add=["SYS_ADMIN"]))) == {"unknown_key"}


def test_a_container_is_connected_to_its_projects_networks_only():
    assert wall.connect_violations(engine_network(PROJECT, "back"), PROJECT) == []
    for name in (engine_network(OTHER, "back"), "bridge", "host", "none", engine_network(PROJECT, ""), "corp"):
        assert rules(wall.connect_violations(name, PROJECT)) == {"network"}, name


# -- the Docker engine, the wall in front of a recording SDK -----------------


class RecordingAPI:
    """
    The SDK's low-level client as far as a create, an exec and a connect go:
    what would have reached the engine is recorded.
    """

    def __init__(self, containers=None, networks=None):
        self.created = []
        self.execs = []
        self.connected = []
        self._containers = containers or {}
        self._networks = networks or {}

    def inspect_image(self, name):
        return {"Config": {"Volumes": None}}

    def inspect_container(self, ident):
        if ident not in self._containers:
            from docker.errors import NotFound

            raise NotFound(f"No such container: {ident}")
        return {"Config": {"Labels": {docker_engine.LABEL_PROJECT: self._containers[ident]}}}

    def inspect_network(self, ident):
        if ident not in self._networks:
            from docker.errors import NotFound

            raise NotFound(f"network {ident} not found")
        return {"Labels": {docker_engine.LABEL_PROJECT: self._networks[ident]}}

    def create_container_from_config(self, config, name):
        self.created.append((name, config))
        return {"Id": "e-" + name}

    def exec_create(self, container, cmd, **kwargs):
        self.execs.append((container, cmd, kwargs))
        return {"Id": "x1"}

    def connect_container_to_network(self, container, name, aliases=None):
        self.connected.append((container, name))


class RecordingClient:
    def __init__(self, api):
        self.api = api


def spec(**docker_config):
    return {"uuid": "u1", "project_id": PROJECT, "image": "csvc/busybox", "command": ["true"],
            "environment": {"SECRET": "hunter2"}, "docker_config": docker_config}


def test_an_escaping_create_never_reaches_the_engine():
    api = RecordingAPI()
    with pytest.raises(commands.Refused) as refused:
        docker_create.create(RecordingClient(api), spec(HostConfig={"Privileged": True, "Binds": ["/:/host"]}))
    assert api.created == []
    assert "HostConfig.Privileged (privileged)" in str(refused.value)
    assert "host_bind" in str(refused.value) and "hunter2" not in str(refused.value)


def test_a_members_create_and_an_admins_reach_the_engine():
    api = RecordingAPI()
    assert docker_create.create(RecordingClient(api), spec(HostConfig={"CapDrop": ["ALL"]})) == "e-csvc-u1"
    admin = dict(spec(HostConfig={"Privileged": True}), admin=True)
    docker_create.create(RecordingClient(api), admin)
    assert [config["HostConfig"].get("Privileged") for _name, config in api.created] == [None, True]
    # Only a JSON true makes an admin's.
    with pytest.raises(commands.Refused):
        docker_create.create(RecordingClient(api), dict(spec(HostConfig={"Privileged": True}), admin="yes"))


def test_another_containers_namespace_is_joined_only_if_it_is_the_projects():
    api = RecordingAPI(containers={"mine": PROJECT, "theirs": OTHER})
    docker_create.create(RecordingClient(api), spec(HostConfig={"PidMode": "container:mine"}))
    for ident in ("theirs", "gone"):
        with pytest.raises(commands.Refused):
            docker_create.create(RecordingClient(api), spec(HostConfig={"PidMode": f"container:{ident}"}))
    assert len(api.created) == 1


def test_a_network_named_by_id_is_joined_only_if_it_is_the_projects():
    api = RecordingAPI(networks={"abc123": PROJECT, "def456": OTHER})
    config = {"HostConfig": {"NetworkMode": "abc123"}}
    assert docker_create.walled(RecordingClient(api), spec(), config) is None
    with pytest.raises(commands.Refused):
        docker_create.walled(RecordingClient(api), spec(), {"HostConfig": {"NetworkMode": "def456"}})


class Engine(docker_engine.DockerEngine):
    """
    The engine with its SDK calls run at once on the recording client.
    """

    def __init__(self, api):
        super().__init__(Clock())
        self._client = RecordingClient(api)

    def _call(self, fn, *args):
        from twisted.internet.defer import maybeDeferred

        return maybeDeferred(fn, self._client, *args)


def failure_of(d):
    failures = []
    d.addErrback(failures.append)
    assert failures, "it did not fail"
    return failures[0]


def test_a_privileged_exec_is_refused_and_logged():
    api = RecordingAPI()
    engine = Engine(api)
    logged = []
    engine.log = Logger(observer=logged.append)
    failure = failure_of(engine.exec_create("u1", {"command": ["sh"], "privileged": True}))
    assert failure.check(commands.Refused) and api.execs == []
    assert [e["uuid"] for e in logged if "refused" in e["log_format"]] == ["u1"]
    engine.exec_create("u1", {"command": ["id"], "user": "root"})
    assert [kwargs["privileged"] for _c, _cmd, kwargs in api.execs] == [False]


def test_an_update_beyond_resources_is_refused_before_the_engine():
    engine = Engine(RecordingAPI())
    requests = []
    engine._http = type("Http", (), {"request": lambda self, *a: requests.append(a)})()
    failure = failure_of(engine.update("u1", {"Memory": 1 << 20, "Devices": [{"PathOnHost": "/dev/sda"}]}))
    assert failure.check(commands.Refused) and requests == []


def test_a_connect_to_another_projects_network_is_refused():
    api = RecordingAPI(containers={"csvc-u1": PROJECT})
    engine = Engine(api)
    assert failure_of(engine.connect_network("u1", engine_network(OTHER, "n"), [])).check(commands.Refused)
    engine.connect_network("u1", engine_network(PROJECT, "n"), [])
    assert api.connected == [("csvc-u1", engine_network(PROJECT, "n"))]


def test_the_lxc_engine_refuses_the_same_options_by_name():
    engine = lxc_engine.LxcEngine(Clock(), "/nonexistent")
    failure = failure_of(engine.create(spec(HostConfig={"Privileged": True})))
    assert failure.check(commands.Refused) and "privileged" in str(failure.value)
    # Harmless options are still not this engine's (as before), but for the
    # safe defaults' (pids limit, capabilities dropped, no-new-privileges).
    assert failure_of(engine.create(spec(HostConfig={"ReadonlyRootfs": True}))).check(commands.InvalidSpec)


def test_zero_values_of_fields_csvc_does_not_offer_are_the_engines_defaults():
    zeros = {"OomScoreAdj": 0, "Links": [], "VolumesFrom": None, "ContainerIDFile": "", "CgroupnsMode": "",
             "StorageOpt": {}, "Isolation": "", "BlkioWeightDevice": []}
    assert wall.create_violations(with_host(**zeros), PROJECT) == []
    # Except an empty list of masked (or read-only) paths: none at all.
    for field in ("MaskedPaths", "ReadonlyPaths"):
        assert rules(wall.create_violations(with_host(**{field: []}), PROJECT)) == {"host_option"}
        assert wall.create_violations(with_host(**{field: None}), PROJECT) == []


# -- what the agent keeps, scopes and rebuilds, however a key is spelt --------


def test_published_ports_obey_the_rules_however_the_key_is_spelt():
    from csvc.wire.port_rules import PortRules

    rules = PortRules(addresses=("192.0.2.10",), reserved=frozenset({8780}))
    api = RecordingAPI()
    for key in ("PortBindings", "portbindings", "PORTBINDINGS", "portBindings"):
        with pytest.raises(commands.InvalidSpec, match="8780"):
            docker_create.create(RecordingClient(api), spec(HostConfig={key: {"80/tcp": [{"HostPort": "8780"}]}}),
                                 port_rules=rules)
    for key in ("publishallports", "PublishAllPorts"):
        with pytest.raises(commands.InvalidSpec, match="PublishAllPorts"):
            docker_create.create(RecordingClient(api), spec(HostConfig={key: True}), port_rules=rules)
    assert api.created == []
    # What the rules allow is rebuilt, under the engine's name for the field.
    docker_create.create(RecordingClient(api), spec(HostConfig={"portbindings": {"80": [{"HostPort": "8080"}]}}),
                         port_rules=rules)
    host = api.created[0][1]["HostConfig"]
    assert host["PortBindings"] == {"80/tcp": [{"HostIp": "192.0.2.10", "HostPort": "8080"}]}
    assert "portbindings" not in host


def test_a_named_volume_is_the_projects_however_binds_is_spelt():
    api = RecordingAPI()
    docker_create.create(RecordingClient(api), spec(HostConfig={"binds": ["cache:/cache"]}))
    assert api.created[0][1]["HostConfig"]["Binds"] == [engine_volume(PROJECT, "cache") + ":/cache"]


def test_a_field_spelt_twice_in_the_options_is_refused():
    api = RecordingAPI()
    with pytest.raises(commands.InvalidSpec, match="PortBindings"):
        docker_create.create(RecordingClient(api), spec(HostConfig={"PortBindings": {}, "portbindings": {}}))
    assert api.created == []


def test_a_client_never_sets_csvcs_own_labels():
    api = RecordingAPI()
    forged = {"csvc.auto_remove": "1", "csvc.project": OTHER, "csvc.instance": "i-theirs", "CSVC.uuid": "u9",
              "csvc.default_network": "1", "team": "web"}
    docker_create.create(RecordingClient(api), dict(spec(), labels=forged, instance_uuid="i-mine"))
    labels = api.created[0][1]["Labels"]
    assert labels == {"csvc.uuid": "u1", "csvc.project": PROJECT, "csvc.instance": "i-mine", "team": "web"}
    assert docker_engine._summary({"Config": {"Labels": labels}})["auto_remove"] is False
