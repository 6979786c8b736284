"""
The agent's own wall, against the real Docker engine: a control plane with
a bug (``plane_probe``, which sends whatever it is told over the agent
protocol) still cannot make a real agent (``twistd csvc-agent``) create an
escaping container, exec privileged, update beyond resources or connect to
another project's network.  Each refusal is the declared ``Refused`` error
naming the rule, the engine never gets the container, and the agent logs the
refusal without the container's environment.  What a member may have, and
an admin's privileged container, are created.
"""

import json
import os
import signal
import subprocess
import sys
import uuid as uuidlib

import pytest

from tests.integration.conftest import BIN, IMAGE, ROOT, engine_available, free_port

SECRET = "wall-secret-value-7d1f"


def spec(project, **docker_config):
    return {
        "uuid": str(uuidlib.uuid4()), "project_id": project, "image": IMAGE, "command": ["true"],
        "environment": {"TOKEN": SECRET}, "labels": {}, "docker_config": docker_config,
    }


def run_against_agent(tmp_path, steps):
    """
    Start the buggy plane and a real agent dialling it; the plane's results
    and the agent's log.
    """
    port = free_port()
    plane = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.plane_probe", str(port), json.dumps(steps)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True,
    )
    log_path = tmp_path / "agent.log"
    agent = None
    try:
        assert plane.stdout.readline().strip() == "listening", plane.stderr.read()
        with open(log_path, "ab") as log:
            agent = subprocess.Popen(
                [os.path.join(BIN, "twistd"), "-n", "--pidfile=", "csvc-agent", "--connect",
                 f"tcp:127.0.0.1:{port}", "--enroll-token", "wall-test", "--hostname", "wall-test",
                 "--instance-firewall", "off"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT,
                env={k: v for k, v in os.environ.items() if k != "CSVC_ENROLL_TOKEN"},
            )
        out, err = plane.communicate(timeout=240)
        assert plane.returncode == 0, err
        results = json.loads(out.strip().splitlines()[-1])
    finally:
        for process in (plane, agent):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
    return results, log_path.read_text(errors="replace")


def engine_names():
    import docker

    client = docker.from_env(timeout=30)
    try:
        return {c.name for c in client.containers.list(all=True, filters={"label": "csvc.uuid"})}
    finally:
        client.close()


@pytest.fixture(scope="module")
def refusals(tmp_path_factory):
    if not engine_available():
        pytest.fail("no Docker engine answers on /var/run/docker.sock: run `make bootstrap` first")
    mine, theirs = "pwalla", "pwallb"
    member = spec(mine, HostConfig={"CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"]})
    admins = dict(spec("pwallops", HostConfig={"Privileged": True}), admin=True)
    escapes = {
        "privileged host bind": spec(mine, HostConfig={"Privileged": True, "Binds": ["/:/host"]}),
        "privileged spelt low": spec(mine, HostConfig={"privileged": True}),
        "privileged at the top": spec(mine, Config={"Privileged": True}),
        "a bind mount spelt low": spec(mine, HostConfig={"Mounts": [{"type": "bind", "source": "/etc",
                                                                     "target": "/hostetc"}]}),
        "the host's pids": spec(mine, HostConfig={"PidMode": "host"}),
        "the host's network": spec(mine, HostConfig={"NetworkMode": "host"}),
        "another project's container's network": spec(
            theirs, HostConfig={"NetworkMode": f"container:csvc-{member['uuid']}"}),
        "a member claiming admin with a string": dict(
            spec(mine, HostConfig={"CapAdd": ["SYS_ADMIN"]}), admin="true"),
    }
    steps = [{"op": "create", "spec": member}]
    steps += [{"op": "create", "spec": s} for s in escapes.values()]
    steps += [
        {"op": "exec", "uuid": member["uuid"], "spec": {"command": ["sh"], "privileged": True}},
        {"op": "update", "uuid": member["uuid"], "update": {"Memory": 1 << 26, "CgroupParent": "/"}},
        {"op": "connect", "uuid": member["uuid"], "name": "csvc-pwallb-back"},
        {"op": "create", "spec": admins},
        {"op": "remove", "uuid": member["uuid"]},
        {"op": "remove", "uuid": admins["uuid"]},
    ]
    tmp = tmp_path_factory.mktemp("agent-wall")
    before = engine_names()
    try:
        results, log = run_against_agent(tmp, steps)
        after_removal = engine_names()
    finally:
        # Whatever happened, nothing of this test stays on the engine.
        import docker

        client = docker.from_env(timeout=30)
        for s in [member, admins, *escapes.values()]:
            try:
                client.api.remove_container(f"csvc-{s['uuid']}", force=True)
            except docker.errors.NotFound:
                pass
        client.close()
    return {"member": member, "admins": admins, "escapes": escapes, "results": results, "log": log,
            "before": before, "after": after_removal}


def test_the_members_and_the_admins_containers_are_created(refusals):
    results = refusals["results"]
    assert "ok" in results[0], results[0]
    assert results[0]["ok"]["engine_id"]
    admin_create = results[-3]
    assert "ok" in admin_create, admin_create
    assert results[-2] == {"ok": {}} and results[-1] == {"ok": {}}


def test_every_escaping_create_is_refused_with_the_declared_error(refusals):
    results = refusals["results"][1:1 + len(refusals["escapes"])]
    expected = {
        "privileged host bind": ["HostConfig.Privileged (privileged)", "(host_bind)"],
        "privileged spelt low": ["HostConfig.Privileged (privileged)"],
        "privileged at the top": ["config.'Privileged' (unknown_key)"],
        "a bind mount spelt low": ["HostConfig.Mounts[0].Type 'bind' (host_bind)"],
        "the host's pids": ["HostConfig.PidMode host (pid_mode)"],
        "the host's network": ["HostConfig.NetworkMode host (network_mode)"],
        "another project's container's network": ["(network_mode)"],
        "a member claiming admin with a string": ["HostConfig.CapAdd (cap_add)"],
    }
    for (what, _spec), result in zip(refusals["escapes"].items(), results):
        assert result.get("error") == "Refused", (what, result)
        for part in expected[what]:
            assert part in result["message"], (what, result["message"])


def test_the_engine_never_got_a_refused_container(refusals):
    seen = refusals["after"]
    for s in refusals["escapes"].values():
        assert f"csvc-{s['uuid']}" not in seen
    # (The created ones were removed by the plane's last steps.)
    assert f"csvc-{refusals['member']['uuid']}" not in seen


def test_exec_update_and_connect_beyond_the_rules_are_refused(refusals):
    n = 1 + len(refusals["escapes"])
    exec_, update, connect = refusals["results"][n:n + 3]
    assert exec_["error"] == "Refused" and "exec.privileged (privileged)" in exec_["message"]
    assert update["error"] == "Refused" and "update.'CgroupParent' (unknown_key)" in update["message"]
    assert connect["error"] == "Refused" and "(network)" in connect["message"]


def test_the_agent_logs_each_refusal_without_the_environment(refusals):
    log = refusals["log"]
    for s in refusals["escapes"].values():
        assert f"the wall refused the create of container {s['uuid']}" in log
    member = refusals["member"]["uuid"]
    for action in ("exec", "update", "network connect"):
        assert f"the wall refused the {action} of container {member}" in log
    assert SECRET not in log


@pytest.fixture(scope="module")
def misspelt(tmp_path_factory):
    """
    A buggy plane passing a member's options as the member spelt them, and
    labels in csvc's own prefix: the agent reads every option under the
    engine's name, and keeps csvc's labels its own.
    """
    if not engine_available():
        pytest.fail("no Docker engine answers on /var/run/docker.sock: run `make bootstrap` first")
    mine, theirs = "pwallc", "pwalld"
    forged = dict(spec(mine), labels={"csvc.auto_remove": "1", "csvc.project": theirs, "CSVC.instance": "i-x",
                                      "team": "web"})
    ports = {
        "a loopback port spelt low": spec(mine, HostConfig={
            "portbindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}]}}),
        "publish all spelt in capitals, on loopback": spec(mine, HostConfig={
            "PORTBINDINGS": {"80/tcp": [{"HostIp": "::1"}]}, "PUBLISHALLPORTS": True}),
        "a field spelt twice": spec(mine, HostConfig={"PortBindings": {}, "portBindings": {}}),
    }
    steps = [{"op": "create", "spec": forged}] + [{"op": "create", "spec": s} for s in ports.values()]
    import docker

    client = docker.from_env(timeout=30)
    try:
        results, _log = run_against_agent(tmp_path_factory.mktemp("agent-wall-misspelt"), steps)
        seen = engine_names()
        try:
            labels = client.api.inspect_container(f"csvc-{forged['uuid']}")["Config"]["Labels"]
        except docker.errors.NotFound:
            labels = None
    finally:
        for s in [forged, *ports.values()]:
            try:
                client.api.remove_container(f"csvc-{s['uuid']}", force=True)
            except docker.errors.NotFound:
                pass
        client.close()
    return {"results": results, "labels": labels, "ports": ports, "seen": seen}


def test_a_forged_csvc_label_never_reaches_the_engine(misspelt):
    assert "ok" in misspelt["results"][0], misspelt["results"][0]
    labels = misspelt["labels"]
    assert labels["csvc.project"] == "pwallc" and labels["team"] == "web"
    assert "csvc.auto_remove" not in labels and "CSVC.instance" not in labels


def test_published_ports_obey_the_rules_however_spelt(misspelt):
    for (what, s), result in zip(misspelt["ports"].items(), misspelt["results"][1:]):
        assert result.get("error") == "InvalidSpec", (what, result)
        assert f"csvc-{s['uuid']}" not in misspelt["seen"], what
