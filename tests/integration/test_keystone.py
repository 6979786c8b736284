"""
``--auth keystone`` against the real Keystone that scripts/keystone.sh runs on
127.0.0.1:5000 (make bootstrap), with the test accounts of
scripts/keystone_accounts.py.
"""

import importlib.util
import os
import time

import pytest
import requests

from tests.integration.conftest import ROOT, Client, ControlPlane, engine_available, free_port

KEYSTONE_URL = os.environ.get("CSVC_KEYSTONE_URL", "http://127.0.0.1:5000/v3")
CACHE_TTL = 1


def _accounts():
    path = os.path.join(ROOT, "scripts", "keystone_accounts.py")
    spec = importlib.util.spec_from_file_location("keystone_accounts", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ACCOUNTS = _accounts()


def keystone_login(user, project, password=None):
    """
    A project-scoped token of ``user``: (token, project id).
    """
    password = password or ACCOUNTS.USERS[user][0]
    response = _password_token(user, password, {"project": {"name": project, "domain": {"id": "default"}}})
    return response.headers["X-Subject-Token"], response.json()["token"]["project"]["id"]


def _password_token(user, password, scope):
    """
    Keystone's answer to a password authentication of ``user`` with ``scope``.
    """
    response = requests.post(
        KEYSTONE_URL + "/auth/tokens",
        json={
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}},
                },
                "scope": scope,
            }
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response


#: keystone-manage bootstrap's admin (scripts/keystone.sh): the admin role on
#: the system and on project "admin".
BOOTSTRAP_ADMIN = ("admin", os.environ.get("CSVC_KEYSTONE_ADMIN_PASSWORD", "csvc-keystone-admin"))
#: The plane's admin project: csvc-admin's admin role there makes an admin.
ADMIN_PROJECT = "alpha"


def keystone_system_login(user, password):
    """
    A system-scoped token (``system: {all: true}``) of ``user``.
    """
    return _password_token(user, password, {"system": {"all": True}}).headers["X-Subject-Token"]


def keystone_client(plane, user, project):
    token, project_id = keystone_login(user, project)
    return Client(plane.base, token, project_id)


def keystone_config(tmp, url):
    path = os.path.join(str(tmp), "csvc.toml")
    with open(path, "w") as f:
        f.write(
            f'keystone-url = "{url}"\n'
            f'keystone-username = "{ACCOUNTS.SERVICE["username"]}"\n'
            f'keystone-password = "{ACCOUNTS.SERVICE["password"]}"\n'
            f'keystone-project = "{ACCOUNTS.SERVICE["project"]}"\n'
        )
    return path


@pytest.fixture(scope="module")
def keystone():
    try:
        requests.get(KEYSTONE_URL + "/", timeout=5).raise_for_status()
    except requests.RequestException as exc:
        pytest.fail(f"no Keystone answers on {KEYSTONE_URL} ({exc}): run `make bootstrap` first")
    return KEYSTONE_URL


@pytest.fixture(scope="module")
def ks_plane(keystone, tmp_path_factory):
    if not engine_available():
        pytest.fail("no Docker engine answers on /var/run/docker.sock: run `make bootstrap` first")
    tmp = tmp_path_factory.mktemp("csvc-keystone")
    args = ["--config", keystone_config(tmp, keystone), "--auth", "keystone", "--auth-cache-ttl", str(CACHE_TTL),
            "--keystone-admin-project", ADMIN_PROJECT]
    plane = ControlPlane(tmp, capacity=20, extra_args=args)
    plane.start()
    try:
        plane.wait_active(keystone_client(plane, "csvc-admin", "alpha"))
        yield plane
    finally:
        plane.close()


@pytest.fixture
def ks_alpha(ks_plane):
    client = keystone_client(ks_plane, "alpha-member", "alpha")
    yield client
    listed = client.get("/v1/containers")
    if listed.status_code == 200:
        for c in listed.json()["containers"]:
            client.delete(f"/v1/containers/{c['uuid']}", params={"force": "true"})


def test_member_token_works_in_its_project(ks_alpha):
    container, exited = ks_alpha.run(["echo", "hello"])
    assert exited["exit_code"] == 0
    listed = ks_alpha.get("/v1/containers")
    assert listed.status_code == 200, listed.text
    assert container["uuid"] in [c["uuid"] for c in listed.json()["containers"]]
    # The container belongs to the Keystone project.
    assert ks_alpha.show(container["uuid"])["project_id"] == ks_alpha.project


def test_member_token_with_another_project_is_401(ks_plane, ks_alpha):
    _, beta_id = keystone_login("beta-member", "beta")
    response = requests.get(
        ks_plane.base + "/v1/containers",
        headers={"X-Auth-Token": ks_alpha.session.headers["X-Auth-Token"], "X-Auth-Project-Id": beta_id},
        timeout=30,
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == 401


def test_garbage_token_is_401(ks_plane, ks_alpha):
    garbage = Client(ks_plane.base, "gAAAAAB-not-a-token", ks_alpha.project)
    assert garbage.get("/v1/containers").status_code == 401


def test_a_flood_of_distinct_bogus_tokens_is_bounded_and_others_are_served(ks_plane, ks_alpha):
    # Each distinct token is a validation against Keystone: at most
    # --keystone-validations run and --keystone-validation-queue wait; past
    # that a 503 with Retry-After, never a 500, and nothing queued unbounded.
    from concurrent.futures import ThreadPoolExecutor

    def bogus(i):
        answer = requests.get(ks_plane.base + "/v1/containers", timeout=60,
                              headers={"X-Auth-Token": f"gAAAAAB-bogus-{i}", "X-Auth-Project-Id": ks_alpha.project})
        return answer.status_code, answer.headers.get("Retry-After")

    with ThreadPoolExecutor(max_workers=96) as pool:
        answers = list(pool.map(bogus, range(400)))
    assert {status for status, _ in answers} <= {401, 503}, answers
    assert all(retry == "1" for status, retry in answers if status == 503)
    assert ks_alpha.get("/v1/containers").status_code == 200


@pytest.mark.parametrize("drop", ["X-Auth-Token", "X-Auth-Project-Id"])
def test_missing_headers_are_401(ks_plane, ks_alpha, drop):
    headers = dict(ks_alpha.session.headers)
    del headers[drop]
    response = requests.get(ks_plane.base + "/v1/containers", headers=headers, timeout=30)
    assert response.status_code == 401, response.text


def test_admin_role_in_the_admin_project_makes_an_admin(ks_plane, ks_alpha):
    admin = keystone_client(ks_plane, "csvc-admin", ADMIN_PROJECT)
    assert admin.get("/v1/instances").status_code == 200
    assert ks_alpha.get("/v1/instances").status_code == 403


def test_admin_role_in_another_project_is_a_member(ks_plane):
    # The bootstrap admin's token scoped to project "admin", which is not
    # this plane's admin project.
    token, project_id = keystone_login(BOOTSTRAP_ADMIN[0], "admin", password=BOOTSTRAP_ADMIN[1])
    elsewhere = Client(ks_plane.base, token, project_id)
    assert elsewhere.get("/v1/containers").status_code == 200
    denied = elsewhere.get("/v1/instances")
    assert denied.status_code == 403, denied.text


def test_system_scoped_admin_is_an_admin(ks_plane, ks_alpha):
    token = keystone_system_login(*BOOTSTRAP_ADMIN)
    system = Client(ks_plane.base, token, ks_alpha.project)
    assert system.get("/v1/instances").status_code == 200
    # It acts in the project it names.
    assert system.get("/v1/containers").status_code == 200


def test_revoked_token_stops_working_within_the_cache_ttl(ks_plane):
    token, project_id = keystone_login("beta-member", "beta")
    client = Client(ks_plane.base, token, project_id)
    assert client.get("/v1/containers").status_code == 200
    revoked = requests.delete(
        KEYSTONE_URL + "/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token}, timeout=30
    )
    assert revoked.status_code == 204, revoked.text
    time.sleep(CACHE_TTL + 1)
    assert client.get("/v1/containers").status_code == 401


def test_docker_api_with_a_keystone_token(ks_plane, ks_alpha):
    container, _ = ks_alpha.run(["true"])
    response = ks_alpha.get("/containers/json", params={"all": "true"})
    assert response.status_code == 200, response.text
    assert "/" + container["name"] in [name for c in response.json() for name in c["Names"]]
    wrong = requests.get(
        ks_plane.base + "/containers/json",
        headers={"X-Auth-Token": "garbage", "X-Auth-Project-Id": ks_alpha.project},
        timeout=30,
    )
    assert wrong.status_code == 401
    assert "message" in wrong.json()


def test_unreachable_keystone_is_503(keystone, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("csvc-keystone-down")
    nowhere = f"http://127.0.0.1:{free_port()}/v3/"
    args = ["--config", keystone_config(tmp, nowhere), "--auth", "keystone"]
    plane = ControlPlane(tmp, instances=0, extra_args=args)
    plane.start()
    try:
        token, project_id = keystone_login("alpha-member", "alpha")
        headers = {"X-Auth-Token": token, "X-Auth-Project-Id": project_id}
        deadline = time.monotonic() + 60
        while True:
            try:
                native = requests.get(plane.base + "/v1/containers", headers=headers, timeout=30)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or plane.process.poll() is not None:
                    raise AssertionError(f"the service did not answer: {plane.tail_log()}") from None
                time.sleep(0.1)
        assert native.status_code == 503, native.text
        assert native.json()["error"]["code"] == 503
        docker = requests.get(plane.base + "/containers/json", headers=headers, timeout=30)
        assert docker.status_code == 503, docker.text
        assert "message" in docker.json()
    finally:
        plane.close()
