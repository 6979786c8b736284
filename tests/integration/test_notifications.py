"""
Notifications from a real control plane: a webhook receiver (a tiny HTTP
server in this process, on 127.0.0.1) subscribed by project alpha receives
its container's life and nothing of beta's; the JSON-lines log in the data
dir has both.
"""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

ALPHA_LIFE = [
    "compute.container.create.start",
    "compute.container.create.end",
    "compute.container.start",
    "compute.container.exit",
    "compute.container.delete.start",
    "compute.container.delete.end",
]


class Receiver:
    """
    Records every POST (path, headers, JSON body); answers 204.
    """

    def __init__(self):
        self.received = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length))
                with receiver._lock:
                    receiver.received.append((self.path, dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)
        self.thread.start()

    def bodies(self, path=None):
        with self._lock:
            return [body for p, _h, body in self.received if path is None or p == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def wait_for(predicate, timeout=30, what="a condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def log_lines(control_plane):
    path = os.path.join(control_plane.data_dir, "notifications.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_webhook_and_log_receive_a_projects_own_events(control_plane, alpha, beta, receiver):
    created = alpha.post(
        "/v1/subscriptions", json={"url": receiver.url + "/alpha", "event_types": ["compute.container.*"]}
    )
    assert created.status_code == 201, created.text
    subscription = created.json()
    try:
        mine, waited = alpha.run(["sh", "-c", "exit 3"])
        assert waited["exit_code"] == 3
        theirs, _ = beta.run(["sh", "-c", "exit 0"])
        assert alpha.delete(f"/v1/containers/{mine['uuid']}").status_code == 204
        assert beta.delete(f"/v1/containers/{theirs['uuid']}").status_code == 204

        def alpha_done():
            bodies = [b for b in receiver.bodies("/alpha") if b["payload"].get("container_uuid") == mine["uuid"]]
            return bodies if "compute.container.delete.end" in [b["event_type"] for b in bodies] else None

        bodies = wait_for(alpha_done, what="alpha's delete.end at the webhook")
        assert [b["event_type"] for b in bodies] == ALPHA_LIFE
        exit_body = bodies[ALPHA_LIFE.index("compute.container.exit")]
        assert exit_body["payload"]["exit_code"] == 3
        assert exit_body["priority"] == "INFO"
        assert exit_body["publisher_id"].startswith("csvc.")
        assert {b["payload"]["project_id"] for b in bodies} == {"alpha"}
        assert len({b["message_id"] for b in bodies}) == len(bodies)
        # Nothing of beta's, ever.
        time.sleep(0.5)
        assert all(b["payload"].get("project_id") == "alpha" for b in receiver.bodies())
        assert not [b for b in receiver.bodies() if b["payload"].get("container_uuid") == theirs["uuid"]]
        headers = receiver.received[0][1]
        assert headers["Content-Type"] == "application/json"

        # The log has both projects' events.
        def logged():
            lines = log_lines(control_plane)
            ours = [e["event_type"] for e in lines if e["payload"].get("container_uuid") == mine["uuid"]]
            beta_end = [e for e in lines if e["payload"].get("container_uuid") == theirs["uuid"]
                        and e["event_type"] == "compute.container.delete.end"]
            return (ours, lines) if "compute.container.delete.end" in ours and beta_end else None

        ours, lines = wait_for(logged, what="the JSON-lines log")
        assert ours == ALPHA_LIFE
        beta_exit = [e for e in lines if e["payload"].get("container_uuid") == theirs["uuid"]
                     and e["event_type"] == "compute.container.exit"]
        assert beta_exit[0]["payload"]["project_id"] == "beta"
        assert beta_exit[0]["payload"]["exit_code"] == 0
        # The local instance was announced when the service created it (to
        # the log only: it belongs to no project).
        announced = [e for e in lines if e["event_type"] == "compute.instance.create"]
        assert announced and announced[0]["payload"]["provider"] == "local"
        assert not [b for b in receiver.bodies() if b["event_type"].startswith("compute.instance.")]
    finally:
        alpha.delete(f"/v1/subscriptions/{subscription['uuid']}")
    listed = alpha.get("/v1/subscriptions").json()["subscriptions"]
    assert subscription["uuid"] not in [s["uuid"] for s in listed]


def test_webhooks_to_internal_addresses_are_refused(alpha):
    """
    The service here allows loopback (the receivers above); the metadata
    service's address and private networks stay refused.
    """
    for url, why in (
        ("http://169.254.169.254/latest/meta-data/", "is link-local"),
        ("http://10.0.0.1/hook", "is private"),
        ("http://[::1]:9/hook", "is loopback"),
    ):
        response = alpha.post("/v1/subscriptions", json={"url": url, "event_types": ["compute.container.*"]})
        assert response.status_code == 400, response.text
        message = response.json()["error"]["message"]
        assert message.startswith(f"the url {url} is refused: ") and why in message
