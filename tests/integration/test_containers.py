"""
Containers through the service, on the real Docker engine.
"""

import hashlib
import threading
import time

import docker
import pytest

from tests.integration.conftest import IMAGE


def test_environment_and_command_reach_the_process(alpha):
    container, exit = alpha.run(
        ["sh", "-c", 'echo "$GREETING $WHO"; pwd'],
        environment={"GREETING": "hello", "WHO": "world"},
        workdir="/tmp",
    )
    assert exit == {"exit_code": 0, "status": "exited", "status_reason": None}
    assert alpha.logs(container["uuid"]) == b"hello world\n/tmp\n"


def test_stdout_and_stderr_come_back_in_order(alpha):
    script = "echo out1; sleep 0.1; echo err1 >&2; sleep 0.1; echo out2; sleep 0.1; echo err2 >&2"
    container, exit = alpha.run(["sh", "-c", script])
    assert exit["exit_code"] == 0
    uuid = container["uuid"]
    assert alpha.logs(uuid) == b"out1\nerr1\nout2\nerr2\n"
    assert alpha.logs(uuid, stderr="false") == b"out1\nout2\n"
    assert alpha.logs(uuid, stdout="false") == b"err1\nerr2\n"
    response = alpha.get(f"/v1/containers/{uuid}/logs", params={"stdout": "false", "stderr": "false"})
    assert response.status_code == 400
    assert "stdout" in response.json()["error"]["message"]


def test_binary_output_comes_back_byte_for_byte(alpha):
    # 5 MiB of random bytes (every byte value, newlines at random places),
    # written to stdout; the container's own digest of them goes to stderr.
    script = "dd if=/dev/urandom of=/tmp/blob bs=1048576 count=5 2>/dev/null; cat /tmp/blob; sha256sum /tmp/blob >&2"
    container, exit = alpha.run(["sh", "-c", script])
    assert exit["exit_code"] == 0
    out = alpha.logs(container["uuid"], stderr="false")
    err = alpha.logs(container["uuid"], stdout="false")
    assert len(out) == 5 * 1024 * 1024
    assert err.split()[0].decode() == hashlib.sha256(out).hexdigest()


@pytest.mark.parametrize("code", [0, 3])
def test_exit_codes(alpha, code):
    container, exit = alpha.run(["sh", "-c", f"exit {code}"])
    assert exit["exit_code"] == code
    shown = alpha.show(container["uuid"])
    assert shown["status"] == "exited"
    assert shown["exit_code"] == code
    assert shown["finished_at"] is not None


def test_kill_gives_137(alpha):
    container = alpha.create(command=["sleep", "300"], run=True)
    alpha.wait_status(container["uuid"], {"running"})
    killed = alpha.post(f"/v1/containers/{container['uuid']}/kill")
    assert killed.status_code == 202, killed.text
    assert killed.json()["status"] == "exited"
    assert killed.json()["exit_code"] == 137


def test_kill_with_a_signal_the_process_handles(alpha):
    script = "trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.1; done"
    container = alpha.create(command=["sh", "-c", script], run=True)
    uuid = container["uuid"]
    alpha.wait_status(uuid, {"running"})
    deadline = time.monotonic() + 10
    while b"ready" not in alpha.logs(uuid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alpha.post(f"/v1/containers/{uuid}/kill", params={"signal": "TERM"}).status_code == 202
    assert alpha.post(f"/v1/containers/{uuid}/wait").json()["exit_code"] == 42
    assert alpha.logs(uuid) == b"ready\ngot-term\n"
    bad = alpha.post(f"/v1/containers/{uuid}/kill", params={"signal": "NOPE"})
    assert bad.status_code == 400
    assert "signal" in bad.json()["error"]["message"]


def test_stop_then_start_again_keeps_all_output(alpha):
    container = alpha.create(command=["sh", "-c", "echo run; exec sleep 300"], run=True)
    uuid = container["uuid"]
    alpha.wait_status(uuid, {"running"})
    stopped = alpha.post(f"/v1/containers/{uuid}/stop", params={"timeout": "1"})
    assert stopped.status_code == 202, stopped.text
    assert stopped.json()["status"] == "exited"
    assert stopped.json()["exit_code"] == 137  # sleep ignores TERM as PID 1
    assert alpha.post(f"/v1/containers/{uuid}/start").status_code == 202
    alpha.wait_status(uuid, {"running"})
    restarted = alpha.post(f"/v1/containers/{uuid}/restart", params={"timeout": "0"})
    assert restarted.status_code == 202, restarted.text
    alpha.wait_status(uuid, {"running"})
    deadline = time.monotonic() + 10
    while alpha.logs(uuid) != b"run\nrun\nrun\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alpha.logs(uuid) == b"run\nrun\nrun\n"


def test_delete(alpha):
    container = alpha.create(command=["sleep", "300"], run=True)
    uuid = container["uuid"]
    alpha.wait_status(uuid, {"running"})
    refused = alpha.delete(f"/v1/containers/{uuid}")
    assert refused.status_code == 409
    message = refused.json()["error"]["message"]
    assert "delete" in message and "running" in message
    assert alpha.delete(f"/v1/containers/{uuid}", params={"force": "true"}).status_code == 204
    assert alpha.get(f"/v1/containers/{uuid}").status_code == 404
    engine = docker.from_env()
    assert engine.containers.list(all=True, filters={"label": f"csvc.uuid={uuid}"}) == []


def test_auto_remove_keeps_output_and_exit_code(alpha):
    container, exit = alpha.run(["sh", "-c", "echo kept; exit 5"], auto_remove=True)
    uuid = container["uuid"]
    assert exit["exit_code"] == 5
    engine = docker.from_env()
    deadline = time.monotonic() + 10
    # The low-level list: containers.list() inspects each, racing the removal.
    while engine.api.containers(all=True, filters={"label": f"csvc.uuid={uuid}"}):
        assert time.monotonic() < deadline, "the engine's container was not removed"
        time.sleep(0.1)
    assert alpha.logs(uuid) == b"kept\n"
    assert alpha.show(uuid)["exit_code"] == 5
    assert alpha.delete(f"/v1/containers/{uuid}").status_code == 204
    assert alpha.get(f"/v1/containers/{uuid}").status_code == 404


def test_logs_follow_streams_until_exit(alpha):
    container = alpha.create(command=["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.3; done; exit 4"], run=True)
    response = alpha.get(f"/v1/containers/{container['uuid']}/logs", params={"follow": "true"}, stream=True)
    assert response.status_code == 200
    pieces = list(response.iter_content(chunk_size=None))
    assert b"".join(pieces) == b"1\n2\n3\n"
    assert len(pieces) >= 2, "output arrived only at the end, not as it was produced"
    assert alpha.show(container["uuid"])["exit_code"] == 4


def test_logs_tail_and_since(alpha):
    container, _ = alpha.run(["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done"])
    uuid = container["uuid"]
    assert alpha.logs(uuid, tail="2") == b"line4\nline5\n"
    assert alpha.logs(uuid, tail="0") == b""
    assert alpha.logs(uuid, tail="100") == b"line1\nline2\nline3\nline4\nline5\n"
    assert alpha.logs(uuid, since="0") == alpha.logs(uuid)
    assert alpha.get(f"/v1/containers/{uuid}/logs", params={"tail": "x"}).status_code == 400


def test_names_work_where_uuids_do(alpha):
    container = alpha.create(command=["sh", "-c", "echo named"], name="web-1", run=True)
    assert alpha.post("/v1/containers/web-1/wait").json()["exit_code"] == 0
    assert alpha.logs("web-1") == b"named\n"
    assert alpha.show("web-1")["uuid"] == container["uuid"]
    again = alpha.post("/v1/containers", json={"image": IMAGE, "name": "web-1", "command": ["true"]})
    assert again.status_code == 409
    assert "web-1" in again.json()["error"]["message"]


def test_wait_on_a_created_container_answers_after_it_runs(alpha):
    container = alpha.create(command=["sh", "-c", "exit 9"])
    uuid = container["uuid"]
    assert container["status"] == "created"
    result = {}

    def wait():
        result["response"] = alpha.post(f"/v1/containers/{uuid}/wait")

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive(), "wait answered before the container ran"
    assert alpha.post(f"/v1/containers/{uuid}/start").status_code == 202
    waiter.join(30)
    assert result["response"].json()["exit_code"] == 9


def test_bad_state_is_409_naming_both(alpha):
    container, _ = alpha.run(["true"])
    response = alpha.post(f"/v1/containers/{container['uuid']}/stop")
    assert response.status_code == 409
    message = response.json()["error"]["message"]
    assert "stop" in message and "exited" in message


def test_missing_image_is_a_clear_404_and_nothing_is_stored(alpha):
    before = alpha.get("/v1/containers").json()["containers"]
    response = alpha.post("/v1/containers", json={"image": "no/such-image:1.0", "command": ["true"]})
    assert response.status_code == 404
    assert "no/such-image:1.0" in response.json()["error"]["message"]
    assert alpha.get("/v1/containers").json()["containers"] == before


@pytest.mark.parametrize(
    "body, field",
    [
        ({"command": ["true"]}, "image"),
        ({"image": IMAGE, "command": "true"}, "command"),
        ({"image": IMAGE, "environment": {"A": 1}}, "environment.A"),
        ({"image": IMAGE, "bogus": 1}, "bogus"),
        ({"image": "UPPER/Case!"}, "image"),
        ({"image": IMAGE, "memory": -5}, "memory"),
    ],
)
def test_invalid_body_is_400_naming_the_field(alpha, body, field):
    before = alpha.get("/v1/containers").json()["containers"]
    response = alpha.post("/v1/containers", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 400
    assert field in error["message"]
    assert error["request_id"].startswith("req-")
    assert alpha.get("/v1/containers").json()["containers"] == before


def test_engine_refusal_is_400_and_nothing_is_stored(alpha):
    # The image has no default command: the engine refuses the create.
    response = alpha.post("/v1/containers", json={"image": IMAGE})
    assert response.status_code == 400
    assert "No command specified" in response.json()["error"]["message"]
    assert alpha.get("/v1/containers").json()["containers"] == []


def test_not_json_is_400(alpha):
    response = alpha.post("/v1/containers", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]


def test_oversized_body_is_413(alpha):
    response = alpha.post("/v1/containers", data=b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413
