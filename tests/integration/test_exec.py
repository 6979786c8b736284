"""
Exec in running containers through the native API, on the real Docker engine:
collected output and exit codes, and interactive execs over the attach
WebSocket (one-time URL and direct upgrade).
"""

import json
import struct
import time

import pytest
import websocket

SUBPROTOCOL = "channel.csvc.v1"
STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE_STDIN = 0, 1, 2, 3, 4, 255


@pytest.fixture
def running(alpha):
    container = alpha.create(command=["sleep", "600"], run=True)
    alpha.wait_status(container["uuid"], {"running"})
    return container


def execute(client, uuid, **body):
    return client.post(f"/v1/containers/{uuid}/exec", json=body)


class Channels:
    """
    The client side of the channel protocol, reading with a deadline.
    """

    def __init__(self, ws):
        self.ws = ws
        self.stdout = b""
        self.stderr = b""
        self.statuses = []
        self.close_code = None

    def send(self, channel, data=b""):
        self.ws.send_binary(bytes((channel,)) + data)

    def read_one(self):
        opcode, frame = self.ws.recv_data_frame(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self.close_code = struct.unpack("!H", frame.data[:2])[0] if len(frame.data) >= 2 else None
            return False
        if opcode != websocket.ABNF.OPCODE_BINARY:
            return True
        data = frame.data
        channel, body = data[0], data[1:]
        if channel == STDOUT:
            self.stdout += body
        elif channel == STDERR:
            self.stderr += body
        elif channel == STATUS:
            self.statuses.append(json.loads(body))
        return True

    def read_until(self, predicate, timeout=20):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out: stdout={self.stdout!r} statuses={self.statuses}")
            if not self.read_one():
                break
        return predicate()

    def read_to_close(self, timeout=20):
        self.read_until(lambda: self.close_code is not None, timeout)
        return self.close_code


def connect(url, **kwargs):
    return Channels(websocket.create_connection(url, subprotocols=[SUBPROTOCOL], timeout=20, **kwargs))


# -- non-interactive ---------------------------------------------------------


def test_output_of_both_streams_and_exit_code(alpha, running):
    response = execute(alpha, running["uuid"], command=["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["exit_code"] == 7
    assert "out\n" in body["output"] and "err\n" in body["output"]
    assert body["exec_id"]
    # the container itself goes on running, its log untouched by the exec
    assert alpha.show(running["uuid"])["status"] == "running"
    assert alpha.logs(running["uuid"]) == b""


def test_environment_workdir_and_user_reach_the_exec(alpha, running):
    response = execute(
        alpha,
        running["uuid"],
        command=["sh", "-c", 'echo "$GREETING $WHO"; pwd; id -u'],
        environment={"GREETING": "hello", "WHO": "exec"},
        workdir="/tmp",
        user="65534",
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "exec_id": response.json()["exec_id"],
        "output": "hello exec\n/tmp\n65534\n",
        "exit_code": 0,
    }


def test_invalid_utf8_is_replaced(alpha, running):
    response = execute(alpha, running["uuid"], command=["printf", "a\\377b"])
    assert response.status_code == 200, response.text
    assert response.json()["output"] == "a\ufffdb"


def test_output_past_the_cap_is_413(alpha, running):
    response = execute(alpha, running["uuid"], command=["head", "-c", str(2 * 1024 * 1024), "/dev/zero"])
    assert response.status_code == 413, response.text
    assert "1 MiB" in response.json()["error"]["message"]
    # the service and the container are fine afterwards
    again = execute(alpha, running["uuid"], command=["echo", "still here"])
    assert again.status_code == 200 and again.json()["output"] == "still here\n"


def test_exec_in_a_container_not_running_is_409(alpha):
    container = alpha.create(command=["sleep", "600"])
    response = execute(alpha, container["uuid"], command=["true"])
    assert response.status_code == 409, response.text
    message = response.json()["error"]["message"]
    assert "'created'" in message and "exec" in message


def test_another_projects_container_is_404(alpha, beta, running):
    response = execute(beta, running["uuid"], command=["true"])
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == 404


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "command"),
        ({"command": "ls"}, "command"),
        ({"command": []}, "command"),
        ({"command": ["ls"], "tty": "yes"}, "tty"),
        ({"command": ["ls"], "environment": {"A": 1}}, "environment"),
        ({"command": ["ls"], "workdir": "relative"}, "workdir"),
        ({"command": ["ls"], "privileged": True}, "privileged"),
    ],
)
def test_invalid_body_is_400_naming_the_field(alpha, running, body, field):
    response = execute(alpha, running["uuid"], **body)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["message"]


# -- interactive -------------------------------------------------------------


def test_interactive_cat_over_the_one_time_url(alpha, running):
    response = execute(alpha, running["uuid"], command=["cat"], interactive=True)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["url"].startswith("ws://") and "/v1/attach/" in body["url"]
    assert body["exec_id"] and body["expires_at"]
    session = connect(body["url"])
    try:
        session.send(STDIN, b"hello ")
        session.send(STDIN, b"exec\n")
        assert session.read_until(lambda: b"hello exec\n" in session.stdout)
        session.send(CLOSE_STDIN)
        assert session.read_to_close() == 1000
    finally:
        session.ws.close()
    assert session.stdout == b"hello exec\n"
    assert session.statuses[-1] == {"exit_code": 0}
    # the URL was for one use only
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(body["url"], subprotocols=[SUBPROTOCOL], timeout=10)
    assert refused.value.status_code == 401


def test_interactive_tty_shell_with_resize(alpha, running):
    response = execute(alpha, running["uuid"], command=["sh"], interactive=True, tty=True)
    assert response.status_code == 201, response.text
    session = connect(response.json()["url"])
    try:
        session.send(RESIZE, json.dumps({"cols": 123, "rows": 45}).encode())
        # The resize reaches the engine alongside the input: ask until the
        # terminal reports it.
        deadline = time.monotonic() + 20
        while b"45 123" not in session.stdout:
            assert time.monotonic() < deadline, session.stdout
            session.send(STDIN, b"stty size\n")
            session.ws.settimeout(0.5)
            try:
                while session.read_one() and b"45 123" not in session.stdout:
                    pass
            except websocket.WebSocketTimeoutException:
                pass
        session.ws.settimeout(20)
        session.send(STDIN, b"exit 3\n")
        assert session.read_to_close() == 1000
    finally:
        session.ws.close()
    assert session.statuses[-1] == {"exit_code": 3}


def test_direct_attach_to_a_created_exec(alpha, beta, running):
    uuid = running["uuid"]
    response = execute(alpha, uuid, command=["sh", "-c", "read line; echo got $line; echo bye >&2"], interactive=True)
    assert response.status_code == 201, response.text
    exec_id = response.json()["exec_id"]
    base = alpha.base.replace("http://", "ws://")
    path = f"/v1/containers/{uuid}/exec/{exec_id}/attach"

    def headers(client):
        return [f"{k}: {v}" for k, v in client.session.headers.items() if k.startswith("X-Auth")]

    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(base + path, header=headers(beta), timeout=10)
    assert refused.value.status_code == 404
    session = connect(base + path, header=headers(alpha))
    try:
        session.send(STDIN, b"it\n")
        assert session.read_to_close() == 1000
    finally:
        session.ws.close()
    assert session.stdout == b"got it\n"
    assert session.stderr == b"bye\n"
    assert session.statuses[-1] == {"exit_code": 0}
    # started once: a second attach is refused
    with pytest.raises(websocket.WebSocketBadStatusException) as again:
        websocket.create_connection(base + path, header=headers(alpha), timeout=10)
    assert again.value.status_code in (404, 409)


def test_output_after_stdin_closed_is_not_cut(alpha, running):
    # moby 38457: closing stdin must not cut the output that follows.
    script = "cat; sleep 0.2; echo after-eof; echo also >&2"
    response = execute(alpha, running["uuid"], command=["sh", "-c", script], interactive=True)
    assert response.status_code == 201, response.text
    session = connect(response.json()["url"])
    try:
        session.send(STDIN, b"line\n")
        session.send(CLOSE_STDIN)
        assert session.read_to_close() == 1000
    finally:
        session.ws.close()
    assert session.stdout == b"line\nafter-eof\n"
    assert session.stderr == b"also\n"
    assert session.statuses[-1] == {"exit_code": 0}
