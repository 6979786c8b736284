"""
The docker Python SDK pointed at csvc, with the tenant's headers on its
session.
"""

import socket
import time

import docker
import pytest
import websocket


@pytest.fixture(scope="module")
def sdk(control_plane, alpha):
    client = docker.DockerClient(base_url=control_plane.base.replace("http://", "tcp://"), timeout=60)
    client.api.headers.update({k: v for k, v in alpha.session.headers.items() if k.startswith("X-Auth")})
    yield client
    client.close()


def test_run_not_detached_returns_the_output(sdk):
    output = sdk.containers.run("csvc/busybox", ["sh", "-c", "echo from-sdk; echo e >&2"], remove=True)
    assert output == b"from-sdk\n"
    both = sdk.containers.run("csvc/busybox", ["sh", "-c", "echo o; sleep 0.1; echo e >&2"], stderr=True, remove=True)
    assert both == b"o\ne\n"
    with pytest.raises(docker.errors.ContainerError) as failed:
        sdk.containers.run("csvc/busybox", ["sh", "-c", "exit 3"], remove=True)
    assert failed.value.exit_status == 3


def test_run_detached_logs_stream_wait_get_list_remove(sdk):
    container = sdk.containers.run(
        "csvc/busybox", ["sh", "-c", "for i in 1 2 3; do echo n$i; sleep 0.2; done; exit 2"],
        detach=True, name="sdk-detached", environment={"X": "y"},
    )
    assert len(container.id) == 64
    streamed = b"".join(container.logs(stream=True, follow=True))
    assert streamed == b"n1\nn2\nn3\n"
    assert container.wait() == {"StatusCode": 2, "Error": None}
    fetched = sdk.containers.get("sdk-detached")
    assert fetched.id == container.id
    assert fetched.status == "exited"
    assert "X=y" in fetched.attrs["Config"]["Env"]
    listed = [c.name for c in sdk.containers.list(all=True)]
    assert "sdk-detached" in listed
    assert "sdk-detached" not in [c.name for c in sdk.containers.list()]
    fetched.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        sdk.containers.get("sdk-detached")


def test_exec_run_with_and_without_demux(sdk):
    container = sdk.containers.run("csvc/busybox", ["sleep", "300"], detach=True)
    try:
        result = container.exec_run(["sh", "-c", "echo out; sleep 0.1; echo err >&2; exit 5"])
        assert result.exit_code == 5
        assert result.output == b"out\nerr\n"
        result = container.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
        assert result.exit_code == 0
        assert result.output == (b"out\n", b"err\n")
        result = container.exec_run(["sh", "-c", "echo $V"], environment={"V": "exec-env"})
        assert result.output == b"exec-env\n"
    finally:
        container.remove(force=True)


def test_attach_socket(sdk):
    container = sdk.containers.create("csvc/busybox", ["cat"], stdin_open=True, tty=True)
    try:
        container.start()
        deadline = time.monotonic() + 10
        while container.status != "running" and time.monotonic() < deadline:
            container.reload()
            time.sleep(0.05)
        sock = container.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
        raw = sock._sock if hasattr(sock, "_sock") else sock
        raw.settimeout(10)
        raw.sendall(b"ping-through-attach\n")
        got = b""
        while b"ping-through-attach\r\n" not in got:
            chunk = raw.recv(4096)
            assert chunk, "the attach socket closed early"
            got += chunk
        raw.shutdown(socket.SHUT_WR)
        raw.close()
    finally:
        container.remove(force=True)


def test_attach_websocket(sdk, control_plane, alpha):
    container = sdk.containers.run("csvc/busybox", ["sh", "-c", "sleep 1; echo over-ws"], detach=True)
    headers = [f"{k}: {v}" for k, v in alpha.session.headers.items() if k.startswith("X-Auth")]
    url = control_plane.base.replace("http://", "ws://") + f"/v1.41/containers/{container.id}/attach/ws?stream=1&stdout=1"
    ws = websocket.create_connection(url, header=headers, timeout=30)
    data = b""
    while True:
        try:
            opcode, chunk = ws.recv_data()
        except websocket.WebSocketConnectionClosedException:
            break
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        data += chunk
    assert data == b"over-ws\n"
    container.remove(force=True)


def test_errors_in_dockers_words(sdk, control_plane):
    with pytest.raises(docker.errors.NotFound) as missing:
        sdk.containers.get("no-such-thing")
    assert "No such container: no-such-thing" in str(missing.value)
    with pytest.raises(docker.errors.ImageNotFound):
        sdk.containers.create("csvc/absent:9")
    anonymous = docker.APIClient(base_url=control_plane.base.replace("http://", "tcp://"))
    assert anonymous.ping() is True
    assert anonymous.version()["ApiVersion"] == "1.45"
    with pytest.raises(docker.errors.APIError) as refused:
        anonymous.containers()
    assert refused.value.status_code == 401
    too_new = anonymous.get(control_plane.base + "/v9.99/containers/json")
    assert too_new.status_code == 400
    assert "is too new. Maximum supported API version is 1.45" in too_new.json()["message"]
