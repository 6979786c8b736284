"""
Quotas hold under concurrency: 20 creates at once against a quota of 10
yield exactly 10 containers and 10 clear 403s, on the SQLite service (one
store thread) and on PostgreSQL (several store threads, a row lock per
project).
"""

import threading

import requests

from tests.integration.conftest import IMAGE, remove_project_containers, running_plane

CREATES = 20
QUOTA = 10


def concurrent_creates(client, count=CREATES):
    """
    ``count`` creates sent at once, each on its own connection; the
    responses as ``(status, body)`` pairs.
    """
    barrier = threading.Barrier(count)
    results = [None] * count

    def create(i):
        with requests.Session() as session:
            session.headers.update(client.session.headers)
            barrier.wait(timeout=30)
            try:
                response = session.post(
                    client.base + "/v1/containers",
                    json={"image": IMAGE, "command": ["true"]},
                    timeout=120,
                )
                results[i] = (response.status_code, response.json())
            except Exception as exc:  # reported by the assertions below
                results[i] = (None, repr(exc))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    return results


def check_exactly_the_quota(client, admin):
    assert client.get("/v1/containers").json()["containers"] == []
    reply = admin.request("PUT", f"/v1/quotas/{client.project}", json={"containers": QUOTA})
    assert reply.status_code == 200, reply.text
    assert reply.json()["containers"] == QUOTA

    results = concurrent_creates(client)

    accepted = [body for status, body in results if status == 202]
    refused = [body for status, body in results if status == 403]
    assert len(accepted) == QUOTA, results
    assert len(refused) == CREATES - QUOTA, results
    for body in refused:
        message = body["error"]["message"]
        assert message.startswith(f"quota exceeded for containers: limit {QUOTA}, in use {QUOTA}"), message
    # Nothing else stored: exactly the accepted containers.
    listed = client.get("/v1/containers").json()["containers"]
    assert sorted(c["uuid"] for c in listed) == sorted(c["uuid"] for c in accepted)
    usage = client.get(f"/v1/quotas/{client.project}/usage").json()
    assert usage["containers"] == {"limit": QUOTA, "in_use": QUOTA}
    # One more is refused too, and a delete makes room for one.
    one_more = client.post("/v1/containers", json={"image": IMAGE, "command": ["true"]})
    assert one_more.status_code == 403, one_more.text
    assert client.delete(f"/v1/containers/{accepted[0]['uuid']}").status_code == 204
    client.create(command=["true"])


def test_concurrent_creates_respect_the_quota_on_sqlite(control_plane, alpha):
    try:
        check_exactly_the_quota(alpha, control_plane.admin)
    finally:
        restored = control_plane.admin.delete(f"/v1/quotas/{alpha.project}")
        assert restored.status_code == 204, restored.text


def test_concurrent_creates_respect_the_quota_on_postgresql(tmp_path, database):
    project = "pg-quota"
    try:
        with running_plane(tmp_path, capacity=50, database=database) as plane:
            client = plane.client(project)
            check_exactly_the_quota(client, plane.admin)
            for container in client.get("/v1/containers").json()["containers"]:
                client.delete(f"/v1/containers/{container['uuid']}", params={"force": "true"})
    finally:
        remove_project_containers(project)


def test_docker_attach_and_exec_streams_count_against_the_attach_quota(control_plane, alpha):
    """
    The Docker API's hijacked attach and exec streams are attach sessions
    too: beyond the quota the next one is a 403.
    """
    import socket

    admin = control_plane.admin
    assert admin.request("PUT", "/v1/quotas/alpha", json={"attach_sessions": 1}).status_code == 200
    try:
        container = alpha.create(command=["sleep", "60"], run=True)
        alpha.wait_status(container["uuid"], {"running"})
        host, port = control_plane.base.replace("http://", "").split(":")
        headers = "".join(f"{k}: {v}\r\n" for k, v in alpha.session.headers.items() if k.startswith("X-Auth"))

        def hijack(path):
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: csvc\r\n{headers}Connection: Upgrade\r\nUpgrade: tcp\r\n"
                "Content-Length: 0\r\n\r\n".encode()
            )
            return sock, sock.recv(4096)

        first, answer = hijack(f"/v1.41/containers/{container['uuid']}/attach?stream=1&stdout=1")
        assert answer.startswith(b"HTTP/1.1 101 UPGRADED")
        second, answer = hijack(f"/v1.41/containers/{container['uuid']}/attach?stream=1&stdout=1")
        assert answer.split(b"\r\n", 1)[0].endswith(b"403 Forbidden")
        assert b"attach_sessions" in answer
        second.close()
        first.close()
    finally:
        admin.request("DELETE", "/v1/quotas/alpha")
