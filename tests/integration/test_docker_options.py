"""
Docker's container options through the docker SDK against a running csvc:
the honoured ones take effect inside the container (or show in inspect),
the host-escaping ones are refused for a member (403 naming the option,
nothing created on the engine) and allowed for an admin.
"""

import time
import uuid

import docker
import pytest
from docker.types import Mount, Ulimit

IMAGE = "csvc/busybox"
MiB = 1024 * 1024


def _sdk(control_plane, client):
    sdk = docker.DockerClient(base_url=control_plane.base.replace("http://", "tcp://"), timeout=60)
    sdk.api.headers.update({k: v for k, v in client.session.headers.items() if k.startswith("X-Auth")})
    return sdk


@pytest.fixture(scope="module")
def sdk(control_plane, alpha):
    client = _sdk(control_plane, alpha)
    yield client
    client.close()


@pytest.fixture(scope="module")
def admin_sdk(control_plane):
    client = _sdk(control_plane, control_plane.admin)
    yield client
    client.close()


@pytest.fixture(scope="module")
def engine():
    client = docker.from_env()
    yield client
    for volume in client.volumes.list(filters={"name": "-opt-"}):
        try:
            volume.remove(force=True)
        except docker.errors.APIError:
            pass
    client.close()


@pytest.fixture(scope="module")
def member(control_plane):
    """
    A member of a project of its own (alpha's, but unique to this run): the
    engine is shared with other test runs, whose alpha containers come and go.
    """
    return control_plane.client(f"alpha{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def member_sdk(control_plane, member):
    client = _sdk(control_plane, member)
    yield client
    client.close()


def on_engine(engine, project):
    return sorted(c.id for c in engine.containers.list(all=True, filters={"label": f"csvc.project={project}"}))


def run(sdk, script, **options):
    return sdk.containers.run(IMAGE, ["sh", "-c", script], remove=True, **options).decode()


def test_identity_and_environment_options(sdk, engine):
    # On the project's own network (issue 18) the container's resolver is
    # the engine's embedded one, and the --dns servers are its upstream.
    out = run(
        sdk, "id -u; id -g; hostname; pwd; echo $GREETING; grep nofile-marker /dev/null; ulimit -n; "
             "grep 'db.internal' /etc/hosts; grep -c '^nameserver 127.0.0.11' /etc/resolv.conf",
        user="1234:2345", hostname="opt-host", working_dir="/tmp", environment={"GREETING": "hello"},
        ulimits=[Ulimit(name="nofile", soft=512, hard=512)], extra_hosts={"db.internal": "10.1.2.3"},
        dns=["9.9.9.9"],
    )
    lines = out.split("\n")
    assert lines[:5] == ["1234", "2345", "opt-host", "/tmp", "hello"]
    assert lines[5] == "512"
    assert "10.1.2.3" in lines[6] and "db.internal" in lines[6]
    assert lines[7] == "1"
    container = sdk.containers.create(IMAGE, ["true"], dns=["9.9.9.9"])
    try:
        assert engine.containers.get(container.id).attrs["HostConfig"]["Dns"] == ["9.9.9.9"]
    finally:
        container.remove(force=True)


def test_read_only_rootfs_tmpfs_and_shm(sdk):
    out = run(
        sdk, "touch /probe 2>/dev/null && echo wrote || echo refused; "
             "grep ' /scratch ' /proc/mounts | cut -d' ' -f3; touch /scratch/ok && echo tmpfs-ok; "
             "df -k /dev/shm | tail -1 | awk '{print $2}'",
        read_only=True, tmpfs={"/scratch": "size=1m"}, shm_size="8m",
    )
    assert out.split("\n")[:4] == ["refused", "tmpfs", "tmpfs-ok", "8192"]


def test_resources_in_the_cgroup_and_in_inspect(sdk, engine):
    script = ("cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
              "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max")
    container = sdk.containers.run(
        IMAGE, ["sh", "-c", script], detach=True, mem_limit="64m", memswap_limit="128m", cpu_shares=512,
        pids_limit=42, nano_cpus=500_000_000, mem_reservation="32m", init=True,
    )
    try:
        assert container.wait()["StatusCode"] == 0
        assert container.logs().decode().split() == [str(64 * MiB), "42"]
        host = container.attrs["HostConfig"]
        assert host["Memory"] == 64 * MiB and host["MemorySwap"] == 128 * MiB
        assert host["MemoryReservation"] == 32 * MiB
        assert host["CpuShares"] == 512 and host["PidsLimit"] == 42 and host["NanoCpus"] == 500_000_000
        assert host["Init"] is True
        on_engine = engine.containers.get(container.id).attrs["HostConfig"]
        assert on_engine["Memory"] == 64 * MiB and on_engine["CpuShares"] == 512 and on_engine["Init"] is True
        assert on_engine["LogConfig"]["Type"] == "local"
    finally:
        container.remove(force=True)


def test_cpuset_dns_options_and_oom_kill_disable(sdk, engine):
    """
    CpusetCpus pins the process (its allowed CPUs), DnsOptions reach
    resolv.conf, and OomKillDisable (with the memory limit it needs) is
    passed to the engine, which applies it where the kernel has it (cgroup
    v1; cgroup v2 has no such switch).
    """
    container = sdk.containers.run(
        IMAGE, ["sh", "-c", "grep Cpus_allowed_list /proc/self/status | cut -f2; grep '^options' /etc/resolv.conf"],
        detach=True, cpuset_cpus="0", dns_opt=["ndots:3"], mem_limit="64m", oom_kill_disable=True,
    )
    try:
        assert container.wait()["StatusCode"] == 0
        lines = container.logs().decode().split("\n")
        assert lines[0] == "0"
        assert "ndots:3" in lines[1]
        host = container.attrs["HostConfig"]
        assert host["CpusetCpus"] == "0" and host["DnsOptions"] == ["ndots:3"] and host["OomKillDisable"] is True
        on_engine = engine.containers.get(container.id).attrs["HostConfig"]
        assert on_engine["CpusetCpus"] == "0" and on_engine["DnsOptions"] == ["ndots:3"]
        assert on_engine["OomKillDisable"] is True
    finally:
        container.remove(force=True)


def test_config_options_are_reflected_in_inspect(sdk, engine, alpha):
    container = sdk.containers.create(
        IMAGE, ["sleep", "30"], entrypoint=["/bin/sh", "-c", 'exec "$@"', "entry"], domainname="example.test",
        stop_signal="SIGUSR1", labels={"tier": "web", "csvc.uuid": "forged", "csvc.instance": "forged"},
        healthcheck={"test": ["CMD", "true"], "interval": 1_000_000_000}, ports={"8080/tcp": None},
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 2}, dns_search=["example.test"],
        volumes={"opt-data": {"bind": "/data", "mode": "rw"}},
        mounts=[Mount(target="/cache", source="opt-cache", type="volume")],
    )
    try:
        config, host = container.attrs["Config"], container.attrs["HostConfig"]
        assert config["Entrypoint"] == ["/bin/sh", "-c", 'exec "$@"', "entry"]
        assert config["Domainname"] == "example.test" and config["StopSignal"] == "SIGUSR1"
        assert config["Healthcheck"]["Test"] == ["CMD", "true"]
        assert "8080/tcp" in config["ExposedPorts"]
        assert config["Labels"]["tier"] == "web"
        assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        assert host["DnsSearch"] == ["example.test"]
        assert {m["Name"] for m in container.attrs["Mounts"]} == {"opt-data", "opt-cache"}
        engine_attrs = engine.containers.get(container.id).attrs
        # csvc's own labels win; the project's volumes are its own on the engine.
        assert engine_attrs["Config"]["Labels"]["csvc.uuid"] != "forged"
        row = alpha.get(f"/v1/containers/{engine_attrs['Config']['Labels']['csvc.uuid']}").json()
        assert engine_attrs["Config"]["Labels"]["csvc.instance"] == row["instance"]
        assert engine_attrs["Config"]["StopSignal"] == "SIGUSR1"
        assert engine_attrs["HostConfig"]["RestartPolicy"]["Name"] == "on-failure"
        assert "csvc-alpha-opt-data:/data:rw" in engine_attrs["HostConfig"]["Binds"]
        container.start()
        result = container.exec_run(["sh", "-c", "echo kept > /data/f; cat /data/f; grep ' /cache ' /proc/mounts"])
        assert result.exit_code == 0 and result.output.startswith(b"kept\n")
        assert engine.containers.get(container.id).attrs["State"]["Health"]["Status"] in ("starting", "healthy")
        deadline = time.monotonic() + 15
        while True:
            container.reload()
            health = container.attrs["State"].get("Health") or {}
            if health.get("Status") == "healthy" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert health["Status"] == "healthy" and health["Log"][-1]["ExitCode"] == 0
    finally:
        container.remove(force=True)


def test_named_volume_outlives_the_container(sdk):
    run(sdk, "echo persisted > /v/file", volumes={"opt-keep": {"bind": "/v", "mode": "rw"}})
    assert run(sdk, "cat /v/file", volumes={"opt-keep": {"bind": "/v", "mode": "ro"}}) == "persisted\n"


def test_named_volumes_are_the_projects_own(sdk, control_plane, beta):
    run(sdk, "echo alphas > /v/file", volumes={"opt-shared": {"bind": "/v", "mode": "rw"}})
    other = _sdk(control_plane, beta)
    try:
        seen = other.containers.run(IMAGE, ["sh", "-c", "cat /v/file 2>/dev/null; echo end"], remove=True,
                                    volumes={"opt-shared": {"bind": "/v", "mode": "rw"}})
    finally:
        other.close()
    assert seen == b"end\n"


def test_unknown_options_are_dropped_with_a_warning(sdk):
    created = sdk.api.create_container(IMAGE, ["true"], host_config=sdk.api.create_host_config(oom_score_adj=-500))
    try:
        assert created["Warnings"] == ["HostConfig.OomScoreAdj is not supported by csvc and was ignored"]
    finally:
        sdk.api.remove_container(created["Id"], force=True)


#: (options of containers.create, what the 403 names)
REFUSED = [
    ({"privileged": True}, "HostConfig.Privileged"),
    ({"cap_add": ["SYS_ADMIN"]}, "HostConfig.CapAdd"),
    ({"devices": ["/dev/kmsg:/dev/kmsg:rwm"]}, "HostConfig.Devices"),
    ({"device_requests": [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]},
     "HostConfig.DeviceRequests"),
    ({"security_opt": ["seccomp=unconfined"]}, "seccomp=unconfined"),
    ({"security_opt": ["apparmor=unconfined"]}, "apparmor=unconfined"),
    ({"security_opt": ["label=disable"]}, "label=disable"),
    ({"security_opt": ["no-new-privileges=false"]}, "no-new-privileges=false"),
    ({"volumes": {"/etc": {"bind": "/host-etc", "mode": "ro"}}}, "HostConfig.Binds /etc"),
    ({"mounts": [Mount(target="/host", source="/", type="bind")]}, "HostConfig.Mounts bind /"),
    ({"mounts": [Mount(target="/v", source="opt-x", driver_config=docker.types.DriverConfig(
        "local", {"type": "none", "o": "bind", "device": "/etc"}))]}, "volume driver options"),
    ({"volume_driver": "convoy"}, "HostConfig.VolumeDriver convoy"),
    ({"network_mode": "host"}, "HostConfig.NetworkMode host"),
    ({"network_mode": "container:0123abcd"}, "HostConfig.NetworkMode container:0123abcd"),
    ({"pid_mode": "host"}, "HostConfig.PidMode host"),
    ({"ipc_mode": "host"}, "HostConfig.IpcMode host"),
    ({"uts_mode": "host"}, "HostConfig.UTSMode host"),
    ({"userns_mode": "host"}, "HostConfig.UsernsMode host"),
    ({"sysctls": {"net.ipv4.ip_forward": "1"}}, "HostConfig.Sysctls"),
    ({"cgroup_parent": "/escape"}, "HostConfig.CgroupParent"),
    ({"runtime": "runsc"}, "HostConfig.Runtime runsc"),
]


@pytest.mark.parametrize("options, named", REFUSED, ids=[n for _, n in REFUSED])
def test_host_escaping_options_are_refused_for_a_member(member_sdk, member, engine, options, named):
    before = on_engine(engine, member.project)
    with pytest.raises(docker.errors.APIError) as refused:
        member_sdk.containers.create(IMAGE, ["true"], **options)
    assert refused.value.status_code == 403
    assert named in refused.value.explanation
    assert "container:create:" in refused.value.explanation
    assert on_engine(engine, member.project) == before


def test_an_admin_may_create_privileged_and_share_the_host_network(admin_sdk, engine):
    # Created with the options on the engine (a privileged run itself needs
    # an engine that may grant every capability, which a nested one may not).
    container = admin_sdk.containers.create(
        IMAGE, ["true"], privileged=True, cap_add=["SYS_ADMIN"], security_opt=["seccomp=unconfined"],
    )
    try:
        host = engine.containers.get(container.id).attrs["HostConfig"]
        assert host["Privileged"] is True and host["CapAdd"] == ["SYS_ADMIN"]
        assert "seccomp=unconfined" in host["SecurityOpt"]
        assert container.attrs["HostConfig"]["Privileged"] is True
    finally:
        container.remove(force=True)
    out = admin_sdk.containers.run(IMAGE, ["hostname"], network_mode="host", remove=True).decode()
    assert out.strip() == engine.info()["Name"]


@pytest.fixture(scope="module")
def cli(control_plane, member, tmp_path_factory):
    import json
    import os
    import subprocess

    config = tmp_path_factory.mktemp("docker-options-config")
    headers = {k: v for k, v in member.session.headers.items() if k.startswith("X-Auth")}
    (config / "config.json").write_text(json.dumps({"HttpHeaders": headers}))
    env = dict(os.environ, DOCKER_HOST=control_plane.base.replace("http://", "tcp://"), DOCKER_CONFIG=str(config))

    def run(*args):
        return subprocess.run(["/usr/bin/docker", *args], capture_output=True, timeout=60, env=env)

    return run


def test_cli_flags_take_effect_without_warnings(cli, member):
    result = cli(
        "run", "--rm", "--read-only", "--tmpfs", "/scratch", "--user", "1234", "--hostname", "cli-host",
        "--workdir", "/tmp", "--add-host", "db.internal:10.1.2.3", "--memory", "64m", "--ulimit", "nofile=256:256",
        "--pids-limit", "33", "--init", "--cap-drop", "ALL", IMAGE, "sh", "-c",
        "id -u; hostname; pwd; ulimit -n; grep -c db.internal /etc/hosts; touch /x 2>/dev/null || echo ro; "
        "touch /scratch/y && echo tmpfs",
    )
    assert result.stderr == b""
    assert result.stdout.decode().split() == ["1234", "cli-host", "/tmp", "256", "1", "ro", "tmpfs"]


@pytest.mark.parametrize("flags, named", [
    (["--privileged"], "HostConfig.Privileged"),
    (["-v", "/etc:/host-etc"], "HostConfig.Binds /etc"),
    (["--pid", "host"], "HostConfig.PidMode host"),
    (["--security-opt", "apparmor=unconfined"], "apparmor=unconfined"),
    (["--security-opt", "seccomp=unconfined"], "seccomp=unconfined"),
    (["--security-opt", "label=disable"], "label=disable"),
    (["--security-opt", "no-new-privileges=false"], "no-new-privileges=false"),
    (["--cap-add", "SYS_ADMIN"], "HostConfig.CapAdd"),
    (["--device", "/dev/kmsg"], "HostConfig.Devices"),
    (["--gpus", "all"], "HostConfig.DeviceRequests"),
    (["--mount", "type=bind,source=/,target=/host"], "HostConfig.Mounts bind /"),
    (["--volume-driver", "convoy"], "HostConfig.VolumeDriver convoy"),
    (["--network", "host"], "HostConfig.NetworkMode host"),
    (["--network", "container:0123abcd"], "HostConfig.NetworkMode container:0123abcd"),
    (["--ipc", "host"], "HostConfig.IpcMode host"),
    (["--uts", "host"], "HostConfig.UTSMode host"),
    (["--userns", "host"], "HostConfig.UsernsMode host"),
    (["--sysctl", "net.ipv4.ip_forward=1"], "HostConfig.Sysctls"),
    (["--cgroup-parent", "/escape"], "HostConfig.CgroupParent"),
    (["--runtime", "runsc"], "HostConfig.Runtime runsc"),
])
def test_cli_refusals_name_the_option(cli, member, engine, flags, named):
    before = on_engine(engine, member.project)
    result = cli("run", "--rm", *flags, IMAGE, "true")
    assert result.returncode == 125
    assert named in result.stderr.decode()
    assert on_engine(engine, member.project) == before


def test_stop_without_a_timeout_uses_stop_timeout(sdk):
    # PID 1 ignores SIGTERM: the stop lasts until the timeout's SIGKILL.
    created = sdk.api.create_container(IMAGE, ["sleep", "300"], stop_timeout=1)
    container = sdk.containers.get(created["Id"])
    try:
        container.start()
        assert container.attrs["Config"]["StopTimeout"] == 1
        began = time.monotonic()
        container.stop()
        assert time.monotonic() - began < 6
    finally:
        container.remove(force=True)


def test_restart_policy_runs_are_followed(sdk, engine):
    container = sdk.containers.run(
        IMAGE, ["sh", "-c", "echo run; exit 3"], detach=True,
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 2},
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            on_engine = engine.containers.get(container.id).attrs
            if on_engine["RestartCount"] == 2 and not on_engine["State"]["Running"] \
                    and not on_engine["State"]["Restarting"]:
                break
            time.sleep(0.2)
        assert on_engine["RestartCount"] == 2
        assert container.wait(timeout=30)["StatusCode"] == 3
        deadline = time.monotonic() + 10
        while container.logs().count(b"run\n") < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert container.logs() == b"run\nrun\nrun\n"
    finally:
        container.remove(force=True)
