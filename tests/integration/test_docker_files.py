"""
A container's filesystem through the docker SDK and CLI on csvc: changes
(``docker diff``), export, and archives both ways (``docker cp``); each only
on the caller's project's own containers.
"""

import base64
import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
import uuid

import docker
import pytest

from tests.integration.conftest import docker_sdk as _client
from tests.integration.test_docker_more import IMAGE, _not_found, _running

#: A file larger than the agent's whole transfer window many times over.
BIG_MIB = 24


@pytest.fixture(scope="module")
def cli(control_plane, alpha, tmp_path_factory):
    """
    The docker CLI as alpha (its headers in config.json).
    """
    config = tmp_path_factory.mktemp("docker-config")
    headers = {k: v for k, v in alpha.session.headers.items() if k.startswith("X-Auth")}
    (config / "config.json").write_text(json.dumps({"HttpHeaders": headers}))
    env = dict(os.environ, DOCKER_HOST=control_plane.base.replace("http://", "tcp://"), DOCKER_CONFIG=str(config))

    def run(*args, input=None, timeout=120):
        return subprocess.run(["/usr/bin/docker", *args], env=env, capture_output=True, input=input, timeout=timeout)

    run.env = env
    return run


def _exited(container):
    container.wait()
    container.reload()
    return container


def test_changes(sdk, other, cli):
    container = _exited(sdk.containers.run(
        IMAGE, ["sh", "-c", "mkdir /made && echo x > /made/file && rm /bin/true"], detach=True))
    changes = {(c["Path"], c["Kind"]) for c in container.diff()}
    # Kind: 0 modified, 1 added, 2 deleted.
    assert ("/made", 1) in changes
    assert ("/made/file", 1) in changes
    assert ("/bin/true", 2) in changes
    _not_found(lambda: other.api.diff(container.id))
    shown = cli("diff", container.id)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.decode().splitlines()
    assert "A /made/file" in lines
    assert "D /bin/true" in lines


def test_export_streams_a_large_filesystem(sdk, other):
    container = _exited(sdk.containers.run(
        IMAGE, ["sh", "-c", f"dd if=/dev/urandom of=/big bs=1M count={BIG_MIB} 2>/dev/null; "
                            "sha256sum /big > /big.sum"], detach=True))
    _not_found(lambda: list(other.api.export(container.id)))
    digest, expected, names = hashlib.sha256(), None, set()
    stream = container.export(chunk_size=64 * 1024)
    with tarfile.open(fileobj=_Reader(stream), mode="r|") as tar:
        for member in tar:
            names.add(member.name)
            if member.name == "big":
                f = tar.extractfile(member)
                while True:
                    block = f.read(1024 * 1024)
                    if not block:
                        break
                    digest.update(block)
                assert member.size == BIG_MIB * 1024 * 1024
            elif member.name == "big.sum":
                expected = tar.extractfile(member).read().split()[0].decode()
    assert {"bin/sh", "big", "big.sum", "etc/passwd"} <= names
    assert digest.hexdigest() == expected


def test_export_cli(sdk, cli, tmp_path):
    container = _exited(sdk.containers.run(IMAGE, ["sh", "-c", "echo exported > /marker"], detach=True))
    target = tmp_path / "out.tar"
    shown = cli("export", "-o", str(target), container.id)
    assert shown.returncode == 0, shown.stderr
    with tarfile.open(target) as tar:
        assert tar.extractfile("marker").read() == b"exported\n"


def test_archive_get_and_stat(sdk, other):
    container = _exited(sdk.containers.run(
        IMAGE, ["sh", "-c", "mkdir -p /d/e && echo one > /d/one && echo two > /d/e/two"], detach=True))
    stream, stat = container.get_archive("/d")
    assert stat["name"] == "d"
    assert stat["mode"] & 0o20000000000  # a directory
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        assert tar.extractfile("d/one").read() == b"one\n"
        assert tar.extractfile("d/e/two").read() == b"two\n"
    # HEAD: the stat alone.
    head = sdk.api.head(sdk.api._url("/containers/{0}/archive", container.id), params={"path": "/d/one"})
    assert head.status_code == 200
    stat = json.loads(base64.b64decode(head.headers["X-Docker-Container-Path-Stat"]))
    assert (stat["name"], stat["size"]) == ("one", 4)
    gone = sdk.api.head(sdk.api._url("/containers/{0}/archive", container.id), params={"path": "/nope"})
    assert gone.status_code == 404
    with pytest.raises(docker.errors.NotFound) as missing:
        container.get_archive("/no/such/file")
    assert "Could not find the file /no/such/file in container" in str(missing.value)
    assert "csvc-" not in str(missing.value)
    bad = sdk.api._get(sdk.api._url("/containers/{0}/archive", container.id))
    assert bad.status_code == 400
    assert "path cannot be empty" in bad.json()["message"]
    _not_found(lambda: other.api.get_archive(container.id, "/d"))


def test_archive_put(sdk, other):
    container = sdk.containers.create(IMAGE, ["sh", "-c", "cat /in/hello; sha256sum /in/blob"])
    payload = os.urandom(3 * 1024 * 1024 + 17)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("hello", b"hello from the client\n"), ("blob", payload)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    # /in does not exist yet: the engine's 404, in its words.
    with pytest.raises(docker.errors.NotFound) as missing:
        container.put_archive("/in", buffer.getvalue())
    assert "Could not find the file /in in container" in str(missing.value)
    mkdir = io.BytesIO()
    with tarfile.open(fileobj=mkdir, mode="w") as tar:
        info = tarfile.TarInfo("in")
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
    assert container.put_archive("/", mkdir.getvalue()) is True
    assert container.put_archive("/in", buffer.getvalue()) is True
    with pytest.raises(docker.errors.NotFound):
        other.api.put_archive(container.id, "/in", buffer.getvalue())
    container.start()
    container.wait()
    output = container.logs()
    assert b"hello from the client\n" in output
    assert hashlib.sha256(payload).hexdigest().encode() in output


def test_cp_both_ways(sdk, cli, tmp_path):
    container = _running(sdk.containers.run(IMAGE, ["sleep", "300"], detach=True))
    source = tmp_path / "up.txt"
    source.write_bytes(b"copied up\n")
    up = cli("cp", str(source), f"{container.id}:/tmp/up.txt")
    assert up.returncode == 0, up.stderr
    assert container.exec_run(["cat", "/tmp/up.txt"]).output == b"copied up\n"
    down = cli("cp", f"{container.id}:/etc/hostname", str(tmp_path / "hostname"))
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "hostname").read_bytes().strip()
    missing = cli("cp", f"{container.id}:/nope", str(tmp_path / "nope"))
    assert missing.returncode != 0
    assert b"No such container:path" in missing.stderr or b"Could not find the file /nope" in missing.stderr


class _Reader(io.RawIOBase):
    """
    A file over an iterator of byte chunks (tarfile's stream mode).
    """

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._left = b""

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self._left:
            try:
                self._left = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


def test_open_transfers_count_as_sessions_and_end_with_their_client(control_plane):
    tenant = control_plane.client(f"xfer-{uuid.uuid4().hex[:8]}")
    client = _client(control_plane, tenant)
    assert control_plane.admin.request("PUT", f"/v1/quotas/{tenant.project}", json={"attach_sessions": 1}).ok
    try:
        container = _running(client.containers.run(IMAGE, ["sleep", "300"], detach=True))
        url = client.api._url("/containers/{0}/stats", container.id)
        first = client.api._get(url, params={"stream": 1}, stream=True)
        assert first.status_code == 200
        lines = first.iter_lines()  # (kept: a dropped iterator closes the connection)
        assert json.loads(next(lines))["id"] == container.id
        # The open stream holds the project's one session.
        usage = tenant.get(f"/v1/quotas/{tenant.project}/usage").json()
        assert usage["attach_sessions"]["in_use"] == 1
        refused = client.api._get(url, params={"stream": 1}, stream=True)
        assert refused.status_code == 403
        assert "quota exceeded for attach_sessions" in refused.json()["message"]
        refused = client.api._get(client.api._url("/containers/{0}/export", container.id))
        assert refused.status_code == 403
        first.close()
        # The control plane notices the client went away and lets go of
        # the transfer (and the agent of the engine's stream).
        deadline = time.monotonic() + 30
        while True:
            again = client.api._get(url, params={"stream": 1}, stream=True)
            if again.status_code == 200:
                break
            again.close()
            assert time.monotonic() < deadline, "the stream the client left was never released"
            time.sleep(0.1)
        assert json.loads(next(again.iter_lines()))["id"] == container.id
        again.close()
    finally:
        for c in tenant.get("/v1/containers").json()["containers"]:
            tenant.delete(f"/v1/containers/{c['uuid']}", params={"force": "true"})
        control_plane.admin.delete(f"/v1/quotas/{tenant.project}")
        client.close()
