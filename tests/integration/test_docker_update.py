"""
``docker update`` on csvc: resources and restart policy reach the engine
(the container's cgroup), the record (inspect) and the project's quota;
refused options stay refused.  Also a create's ``LogConfig``.
"""

import json
import os
import subprocess
import uuid

import docker
import pytest

from tests.integration.conftest import docker_sdk as _client
from tests.integration.test_docker_more import IMAGE, _not_found, _running

MiB = 1024 * 1024

#: The container's own limits, from its cgroup (v2, else v1).
LIMITS = (
    "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
    "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max; "
    "cat /sys/fs/cgroup/cpu.max 2>/dev/null | cut -d' ' -f1 || true; "
    "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || true"
)


@pytest.fixture(scope="module")
def engine():
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture
def tenant(control_plane):
    """
    A project of its own, whose quota the test may change.
    """
    tenant = control_plane.client(f"upd-{uuid.uuid4().hex[:8]}")
    client = _client(control_plane, tenant)
    client.tenant = tenant
    yield client
    for c in tenant.get("/v1/containers").json()["containers"]:
        tenant.delete(f"/v1/containers/{c['uuid']}", params={"force": "true"})
    control_plane.admin.delete(f"/v1/quotas/{tenant.project}")
    client.close()




def _cli(control_plane, tenant, tmp_path, *args):
    headers = {k: v for k, v in tenant.session.headers.items() if k.startswith("X-Auth")}
    (tmp_path / "config.json").write_text(json.dumps({"HttpHeaders": headers}))
    env = dict(os.environ, DOCKER_HOST=control_plane.base.replace("http://", "tcp://"), DOCKER_CONFIG=str(tmp_path))
    return subprocess.run(["/usr/bin/docker", *args], env=env, capture_output=True, timeout=120)


def _limits(container):
    result = container.exec_run(["sh", "-c", LIMITS])
    assert result.exit_code == 0, result.output
    return result.output.decode().split()


def _update(client, container, body):
    return client.api._result(
        client.api._post_json(client.api._url("/containers/{0}/update", container.id), data=body), True)


def test_update_reaches_the_cgroup_inspect_and_engine(tenant, other, engine):
    container = _running(tenant.containers.run(IMAGE, ["sleep", "300"], detach=True, mem_limit="64m",
                                               memswap_limit="128m"))
    # (a container's pids limit is csvc's default, 4096, until the update)
    assert _limits(container)[:2] == [str(64 * MiB), "4096"]
    answer = _update(tenant, container, {
        "Memory": 96 * MiB, "MemorySwap": 192 * MiB, "MemoryReservation": 48 * MiB, "NanoCpus": 500_000_000,
        "CpuShares": 256, "PidsLimit": 33, "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
    })
    assert answer["Warnings"] == []
    memory, pids, *cpu = _limits(container)
    assert (memory, pids) == (str(96 * MiB), "33")
    assert "50000" in cpu  # half of the 100 ms period
    container.reload()
    host = container.attrs["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["MemoryReservation"]) == (96 * MiB, 192 * MiB, 48 * MiB)
    assert (host["NanoCpus"], host["CpuShares"], host["PidsLimit"]) == (500_000_000, 256, 33)
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    on_engine = engine.containers.get(container.id).attrs["HostConfig"]
    assert on_engine["Memory"] == 96 * MiB and on_engine["PidsLimit"] == 33
    assert on_engine["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    # The project's quota counts the new memory and cpu.
    usage = tenant.tenant.get(f"/v1/quotas/{tenant.tenant.project}/usage").json()
    assert usage["memory"]["in_use"] == 96 and usage["cpu"]["in_use"] == 0.5
    _not_found(lambda: other.api.update_container(container.id, mem_limit="128m"))


def test_update_with_the_cli(control_plane, tenant, tmp_path):
    container = _running(tenant.containers.run(IMAGE, ["sleep", "300"], detach=True))
    result = _cli(control_plane, tenant.tenant, tmp_path, "update", "--memory", "80m", "--memory-swap", "160m",
                  "--pids-limit", "21", "--cpus", "0.25", "--restart", "always", container.id)
    assert result.returncode == 0, result.stderr
    memory, pids, *cpu = _limits(container)
    assert (memory, pids) == (str(80 * MiB), "21")
    assert "25000" in cpu
    container.reload()
    host = container.attrs["HostConfig"]
    assert (host["Memory"], host["PidsLimit"], host["NanoCpus"]) == (80 * MiB, 21, 250_000_000)
    assert host["RestartPolicy"]["Name"] == "always"
    empty = _cli(control_plane, tenant.tenant, tmp_path, "update", container.id)
    assert empty.returncode != 0
    assert b"you must provide one or more flags" in empty.stderr


def test_update_is_counted_against_the_quota(control_plane, tenant, engine):
    project = tenant.tenant.project
    assert control_plane.admin.request("PUT", f"/v1/quotas/{project}", json={"memory": 100, "cpu": 1}).ok
    container = _running(tenant.containers.run(IMAGE, ["sleep", "300"], detach=True, mem_limit="64m"))
    with pytest.raises(docker.errors.APIError) as over:
        container.update(mem_limit="128m")
    assert over.value.status_code == 403
    assert "quota exceeded for memory: limit 100, in use 0, requested 128" in str(over.value)
    with pytest.raises(docker.errors.APIError) as cpus:
        _update(tenant, container, {"NanoCpus": 2_000_000_000})
    assert cpus.value.status_code == 403
    assert "quota exceeded for cpu" in str(cpus.value)
    # Nothing changed, on the engine nor in the record.
    assert engine.containers.get(container.id).attrs["HostConfig"]["Memory"] == 64 * MiB
    container.reload()
    assert container.attrs["HostConfig"]["Memory"] == 64 * MiB
    assert tenant.tenant.get(f"/v1/quotas/{project}/usage").json()["memory"]["in_use"] == 64
    # Within the quota it goes through.
    container.update(mem_limit="100m")
    assert _limits(container)[0] == str(100 * MiB)


def test_engine_refusal_leaves_the_record(tenant, engine):
    container = _running(tenant.containers.run(IMAGE, ["sleep", "300"], detach=True, mem_limit="64m",
                                               memswap_limit="128m"))
    with pytest.raises(docker.errors.APIError) as refused:
        # A swap limit below the memory limit: the engine's 400.
        _update(tenant, container, {"Memory": 96 * MiB, "MemorySwap": 80 * MiB})
    assert refused.value.status_code == 400
    container.reload()
    assert container.attrs["HostConfig"]["Memory"] == 64 * MiB
    assert engine.containers.get(container.id).attrs["HostConfig"]["Memory"] == 64 * MiB
    usage = tenant.tenant.get(f"/v1/quotas/{tenant.tenant.project}/usage").json()
    assert usage["memory"]["in_use"] == 64


@pytest.mark.parametrize("body, status, words", [
    ({"CgroupParent": "/escape"}, 403, "HostConfig.CgroupParent is not allowed"),
    ({"Devices": [{"PathOnHost": "/dev/kmsg", "PathInContainer": "/dev/kmsg", "CgroupPermissions": "r"}]}, 403,
     "HostConfig.Devices is not allowed"),
    ({"BlkioWeight": 300}, 400, "BlkioWeight cannot be updated by csvc"),
    ({"Memory": "lots"}, 400, "Memory: must be an integer"),
    ({"RestartPolicy": {"Name": "sometimes"}}, 400, "invalid restart policy"),
])
def test_update_refusals(tenant, engine, body, status, words):
    container = tenant.containers.create(IMAGE, ["true"])
    with pytest.raises(docker.errors.APIError) as refused:
        _update(tenant, container, body)
    assert refused.value.status_code == status
    assert words in str(refused.value)
    on_engine = engine.containers.get(container.id).attrs["HostConfig"]
    assert on_engine["CgroupParent"] == "" and not on_engine["Devices"] and on_engine["BlkioWeight"] == 0


def test_restart_policy_with_auto_remove_is_refused(tenant):
    container = tenant.containers.create(IMAGE, ["true"], auto_remove=True)
    with pytest.raises(docker.errors.APIError) as refused:
        container.update(restart_policy={"Name": "always"})
    assert refused.value.status_code == 400
    assert "AutoRemove is enabled" in str(refused.value)


# -- LogConfig --------------------------------------------------------------


def test_log_config_local_options_reach_the_engine(tenant, engine):
    container = tenant.containers.run(IMAGE, ["echo", "logged"], detach=True,
                                      log_config={"Type": "local", "Config": {"max-size": "10m", "max-file": "3"}})
    assert container.wait()["StatusCode"] == 0
    # csvc's output capture still has the output.
    assert container.logs() == b"logged\n"
    on_engine = engine.containers.get(container.id).attrs["HostConfig"]["LogConfig"]
    assert on_engine == {"Type": "local", "Config": {"max-size": "10m", "max-file": "3"}}
    assert container.attrs["HostConfig"]["LogConfig"]["Config"] == {"max-size": "10m", "max-file": "3"}


def test_log_config_json_file_runs_on_the_local_driver(tenant, engine):
    output = tenant.containers.run(IMAGE, ["echo", "hi"], remove=False,
                                   log_config={"Type": "json-file", "Config": {"max-size": "5m"}})
    assert output == b"hi\n"
    container = tenant.containers.list(all=True)[0]
    assert container.attrs["HostConfig"]["LogConfig"]["Type"] == "json-file"
    assert engine.containers.get(container.id).attrs["HostConfig"]["LogConfig"]["Type"] == "local"


@pytest.mark.parametrize("log_config, words", [
    ({"Type": "syslog", "Config": {"syslog-address": "udp://10.0.0.1:514"}}, "HostConfig.LogConfig.Type 'syslog'"),
    ({"Type": "none"}, "HostConfig.LogConfig.Type 'none'"),
    ({"Type": "local", "Config": {"max-size": "100g"}}, "max-size '100g': must be between 1m and 1g"),
    ({"Type": "local", "Config": {"max-file": "1000"}}, "max-file '1000': must be between 1 and 16"),
    ({"Type": "local", "Config": {"compress": "false"}}, "HostConfig.LogConfig.Config 'compress'"),
])
def test_log_config_refusals(tenant, engine, log_config, words):
    with pytest.raises(docker.errors.APIError) as refused:
        tenant.containers.create(IMAGE, ["true"], log_config=log_config)
    assert refused.value.status_code == 400
    assert words in str(refused.value)
    # Nothing reached the engine (only this project's: other runs share it).
    assert engine.containers.list(all=True, filters={"label": f"csvc.project={tenant.tenant.project}"}) == []


def test_log_driver_refused_by_the_cli(control_plane, tenant, tmp_path):
    result = _cli(control_plane, tenant.tenant, tmp_path, "create", "--log-driver", "gelf", IMAGE, "true")
    assert result.returncode != 0
    assert b"HostConfig.LogConfig.Type 'gelf' is not supported" in result.stderr


def test_a_cfs_cpu_quota_counts_against_the_projects_cpu(control_plane, tenant, engine):
    project = tenant.tenant.project
    assert control_plane.admin.request("PUT", f"/v1/quotas/{project}", json={"cpu": 1}).ok
    with pytest.raises(docker.errors.APIError) as over:
        tenant.containers.create(IMAGE, ["true"], cpu_quota=200_000, cpu_period=100_000)
    assert over.value.status_code == 403
    assert "quota exceeded for cpu: limit 1, in use 0, requested 2" in str(over.value)
    container = _running(tenant.containers.run(IMAGE, ["sleep", "300"], detach=True, cpu_quota=50_000))
    assert "50000" in _limits(container)[2:]
    assert tenant.tenant.get(f"/v1/quotas/{project}/usage").json()["cpu"]["in_use"] == 0.5
    on_engine = engine.containers.get(container.id).attrs["HostConfig"]
    assert (on_engine["CpuQuota"], on_engine["NanoCpus"]) == (50_000, 0)
    assert container.attrs["HostConfig"]["CpuQuota"] == 50_000 and container.attrs["HostConfig"]["NanoCpus"] == 0
    with pytest.raises(docker.errors.APIError) as raised:
        container.update(cpu_quota=150_000)
    assert raised.value.status_code == 403
    assert "quota exceeded for cpu" in str(raised.value)
    container.update(cpu_quota=80_000)
    assert "80000" in _limits(container)[2:]
    assert tenant.tenant.get(f"/v1/quotas/{project}/usage").json()["cpu"]["in_use"] == 0.8
