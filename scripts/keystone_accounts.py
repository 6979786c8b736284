"""
The Keystone test accounts, and their idempotent creation through the
identity API v3 (plain HTTP, standard library only: it runs in Keystone's
own virtual environment from scripts/keystone.sh).

The tests (tests/integration/test_keystone.py) read ``PROJECTS``, ``USERS``
and ``SERVICE`` from this file, so the names and passwords live here only.
"""

import json
import os
import sys
import urllib.error
import urllib.request

DOMAIN = "default"
PROJECTS = ("alpha", "beta")
#: user -> (password, [(role, project)])
USERS = {
    "alpha-member": ("alpha-member-secret", [("member", "alpha")]),
    "beta-member": ("beta-member-secret", [("member", "beta")]),
    "csvc-admin": ("csvc-admin-secret", [("admin", "alpha")]),
    # csvc's own service user: validates the tenants' tokens.
    "csvc": ("csvc-service-secret", [("admin", "admin"), ("service", "admin")]),
}
SERVICE = {"username": "csvc", "password": USERS["csvc"][0], "project": "admin"}


class Keystone:
    def __init__(self, url, token=None):
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method, path, body=None, expect=(200, 201, 204)):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("X-Auth-Token", self.token)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, headers, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            status, headers, raw = exc.code, exc.headers, exc.read()
        if status not in expect:
            raise SystemExit(f"keystone: {method} {path} answered {status}: {raw[:300]!r}")
        return headers, (json.loads(raw) if raw else None)

    def login(self, username, password, project):
        headers, _ = self.call(
            "POST",
            "/auth/tokens",
            {
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {"user": {"name": username, "domain": {"id": DOMAIN}, "password": password}},
                    },
                    "scope": {"project": {"name": project, "domain": {"id": DOMAIN}}},
                }
            },
        )
        self.token = headers["X-Subject-Token"]

    def find(self, collection, name, extra=""):
        _, body = self.call("GET", f"/{collection}?name={name}{extra}")
        found = body[collection]
        return found[0]["id"] if found else None

    def ensure(self, collection, name, body, extra=""):
        ident = self.find(collection, name, extra)
        if ident is None:
            _, created = self.call("POST", f"/{collection}", body)
            ident = created[collection[:-1]]["id"]
            print(f"keystone: created {collection[:-1]} {name}", file=sys.stderr)
        return ident


def main():
    keystone = Keystone(os.environ.get("CSVC_KEYSTONE_URL", "http://127.0.0.1:5000/v3/"))
    keystone.login("admin", os.environ.get("CSVC_KEYSTONE_ADMIN_PASSWORD", "csvc-keystone-admin"), "admin")
    in_domain = f"&domain_id={DOMAIN}"
    projects = {"admin": keystone.find("projects", "admin", in_domain)}
    for name in PROJECTS:
        projects[name] = keystone.ensure("projects", name, {"project": {"name": name, "domain_id": DOMAIN}}, in_domain)
    roles = {}
    for name in sorted({role for _, grants in USERS.values() for role, _ in grants}):
        roles[name] = keystone.ensure("roles", name, {"role": {"name": name}})
    for name, (password, grants) in USERS.items():
        user = keystone.ensure(
            "users", name, {"user": {"name": name, "domain_id": DOMAIN, "password": password}}, in_domain
        )
        for role, project in grants:
            # PUT is idempotent: 204 whether or not the grant was there.
            keystone.call("PUT", f"/projects/{projects[project]}/users/{user}/roles/{roles[role]}")


if __name__ == "__main__":
    main()
