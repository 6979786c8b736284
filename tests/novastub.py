"""
A stand-in of OpenStack compute (Nova API v2.1) and of the little of
Keystone v3 that openstacksdk needs to reach it, for tests only.

One Klein app on 127.0.0.1 serves both, under two prefixes:

- ``/identity``: version discovery (``GET /identity``, ``GET
  /identity/v3``) and ``POST /identity/v3/auth/tokens`` (password auth; the
  answer's ``X-Subject-Token`` header and a catalog whose ``compute``
  endpoint is ``/compute/v2.1`` here).
- ``/compute``: version discovery (``GET /compute/``, ``GET
  /compute/v2.1/``), ``POST /servers``, ``GET /servers``, ``GET
  /servers/detail``, ``GET /servers/{id}``, ``DELETE /servers/{id}``,
  ``GET /flavors``, ``GET /flavors/detail``, ``GET /flavors/{id}``.

Behaviour follows the compute API reference:

- ``POST /servers`` answers 202 with the short create body (``id``,
  ``links``, ``OS-DCF:diskConfig``, ``security_groups``, ``adminPass``); the
  server is ``BUILD`` (task ``spawning``) until ``build_delay`` seconds have
  passed, then ``ACTIVE``, or ``ERROR`` with a ``fault`` (code 500, "No
  valid host was found. ...") when its flavor is one of
  ``unschedulable_flavors``.
- An unknown flavor or image is refused at once, 400 ``badRequest``
  (Nova validates ``flavorRef``/``imageRef`` before it accepts a server).
- More than ``max_servers`` live servers: 403 ``forbidden``, "Quota
  exceeded for instances: Requested 1, but already used N of N instances"
  (``quota_status=413`` gives the old ``overLimit`` answer instead).
- ``DELETE /servers/{id}``: 204; the server stays visible, task
  ``deleting``, for ``delete_delay`` seconds, then ``GET`` answers 404
  ``itemNotFound`` and it leaves the lists.
- Every request needs the ``X-Auth-Token`` issued by the token endpoint
  (401 otherwise).

Statuses are computed from ``clock.seconds()`` when asked, so a ``Clock``
or the reactor drives the transitions.  ``calls`` records every request
as ``(method, path, body)``; ``creates()`` counts the ``POST /servers``.

Run alone: ``python -m tests.novastub [--port N]`` prints its auth URL.
"""

import base64
import json
import uuid as uuidlib
from datetime import datetime, timezone

from klein import Klein

ADMIN_PASS = "stub-admin-pass"

FLAVORS = [
    {"id": "1", "name": "m1.tiny", "ram": 512, "vcpus": 1, "disk": 1},
    {"id": "2", "name": "m1.small", "ram": 2048, "vcpus": 1, "disk": 20},
    {"id": "3", "name": "m1.medium", "ram": 4096, "vcpus": 2, "disk": 40},
    {"id": "99", "name": "m1.enormous", "ram": 1048576, "vcpus": 512, "disk": 10000},
]

IMAGES = {"ubuntu-24.04": "0b3a1b2e-5cd0-4c5e-9d5f-5e1c0a8b9f01"}


def _iso(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class NovaStub:
    """
    The stand-in's state and routes; ``base`` is the URL it is reached at
    (``http://127.0.0.1:PORT``), set once it listens.
    """

    _app = Klein()

    def __init__(self, clock, build_delay=0.2, delete_delay=0.2, max_servers=10,
                 unschedulable_flavors=("99",), quota_status=403, username="csvc", password="secret",
                 project="service"):
        self.clock = clock
        self.build_delay = build_delay
        self.delete_delay = delete_delay
        self.max_servers = max_servers
        self.unschedulable_flavors = set(unschedulable_flavors)
        self.quota_status = quota_status
        self.username = username
        self.password = password
        self.project = project
        self.base = "http://127.0.0.1"
        #: every request: (method, path, parsed JSON body or None)
        self.calls = []
        #: server id -> state
        self.servers = {}
        self.tokens = set()
        self.flavors = {f["id"]: dict(f) for f in FLAVORS}
        self.images = dict(IMAGES)
        #: called with the server dict once a server is first seen ACTIVE
        self.on_active = None

    # -- for tests ---------------------------------------------------------

    def resource(self):
        return self._app.resource()

    def creates(self):
        return sum(1 for method, path, _ in self.calls if method == "POST" and path.endswith("/servers"))

    def user_data(self, server_id):
        return base64.b64decode(self.servers[server_id]["user_data"]).decode("utf-8")

    def live(self):
        return [s for s in self.servers.values() if not self._gone(s)]

    @property
    def auth_url(self):
        return self.base + "/identity/v3"

    # -- plumbing ----------------------------------------------------------

    def _record(self, request):
        body = None
        raw = request.content.read() if request.content is not None else b""
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        self.calls.append((request.method.decode(), request.path.decode(), body))
        return body

    def _json(self, request, status, document, headers=()):
        request.setResponseCode(status)
        request.setHeader("Content-Type", "application/json")
        for name, value in headers:
            request.setHeader(name, value)
        return json.dumps(document).encode("utf-8")

    def _fault(self, request, status, kind, message):
        return self._json(request, status, {kind: {"code": status, "message": message}})

    def _authorised(self, request):
        return request.getHeader("X-Auth-Token") in self.tokens

    def _compute_url(self):
        return self.base + "/compute/v2.1"

    # -- Keystone v3 -------------------------------------------------------

    def _identity_version(self):
        return {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": self.base + "/identity/v3/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
        }

    @_app.route("/identity", methods=["GET"])
    @_app.route("/identity/", methods=["GET"])
    def identity_versions(self, request):
        self._record(request)
        return self._json(request, 300, {"versions": {"values": [self._identity_version()]}})

    @_app.route("/identity/v3", methods=["GET"])
    @_app.route("/identity/v3/", methods=["GET"])
    def identity_version(self, request):
        self._record(request)
        return self._json(request, 200, {"version": self._identity_version()})

    @_app.route("/identity/v3/auth/tokens", methods=["POST"])
    def issue_token(self, request):
        body = self._record(request) or {}
        try:
            user = body["auth"]["identity"]["password"]["user"]
            name, password = user["name"], user["password"]
        except (KeyError, TypeError):
            return self._fault(request, 400, "error", "Expecting to find identity.password.user in auth.")
        if name != self.username or password != self.password:
            return self._json(request, 401, {"error": {"code": 401, "title": "Unauthorized",
                                                       "message": "The request you have made requires authentication."}})
        token = uuidlib.uuid4().hex
        self.tokens.add(token)
        now = self.clock.seconds()
        compute = self._compute_url()
        document = {
            "token": {
                "methods": ["password"],
                "user": {"id": "u-" + name, "name": name, "domain": {"id": "default", "name": "Default"},
                         "password_expires_at": None},
                "project": {"id": "p-" + self.project, "name": self.project,
                            "domain": {"id": "default", "name": "Default"}},
                "roles": [{"id": "r-member", "name": "member"}],
                "issued_at": _iso(now),
                "expires_at": _iso(now + 3600),
                "audit_ids": [uuidlib.uuid4().hex[:22]],
                "is_domain": False,
                "catalog": [
                    {
                        "id": "svc-nova",
                        "type": "compute",
                        "name": "nova",
                        "endpoints": [
                            {"id": f"ep-nova-{iface}", "interface": iface, "region": "RegionOne",
                             "region_id": "RegionOne", "url": compute}
                            for iface in ("public", "internal", "admin")
                        ],
                    },
                    {
                        "id": "svc-keystone",
                        "type": "identity",
                        "name": "keystone",
                        "endpoints": [
                            {"id": f"ep-keystone-{iface}", "interface": iface, "region": "RegionOne",
                             "region_id": "RegionOne", "url": self.base + "/identity"}
                            for iface in ("public", "internal", "admin")
                        ],
                    },
                ],
            }
        }
        return self._json(request, 201, document, headers=[("X-Subject-Token", token)])

    # -- compute: versions -------------------------------------------------

    def _compute_version(self):
        return {
            "id": "v2.1",
            "status": "CURRENT",
            "version": "2.96",
            "min_version": "2.1",
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": self._compute_url() + "/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}],
        }

    @_app.route("/compute", methods=["GET"])
    @_app.route("/compute/", methods=["GET"])
    def compute_versions(self, request):
        self._record(request)
        return self._json(request, 200, {"versions": [self._compute_version()]})

    @_app.route("/compute/v2.1", methods=["GET"])
    @_app.route("/compute/v2.1/", methods=["GET"])
    def compute_version(self, request):
        self._record(request)
        return self._json(request, 200, {"version": self._compute_version()})

    # -- compute: flavors --------------------------------------------------

    def _flavor_links(self, flavor_id):
        return [{"rel": "self", "href": f"{self._compute_url()}/flavors/{flavor_id}"},
                {"rel": "bookmark", "href": f"{self.base}/compute/flavors/{flavor_id}"}]

    def _flavor(self, flavor):
        return dict(flavor, links=self._flavor_links(flavor["id"]), swap=0, **{
            "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": False,
            "rxtx_factor": 1.0, "os-flavor-access:is_public": True, "description": None,
            "extra_specs": {},
        })

    @_app.route("/compute/v2.1/flavors", methods=["GET"])
    def list_flavors(self, request):
        self._record(request)
        if not self._authorised(request):
            return self._fault(request, 401, "error", "The request you have made requires authentication.")
        return self._json(request, 200, {"flavors": [
            {"id": f["id"], "name": f["name"], "links": self._flavor_links(f["id"]), "description": None}
            for f in self.flavors.values()
        ]})

    @_app.route("/compute/v2.1/flavors/detail", methods=["GET"])
    def list_flavors_detail(self, request):
        self._record(request)
        if not self._authorised(request):
            return self._fault(request, 401, "error", "The request you have made requires authentication.")
        return self._json(request, 200, {"flavors": [self._flavor(f) for f in self.flavors.values()]})

    @_app.route("/compute/v2.1/flavors/<flavor_id>", methods=["GET"])
    def show_flavor(self, request, flavor_id):
        self._record(request)
        if not self._authorised(request):
            return self._fault(request, 401, "error", "The request you have made requires authentication.")
        flavor = self.flavors.get(flavor_id)
        if flavor is None:
            return self._fault(request, 404, "itemNotFound", f"Flavor {flavor_id} could not be found.")
        return self._json(request, 200, {"flavor": self._flavor(flavor)})

    # -- compute: servers --------------------------------------------------

    def _gone(self, server):
        deleted = server["deleted_at"]
        return deleted is not None and self.clock.seconds() >= deleted + self.delete_delay

    def _status(self, server):
        """
        ``(status, task_state)`` now.
        """
        now = self.clock.seconds()
        if server["deleted_at"] is not None:
            return ("DELETED", None) if self._gone(server) else (server["settled"] or "BUILD", "deleting")
        if server["settled"] is None and now >= server["created"] + self.build_delay:
            server["settled"] = "ERROR" if server["flavor"] in self.unschedulable_flavors else "ACTIVE"
            if server["settled"] == "ERROR":
                server["fault"] = {
                    "code": 500,
                    "created": _iso(now),
                    "message": "No valid host was found. There are not enough hosts available.",
                }
            elif self.on_active is not None:
                self.on_active(server)
        if server["settled"] is None:
            return "BUILD", "spawning"
        return server["settled"], None

    def _links(self, server_id):
        return [{"rel": "self", "href": f"{self._compute_url()}/servers/{server_id}"},
                {"rel": "bookmark", "href": f"{self.base}/compute/servers/{server_id}"}]

    def _detail(self, server):
        status, task = self._status(server)
        flavor = self.flavors[server["flavor"]]
        active = status == "ACTIVE"
        document = {
            "id": server["id"],
            "name": server["name"],
            "status": status,
            "tenant_id": "p-" + self.project,
            "user_id": "u-" + self.username,
            "metadata": server["metadata"],
            "hostId": "h" * 56 if active else "",
            "image": {"id": server["image"], "links": []},
            "flavor": {"vcpus": flavor["vcpus"], "ram": flavor["ram"], "disk": flavor["disk"],
                       "ephemeral": 0, "swap": 0, "original_name": flavor["name"], "extra_specs": {}},
            "created": _iso(server["created"]),
            "updated": _iso(self.clock.seconds()),
            "addresses": ({server["network_name"]: [
                {"version": 4, "addr": server["ip"], "OS-EXT-IPS:type": "fixed",
                 "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"}]} if active else {}),
            "accessIPv4": "",
            "accessIPv6": "",
            "links": self._links(server["id"]),
            "OS-DCF:diskConfig": "MANUAL",
            "progress": 0 if status == "BUILD" else 100,
            "OS-EXT-AZ:availability_zone": "nova" if active else "",
            "config_drive": "",
            "key_name": server["key_name"],
            "OS-SRV-USG:launched_at": _iso(server["created"] + self.build_delay) if active else None,
            "OS-SRV-USG:terminated_at": None,
            "security_groups": [{"name": "default"}],
            "OS-EXT-STS:task_state": task,
            "OS-EXT-STS:vm_state": {"ACTIVE": "active", "BUILD": "building", "ERROR": "error"}.get(status, "deleted"),
            "OS-EXT-STS:power_state": 1 if active else 0,
            "os-extended-volumes:volumes_attached": [],
            "locked": False,
            "description": None,
            "tags": [],
            "trusted_image_certificates": None,
            "server_groups": [],
            "locked_reason": None,
        }
        if status == "ERROR":
            document["fault"] = server["fault"]
        return document

    @_app.route("/compute/v2.1/servers", methods=["POST"])
    def create_server(self, request):
        body = self._record(request)
        if not self._authorised(request):
            return self._fault(request, 401, "error", "The request you have made requires authentication.")
        if not isinstance(body, dict) or not isinstance(body.get("server"), dict):
            return self._fault(request, 400, "badRequest", "Invalid input for field/attribute server.")
        spec = body["server"]
        for field in ("name", "flavorRef"):
            if not spec.get(field):
                return self._fault(request, 400, "badRequest",
                                   f"Invalid input for field/attribute server. Value: {json.dumps(spec)}. "
                                   f"'{field}' is a required property")
        flavor = str(spec["flavorRef"]).rsplit("/", 1)[-1]
        if flavor not in self.flavors:
            return self._fault(request, 400, "badRequest", f"Flavor {flavor} could not be found.")
        image = str(spec.get("imageRef") or "").rsplit("/", 1)[-1]
        if image not in self.images.values():
            return self._fault(request, 400, "badRequest", f"Image {image} could not be found.")
        user_data = spec.get("user_data")
        if user_data is not None:
            # Nova's schema: base64, at most 65535 characters.
            if not isinstance(user_data, str) or len(user_data) > 65535:
                return self._fault(request, 400, "badRequest",
                                   "Invalid input for field/attribute user_data. Value: ... is too long")
            try:
                base64.b64decode(user_data, validate=True)
            except ValueError:
                return self._fault(request, 400, "badRequest",
                                   "Invalid input for field/attribute user_data. Value: ... is not a 'base64'")
        used = len(self.live())
        if used >= self.max_servers:
            message = (f"Quota exceeded for instances: Requested 1, but already used {used} "
                       f"of {self.max_servers} instances")
            if self.quota_status == 413:
                return self._fault(request, 413, "overLimit", message)
            return self._fault(request, 403, "forbidden", message)
        networks = spec.get("networks") or []
        server_id = str(uuidlib.uuid4())
        self.servers[server_id] = {
            "id": server_id,
            "name": spec["name"],
            "flavor": flavor,
            "image": image,
            "networks": networks,
            "network_name": "private",
            "ip": f"10.0.0.{len(self.servers) % 250 + 2}",
            "key_name": spec.get("key_name"),
            "metadata": spec.get("metadata") or {},
            "user_data": user_data,
            "created": self.clock.seconds(),
            "settled": None,
            "fault": None,
            "deleted_at": None,
        }
        return self._json(request, 202, {"server": {
            "id": server_id,
            "links": self._links(server_id),
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{"name": "default"}],
            "adminPass": ADMIN_PASS,
        }})

    @_app.route("/compute/v2.1/servers", methods=["GET"])
    def list_servers(self, request):
        self._record(request)
        if not self._authorised(request):
            return self._fault(request, 401, "error", "The request you have made requires authentication.")
        return self._json(request, 200, {"servers": [
            {"id": s["id"], "name": s["name"], "links": self._links(s["id"])} for s in self.live()
        ]})

    @_app.route("/compute/v2.1/servers/detail", methods=["GET"])
    def list_servers_detail(self, request):
        self._record(request)
        if not self._authorised(request):
            return self._fault(request, 401, "error", "The request you have made requires authentication.")
        return self._json(request, 200, {"servers": [self._detail(s) for s in self.live()]})

    @_app.route("/compute/v2.1/servers/<server_id>", methods=["GET"])
    def show_server(self, request, server_id):
        self._record(request)
        if not self._authorised(request):
            return self._fault(request, 401, "error", "The request you have made requires authentication.")
        server = self.servers.get(server_id)
        if server is None or self._gone(server):
            return self._fault(request, 404, "itemNotFound", f"Instance {server_id} could not be found.")
        return self._json(request, 200, {"server": self._detail(server)})

    @_app.route("/compute/v2.1/servers/<server_id>", methods=["DELETE"])
    def delete_server(self, request, server_id):
        self._record(request)
        if not self._authorised(request):
            return self._fault(request, 401, "error", "The request you have made requires authentication.")
        server = self.servers.get(server_id)
        if server is None or self._gone(server):
            return self._fault(request, 404, "itemNotFound", f"Instance {server_id} could not be found.")
        if server["deleted_at"] is None:
            server["deleted_at"] = self.clock.seconds()
        request.setResponseCode(204)
        return b""


def listen(stub, reactor, port=0):
    """
    Serve ``stub`` on 127.0.0.1; fires with the listening port (``stub.base``
    is set).
    """
    from twisted.internet.endpoints import TCP4ServerEndpoint
    from twisted.web.server import Site

    site = Site(stub.resource())
    site.displayTracebacks = False
    site.noisy = False

    def bound(listening):
        stub.base = f"http://127.0.0.1:{listening.getHost().port}"
        return listening

    return TCP4ServerEndpoint(reactor, port, interface="127.0.0.1").listen(site).addCallback(bound)


def main(argv=None):
    import argparse
    import sys

    from twisted.internet import reactor

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--build-delay", type=float, default=2.0)
    parser.add_argument("--delete-delay", type=float, default=1.0)
    parser.add_argument("--max-servers", type=int, default=10)
    args = parser.parse_args(argv)
    stub = NovaStub(reactor, build_delay=args.build_delay, delete_delay=args.delete_delay,
                    max_servers=args.max_servers)

    def ready(_port):
        print(f"auth_url {stub.auth_url} username {stub.username} password {stub.password} "
              f"project {stub.project}", flush=True)

    listen(stub, reactor, args.port).addCallback(ready)
    reactor.run()
    sys.exit(0)


if __name__ == "__main__":
    main()
