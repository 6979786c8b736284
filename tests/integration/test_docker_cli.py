"""
The real docker CLI (Debian's docker.io) pointed at csvc, with the tenant's
headers in its config.json.
"""

import json
import os
import subprocess
import time

import pexpect
import pytest

DOCKER = "/usr/bin/docker"


@pytest.fixture(scope="module")
def cli(control_plane, alpha, tmp_path_factory):
    config = tmp_path_factory.mktemp("docker-config")
    headers = {k: v for k, v in alpha.session.headers.items() if k.startswith("X-Auth")}
    (config / "config.json").write_text(json.dumps({"HttpHeaders": headers}))
    env = dict(os.environ)
    env.update(DOCKER_HOST=control_plane.base.replace("http://", "tcp://"), DOCKER_CONFIG=str(config))

    def run(*args, input=None, timeout=60):
        return subprocess.run(
            [DOCKER, *args], input=input, capture_output=True, timeout=timeout, env=env
        )

    run.env = env
    return run


def test_run_rm_env_stdout_stderr_exit_code(cli, alpha):
    result = cli("run", "--rm", "-e", "A=B", "csvc/busybox", "sh", "-c", "echo $A; echo err >&2; exit 3")
    assert result.stdout == b"B\n"
    assert result.stderr == b"err\n"
    assert result.returncode == 3
    # --rm: the container is gone, in csvc's API too.
    assert alpha.get("/v1/containers").json()["containers"] == []


def test_piped_stdin_reaches_the_container(cli):
    result = cli("run", "-i", "--rm", "csvc/busybox", "cat", input=b"hello\n")
    assert result.stdout == b"hello\n"
    assert result.returncode == 0


def test_a_mib_of_piped_stdin_reaches_run_and_exec_whole(cli):
    # The relay reads the hijacked connection 64 KiB at a time: one AMP
    # value (65,535 bytes) less than a read; sent in pieces, nothing lost.
    data = os.urandom(1024 * 1024)
    result = cli("run", "-i", "--rm", "csvc/busybox", "cat", input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout == data
    cid = cli("run", "-d", "csvc/busybox", "sleep", "60").stdout.decode().strip()
    try:
        result = cli("exec", "-i", cid, "cat", input=data)
        assert result.returncode == 0, result.stderr
        assert result.stdout == data
    finally:
        cli("rm", "-f", cid)


def test_interactive_tty_run_with_resize_and_exit_code(cli):
    child = pexpect.spawn(DOCKER, ["run", "-it", "--rm", "csvc/busybox", "sh"], env=cli.env, timeout=30)
    try:
        child.setwinsize(24, 80)
        child.expect(r"# ")
        child.sendline("echo typed-$((40+2))")
        child.expect("typed-42")
        child.setwinsize(40, 132)
        time.sleep(0.5)
        child.sendline("stty size")
        child.expect("40 132")
        child.sendline("exit 5")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 5


def test_detached_logs_wait_inspect_ps_stop_kill_restart_rm(cli, alpha):
    result = cli("run", "-d", "--name", "cli-worker", "csvc/busybox", "sh", "-c",
                 "for i in 1 2 3; do echo tick$i; sleep 0.2; done; exit 4")
    assert result.returncode == 0, result.stderr
    cid = result.stdout.decode().strip()
    assert len(cid) == 64
    logs = cli("logs", "-f", cid)
    assert logs.stdout == b"tick1\ntick2\ntick3\n"
    assert cli("wait", cid).stdout.strip() == b"4"
    inspected = json.loads(cli("inspect", cid).stdout)[0]
    assert inspected["Id"] == cid
    assert inspected["Name"] == "/cli-worker"
    assert inspected["State"]["Status"] == "exited" and inspected["State"]["ExitCode"] == 4
    ps = cli("ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Status}}").stdout.decode()
    assert f"{cid[:12]} cli-worker Exited (4)" in ps
    assert cli("ps", "--format", "{{.Names}}").stdout.strip() == b""
    # The same container through the native API.
    assert alpha.show("cli-worker")["exit_code"] == 4

    assert cli("restart", "-t", "0", cid).returncode == 0
    assert cli("wait", cid).stdout.strip() == b"4"
    assert cli("logs", cid).stdout == b"tick1\ntick2\ntick3\n" * 2

    long = cli("run", "-d", "csvc/busybox", "sh", "-c", "trap 'exit 9' USR1; while true; do sleep 0.1; done")
    lid = long.stdout.decode().strip()
    assert cli("kill", "-s", "USR1", lid).returncode == 0
    assert cli("wait", lid).stdout.strip() == b"9"
    again = cli("run", "-d", "csvc/busybox", "sleep", "300").stdout.decode().strip()
    started = time.monotonic()
    assert cli("stop", "-t", "1", again).returncode == 0
    assert time.monotonic() - started < 15
    assert json.loads(cli("inspect", again).stdout)[0]["State"]["ExitCode"] == 137
    refused = cli("kill", again)
    assert refused.returncode != 0 and b"is not running" in refused.stderr
    assert cli("rm", "-f", cid, lid, again).returncode == 0
    assert b"No such container" in cli("container", "inspect", cid).stderr


def test_attach_to_a_running_container(cli):
    cid = cli("run", "-d", "csvc/busybox", "sh", "-c", "sleep 1; echo attached-output; exit 2").stdout.decode().strip()
    result = cli("attach", cid)
    assert result.stdout == b"attached-output\n"
    assert result.returncode == 2
    cli("rm", "-f", cid)


def test_exec_exit_code_and_interactive_tty(cli):
    cid = cli("run", "-d", "csvc/busybox", "sleep", "300").stdout.decode().strip()
    try:
        result = cli("exec", cid, "sh", "-c", "echo in-exec; exit 7")
        assert result.stdout == b"in-exec\n" and result.returncode == 7
        assert cli("exec", "-i", cid, "cat", input=b"through exec\n").stdout == b"through exec\n"
        child = pexpect.spawn(DOCKER, ["exec", "-it", cid, "sh"], env=cli.env, timeout=30)
        child.expect(r"# ")
        child.sendline("echo exec-$((3*3)); exit 6")
        child.expect("exec-9")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 6
    finally:
        cli("rm", "-f", cid)


def test_version_info_images(cli):
    version = cli("version", "--format", "{{.Server.APIVersion}}")
    assert version.stdout.strip() == b"1.45"
    info = cli("info", "--format", "{{json .}}")
    assert info.returncode == 0, info.stderr
    document = json.loads(info.stdout)
    assert document["NCPU"] >= 1 and document["MemTotal"] > 0
    images = cli("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.decode().split()
    assert "csvc/busybox:latest" in images
    inspected = json.loads(cli("image", "inspect", "csvc/busybox").stdout)[0]
    assert inspected["Id"].startswith("sha256:")


def test_missing_image_error_is_clear(cli):
    result = cli("run", "--rm", "csvc/no-such-image:1.0", "true")
    assert result.returncode == 125
    stderr = result.stderr.decode()
    assert "Unable to find image 'csvc/no-such-image:1.0'" in stderr
    # The pull went to the instance's engine: the registry's own error.
    assert "docker: " in stderr


def test_another_projects_container_is_no_such_container(cli, beta):
    theirs = beta.create(command=["sleep", "30"], run=True, name="betas")
    for ident in (theirs["uuid"], "betas"):
        for args in (("container", "inspect", ident), ("logs", ident), ("kill", ident), ("rm", "-f", ident)):
            result = cli(*args)
            assert b"No such container" in result.stderr, args
            if args[0] != "rm":  # the CLI's rm -f ignores a missing container
                assert result.returncode != 0
    assert beta.show(theirs["uuid"])["status"] == "running"
    listed = cli("ps", "-a", "--format", "{{.ID}}").stdout.decode()
    assert theirs["uuid"][:12] not in listed
    beta.delete(f"/v1/containers/{theirs['uuid']}", params={"force": "true"})


def test_ps_lists_native_containers(cli, alpha):
    native = alpha.create(command=["sleep", "30"], run=True, name="made-natively")
    alpha.wait_status(native["uuid"], {"running"})
    names = cli("ps", "--format", "{{.Names}}").stdout.decode().split()
    assert "made-natively" in names
    assert cli("rm", "-f", "made-natively").returncode == 0
    assert alpha.get(f"/v1/containers/{native['uuid']}").status_code == 404


def test_stats_no_stream_and_streamed(cli):
    started = cli("run", "-d", "--name", "stats-cli", "csvc/busybox", "sleep", "300")
    assert started.returncode == 0, started.stderr
    ident = started.stdout.decode().strip()
    try:
        once = cli("stats", "--no-stream", "--format", "{{.Name}} {{.ID}} {{.MemUsage}}", "stats-cli")
        assert once.returncode == 0, once.stderr
        name, short_id, usage = once.stdout.decode().split(" ", 2)
        assert (name, short_id) == ("stats-cli", ident[:12])
        assert not usage.startswith("0B")
        # Streamed: the CLI keeps redrawing from the open stream.
        child = pexpect.spawn(DOCKER, ["stats", "--format", "{{.Name}} mem={{.MemUsage}}", "stats-cli"],
                              env=cli.env, timeout=30)
        try:
            for _ in range(3):
                child.expect(r"stats-cli mem=[1-9]")
        finally:
            child.terminate(force=True)
    finally:
        cli("rm", "-f", "stats-cli")


def test_container_prune_removes_what_is_not_running(cli, alpha):
    exited = cli("run", "-d", "--name", "prune-exited", "csvc/busybox", "true").stdout.decode().strip()
    assert cli("wait", "prune-exited").stdout == b"0\n"
    created = cli("create", "--name", "prune-created", "csvc/busybox", "true").stdout.decode().strip()
    running = cli("run", "-d", "--name", "prune-running", "csvc/busybox", "sleep", "300")
    assert running.returncode == 0, running.stderr
    kept = cli("create", "--label", "keep=yes", "--name", "prune-kept", "csvc/busybox", "true")
    assert kept.returncode == 0, kept.stderr
    pruned = cli("container", "prune", "-f", "--filter", "label!=keep")
    assert pruned.returncode == 0, pruned.stderr
    out = pruned.stdout.decode()
    assert "Deleted Containers:" in out
    assert sorted(line for line in out.split() if len(line) == 64) == sorted([exited, created])
    assert sorted(cli("ps", "-a", "--format", "{{.Names}}").stdout.decode().split()) == [
        "prune-kept", "prune-running"
    ]
    refused = cli("container", "prune", "-f", "--filter", "until=yesterday")
    assert refused.returncode != 0
    assert b"filter until: 'yesterday'" in refused.stderr
    # `docker system prune` also asks for networks, images, build cache and
    # (--volumes) volumes: csvc has none of the project's to remove.
    assert cli("stop", "-t", "0", "prune-running").returncode == 0
    everything = cli("system", "prune", "-f", "--volumes")
    assert everything.returncode == 0, everything.stderr
    assert "prune-running" not in cli("ps", "-a", "--format", "{{.Names}}").stdout.decode()


def test_unserved_parts_of_the_api_say_so(cli):
    swarm = cli("swarm", "init")
    assert swarm.returncode != 0
    assert b"csvc does not serve Docker swarm mode (POST /v1." in swarm.stderr
    tagged = cli("tag", "csvc/busybox", "csvc/busybox:other")
    assert tagged.returncode != 0
    assert b"csvc does not serve Docker image management" in tagged.stderr
