"""
Attach over WebSocket through the relay, against the real engine: the bugs
the field keeps hitting (RELAY.md), each a test.
"""

import hashlib
import json
import os
import socket
import time

import pytest
import websocket

SUB = "channel.csvc.v1"


def ws_url(client, path):
    return client.base.replace("http://", "ws://") + path


def connect(client, uuid, subprotocol=True, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    headers = [f"{k}: {v}" for k, v in client.session.headers.items() if k.startswith("X-Auth")]
    return websocket.create_connection(
        ws_url(client, f"/v1/containers/{uuid}/attach?{query}"),
        header=headers,
        subprotocols=[SUB] if subprotocol else None,
        timeout=30,
    )


def collect(ws):
    """
    Everything until the server closes: (stdout, stderr, statuses, close code).
    """
    out, err, statuses = bytearray(), bytearray(), []
    while True:
        try:
            opcode, data = ws.recv_data()
        except websocket.WebSocketConnectionClosedException:
            return bytes(out), bytes(err), statuses, None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            return bytes(out), bytes(err), statuses, code
        channel, body = data[0], data[1:]
        if channel == 1:
            out += body
        elif channel == 2:
            err += body
        elif channel == 3:
            statuses.append(json.loads(body))


def test_output_is_complete_at_exit_then_status_then_clean_close(alpha):
    # 3 MiB written as fast as possible, then exit: nothing may be cut off.
    container = alpha.create(command=["sh", "-c", "head -c 3145728 /dev/zero; echo end >&2; exit 3"])
    ws = connect(alpha, container["uuid"])
    assert alpha.post(f"/v1/containers/{container['uuid']}/start").status_code == 202
    out, err, statuses, code = collect(ws)
    assert out == b"\0" * 3145728
    assert err == b"end\n"
    assert statuses[-1] == {"exit_code": 3}
    assert code == 1000


def test_attaching_before_start_misses_nothing(alpha):
    container = alpha.create(command=["sh", "-c", "echo first; echo second"])
    ws = connect(alpha, container["uuid"])
    time.sleep(0.2)
    alpha.post(f"/v1/containers/{container['uuid']}/start")
    out, _, statuses, code = collect(ws)
    assert out == b"first\nsecond\n"
    assert statuses[-1]["exit_code"] == 0 and code == 1000


def test_stdin_eof_reaches_the_process_and_output_continues(alpha):
    script = "cat; echo after-eof; sleep 0.2; echo still-here >&2; exit 4"
    container = alpha.create(command=["sh", "-c", script], interactive=True, run=True)
    alpha.wait_status(container["uuid"], {"running"})
    ws = connect(alpha, container["uuid"], stdin="true")
    ws.send_binary(b"\x00hello stdin\n")
    ws.send_binary(b"\xff")  # close stdin
    out, err, statuses, code = collect(ws)
    assert out == b"hello stdin\nafter-eof\n"
    assert err == b"still-here\n"
    assert statuses[-1] == {"exit_code": 4}
    assert code == 1000


def test_several_clients_each_see_all_output(alpha):
    container = alpha.create(command=["sh", "-c", "sleep 0.5; for i in $(seq 1 500); do echo line$i; done"])
    sockets = [connect(alpha, container["uuid"]) for _ in range(3)]
    alpha.post(f"/v1/containers/{container['uuid']}/start")
    expected = b"".join(b"line%d\n" % i for i in range(1, 501))
    results = [collect(ws) for ws in sockets]
    for out, _, statuses, code in results:
        assert out == expected
        assert statuses[-1]["exit_code"] == 0 and code == 1000


def test_logs_true_replays_then_continues_without_gap_or_duplicate(alpha):
    script = "for i in $(seq 1 40); do echo n$i; sleep 0.05; done"
    container = alpha.create(command=["sh", "-c", script], run=True)
    uuid = container["uuid"]
    deadline = time.monotonic() + 20
    while b"n10\n" not in alpha.logs(uuid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    out, _, statuses, code = collect(connect(alpha, uuid, logs="true"))
    assert out == b"".join(b"n%d\n" % i for i in range(1, 41))
    assert statuses[-1]["exit_code"] == 0


def test_without_logs_only_new_output_arrives(alpha):
    script = "echo before; sleep 1; echo after"
    container = alpha.create(command=["sh", "-c", script], run=True)
    uuid = container["uuid"]
    deadline = time.monotonic() + 10
    while alpha.logs(uuid) != b"before\n":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    out, _, _, _ = collect(connect(alpha, uuid))
    assert out == b"after\n"


def test_the_exit_code_is_never_lost_for_a_fast_process(alpha):
    for code in (0, 1, 42):
        container = alpha.create(command=["sh", "-c", f"exit {code}"])
        ws = connect(alpha, container["uuid"])
        alpha.post(f"/v1/containers/{container['uuid']}/start")
        _, _, statuses, close = collect(ws)
        assert statuses == [{"exit_code": code}]
        assert close == 1000


def test_detaching_does_not_stop_the_container(alpha):
    container = alpha.create(command=["sh", "-c", "sleep 1; echo done"], run=True)
    ws = connect(alpha, container["uuid"])
    ws.close()
    waited = alpha.post(f"/v1/containers/{container['uuid']}/wait").json()
    assert waited["exit_code"] == 0
    assert alpha.logs(container["uuid"]) == b"done\n"


def test_raw_mode_tty_shell_with_resize_through_channels(alpha):
    container = alpha.create(command=["sh"], tty=True, interactive=True, run=True)
    uuid = container["uuid"]
    alpha.wait_status(uuid, {"running"})
    ws = connect(alpha, uuid, stdin="true")
    ws.send_binary(b"\x04" + json.dumps({"cols": 101, "rows": 33}).encode())
    ws.send_binary(b"\x00stty size; exit 6\n")
    out, _, statuses, code = collect(ws)
    assert b"33 101" in out
    assert statuses[-1] == {"exit_code": 6}
    # Without the subprotocol the bytes are the terminal's, both ways.
    container = alpha.create(command=["sh"], tty=True, interactive=True, run=True)
    alpha.wait_status(container["uuid"], {"running"})
    raw = connect(alpha, container["uuid"], subprotocol=False, stdin="true")
    assert raw.getsubprotocol() is None
    raw.send_binary(b"echo raw-$((2+3)); exit 2\n")
    data = b""
    while True:
        try:
            opcode, chunk = raw.recv_data()
        except websocket.WebSocketConnectionClosedException:
            break
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            assert chunk[2:] == b"exit_code=2"
            break
        data += chunk
    assert b"raw-5" in data


def test_one_time_token_for_browsers(alpha):
    container = alpha.create(command=["sh", "-c", "sleep 0.5; echo via-token"], run=True)
    grant = alpha.get(f"/v1/containers/{container['uuid']}/attach")
    assert grant.status_code == 200
    body = grant.json()
    assert body["url"].startswith("ws://") and "/v1/attach/" in body["url"]
    assert body["expires_at"].endswith("Z")
    ws = websocket.create_connection(body["url"], subprotocols=[SUB], timeout=30)
    out, _, statuses, _ = collect(ws)
    assert out == b"via-token\n"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(body["url"], subprotocols=[SUB], timeout=10)
    assert refused.value.status_code == 401


def test_attach_is_refused_without_auth_across_projects_and_from_foreign_origins(alpha, beta):
    container = alpha.create(command=["sleep", "30"], run=True)
    uuid = container["uuid"]
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(ws_url(alpha, f"/v1/containers/{uuid}/attach"), timeout=10)
    assert refused.value.status_code == 401
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(beta, uuid)
    assert refused.value.status_code == 404
    headers = [f"{k}: {v}" for k, v in alpha.session.headers.items() if k.startswith("X-Auth")]
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(
            ws_url(alpha, f"/v1/containers/{uuid}/attach"),
            header=headers,
            origin="http://evil.example",
            timeout=10,
        )
    assert refused.value.status_code == 403
    # The page's own origin passes.
    ok = websocket.create_connection(
        ws_url(alpha, f"/v1/containers/{uuid}/attach"),
        header=headers,
        origin=alpha.base,
        timeout=10,
    )
    ok.close()


def test_attach_to_an_exited_container_is_409_unless_replaying(alpha):
    container, _ = alpha.run(["sh", "-c", "echo old"])
    uuid = container["uuid"]
    response = alpha.get(f"/v1/containers/{uuid}/attach")
    assert response.status_code == 409
    assert "attach" in response.json()["error"]["message"]
    out, _, statuses, code = collect(connect(alpha, uuid, logs="true"))
    assert out == b"old\n" and statuses[-1]["exit_code"] == 0 and code == 1000


def test_stdin_on_a_non_interactive_container_is_refused_clearly(alpha):
    container = alpha.create(command=["sh", "-c", "sleep 1"], run=True)
    ws = connect(alpha, container["uuid"], stdin="true")
    ws.send_binary(b"\x00ignored\n")
    _, _, statuses, _ = collect(ws)
    assert any("stdin" in s.get("error", "") for s in statuses)
    assert statuses[-1] == {"exit_code": 0}


def test_a_client_that_stops_reading_slows_neither_the_container_nor_other_clients(alpha):
    size = 48 * 1024 * 1024
    container = alpha.create(command=["sh", "-c", f"head -c {size} /dev/zero; echo done >&2"])
    uuid = container["uuid"]
    stalled = connect(alpha, uuid)
    # A small receive buffer: the stalled client's TCP window fills fast.
    stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    reader = connect(alpha, uuid)
    alpha.post(f"/v1/containers/{uuid}/start")
    # The other client gets everything and the container exits while the
    # stalled one has read nothing.
    out, err, statuses, code = collect(reader)
    assert len(out) == size and err == b"done\n"
    assert statuses[-1] == {"exit_code": 0} and code == 1000
    assert alpha.post(f"/v1/containers/{uuid}/wait").json()["exit_code"] == 0
    # The stalled client fell behind; now it reads, from the store, and
    # still gets every byte exactly once.
    out, err, statuses, code = collect(stalled)
    assert len(out) == size and out.count(b"\0") == size
    assert err == b"done\n" and statuses[-1] == {"exit_code": 0}


def test_an_idle_session_is_closed(tmp_path):
    from tests.integration.conftest import running_plane

    with running_plane(tmp_path, extra_args=["--attach-idle-timeout", "1"]) as plane:
        client = plane.client("idle")
        container = client.create(command=["sleep", "30"], run=True)
        ws = connect(client, container["uuid"])
        started = time.monotonic()
        _, _, statuses, code = collect(ws)
        assert code == 4000
        assert any("idle" in s.get("error", "") for s in statuses)
        assert time.monotonic() - started < 10
        assert client.show(container["uuid"])["status"] == "running"
        client.delete(f"/v1/containers/{container['uuid']}", params={"force": "true"})


def test_a_paste_of_1_mib_reaches_cat_and_comes_back_whole(alpha):
    # Longer than an AMP value (65,535 bytes) many times over: once as one
    # message, once as the browser's terminal sends it (64 KiB messages).
    container = alpha.create(command=["cat"], interactive=True, run=True)
    alpha.wait_status(container["uuid"], {"running"})
    ws = connect(alpha, container["uuid"], stdin="true")
    one, pieces = os.urandom(1024 * 1024), os.urandom(1024 * 1024)
    ws.send_binary(b"\x00" + one)
    for start in range(0, len(pieces), 65536):
        ws.send_binary(b"\x00" + pieces[start:start + 65536])
    ws.send_binary(b"\xff")  # close stdin: cat ends
    out, err, statuses, code = collect(ws)
    assert len(out) == 2 * 1024 * 1024
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(one + pieces).hexdigest()
    assert err == b"" and statuses[-1] == {"exit_code": 0} and code == 1000
