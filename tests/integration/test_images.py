"""
Images belong to projects, on the real engine: a registry on loopback (a
small one in this process, speaking the Registry HTTP API v2) serves an
image made of csvc/busybox's layers with a config of its own (so a new image
id); project alpha pulls it through csvc's Docker API, and project beta can
neither list, inspect (by name, id or id prefix) nor run it, while alpha can
and both still run csvc/busybox, the operator's.
"""

import gzip
import hashlib
import io
import json
import re
import tarfile
import threading
import uuid as uuidlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.integration.conftest import IMAGE, engine_available, running_plane

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_blobs(label):
    """
    csvc/busybox's layers (gzipped) with its config plus a label: the
    manifest, the blobs by digest, and the image id an engine gives it.
    """
    import docker

    client = docker.from_env(timeout=60)
    try:
        saved = b"".join(client.images.get(IMAGE).save())
    finally:
        client.close()
    archive = tarfile.open(fileobj=io.BytesIO(saved))
    entry = json.loads(archive.extractfile("manifest.json").read())[0]
    config = json.loads(archive.extractfile(entry["Config"]).read())
    config.setdefault("config", {})
    config["config"]["Labels"] = dict(config["config"].get("Labels") or {}, **{"csvc.test.image": label})
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    blobs = {digest(config_bytes): config_bytes}
    layers = []
    for path in entry["Layers"]:
        layer = gzip.compress(archive.extractfile(path).read(), mtime=0)
        blobs[digest(layer)] = layer
        layers.append({"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                       "size": len(layer), "digest": digest(layer)})
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config_bytes),
                   "digest": digest(config_bytes)},
        "layers": layers,
    }).encode()
    return manifest, blobs, digest(config_bytes)


class Registry(BaseHTTPRequestHandler):
    """
    Enough of the Registry HTTP API v2 for an engine's pull of one image.
    """

    manifest = b""
    blobs = {}
    repository = ""
    tag = ""

    def log_message(self, *args):
        pass

    def _send(self, code, body=b"", content_type="application/json", extra=()):
        self.send_response(code)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path in ("/v2", "/v2/"):
            return self._send(200, b"{}")
        found = re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", path)
        if found and found.group(1) == self.repository and found.group(2) in (self.tag, digest(self.manifest)):
            return self._send(200, self.manifest, MANIFEST, [("Docker-Content-Digest", digest(self.manifest))])
        found = re.fullmatch(r"/v2/(.+)/blobs/(sha256:[0-9a-f]{64})", path)
        if found and found.group(1) == self.repository and found.group(2) in self.blobs:
            blob = self.blobs[found.group(2)]
            return self._send(200, blob, "application/octet-stream", [("Docker-Content-Digest", found.group(2))])
        return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}')

    do_HEAD = do_GET


@pytest.fixture(scope="module")
def registry():
    if not engine_available():
        pytest.fail("no Docker engine answers on /var/run/docker.sock: run `make bootstrap` first")
    manifest, blobs, image_id = image_blobs(str(uuidlib.uuid4()))
    handler = type("OneImage", (Registry,), {"manifest": manifest, "blobs": blobs,
                                              "repository": "tenant/app", "tag": "1"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="test-registry", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}/tenant/app", image_id
    finally:
        server.shutdown()
        server.server_close()
        import docker

        client = docker.from_env(timeout=60)
        try:
            client.images.remove(image_id, force=True)
        except docker.errors.NotFound:
            pass
        finally:
            client.close()


@pytest.fixture(scope="module")
def plane(tmp_path_factory, registry):
    # The registry is on loopback, which pulls may not reach unless told.
    with running_plane(tmp_path_factory.mktemp("csvc-images"),
                       extra_args=["--registry-allow-private", "127.0.0.0/8"]) as plane:
        yield plane


def docker_call(client, method, path, **kwargs):
    return client.request(method, "/v1.45" + path, **kwargs)


def no_such_image(response, name):
    assert response.status_code == 404, response.text
    assert response.json()["message"] == f"No such image: {name}"


def test_a_pulled_image_is_the_pulling_projects_only(plane, registry):
    repository, image_id = registry
    reference = f"{repository}:1"
    alpha, beta = plane.client("images-alpha"), plane.client("images-beta")
    pulled = docker_call(alpha, "POST", "/images/create", params={"fromImage": repository, "tag": "1"})
    assert pulled.status_code == 200, pulled.text
    last = json.loads(pulled.text.strip().splitlines()[-1])
    assert last.get("id") == image_id, pulled.text

    listed = docker_call(alpha, "GET", "/images/json").json()
    assert image_id in [i["Id"] for i in listed]
    short = image_id[len("sha256:"):][:12]
    for name in (reference, image_id, short):
        inspected = docker_call(alpha, "GET", f"/images/{name}/json")
        assert inspected.status_code == 200 and inspected.json()["Id"] == image_id, (name, inspected.text)

    ids = [i["Id"] for i in docker_call(beta, "GET", "/images/json").json()]
    assert image_id not in ids
    for name in (reference, image_id, short):
        no_such_image(docker_call(beta, "GET", f"/images/{name}/json"), name)
    no_such_image(docker_call(beta, "POST", "/containers/create", json={"Image": reference, "Cmd": ["true"]}),
                  reference)
    no_such_image(docker_call(beta, "POST", "/containers/create", json={"Image": image_id, "Cmd": ["true"]}),
                  image_id)
    refused = beta.post("/v1/containers", json={"image": reference, "command": ["true"]})
    assert refused.status_code == 404 and "No such image" in refused.text, refused.text
    assert beta.get("/v1/containers").json()["containers"] == []

    # alpha runs it (its label shows it is the registry's image, not busybox).
    container, exited = alpha.run(["true"], image=reference)
    assert exited["exit_code"] == 0, exited
    created = docker_call(alpha, "POST", "/containers/create", json={"Image": reference, "Cmd": ["true"]})
    assert created.status_code == 201, created.text
    docker_call(alpha, "DELETE", f"/containers/{created.json()['Id']}", params={"force": "true"})
    alpha.delete(f"/v1/containers/{container['uuid']}", params={"force": "true"})

    # The operator's image is everyone's still.
    for client in (alpha, beta):
        assert IMAGE + ":latest" in [t for i in docker_call(client, "GET", "/images/json").json()
                                     for t in i.get("RepoTags") or []]
        container, exited = client.run(["true"])
        assert exited["exit_code"] == 0, exited
        client.delete(f"/v1/containers/{container['uuid']}", params={"force": "true"})


def test_the_pull_records_on_postgresql(database):
    from datetime import datetime

    from csvc.store import images as units
    from csvc.store.db import make_engine, upgrade

    engine = make_engine(database)
    try:
        upgrade(engine)
        now = datetime(2024, 1, 1)
        with engine.begin() as conn:
            units.thd_pull_started(conn, "p", "i", "alpine:latest", now)
            units.thd_pull_started(conn, "p", "i", "alpine:latest", now)
            assert units.thd_claims(conn, []) == [{"project_id": "p", "reference": "alpine:latest", "image_id": ""}]
            units.thd_pull_ended(conn, "p", "i", "alpine:latest", "sha256:a", now)
            units.thd_pull_ended(conn, "p", "i", "alpine:latest", "sha256:a", now)
            units.thd_pull_ended(conn, "q", "i", "alpine:latest", None, now)
            units.thd_pull_ended(conn, "q", "j", "alpine:3", "sha256:a", now)
        with engine.begin() as conn:
            claims = units.thd_claims(conn, ["sha256:a", "sha256:b"])
        assert sorted((c["project_id"], c["reference"]) for c in claims) == [("p", "alpine:latest"), ("q", "alpine:3")]
        assert all(c["image_id"] == "sha256:a" for c in claims)
    finally:
        engine.dispose()
