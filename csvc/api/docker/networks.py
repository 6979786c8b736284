"""
The Docker Engine API's network routes: a project's bridge networks
(``csvc.compute.networks``), the engine's ``csvc-<project>-<name>`` shown as
``<name>``, with the engine's own ``bridge`` and ``none`` beside them.
"""

from twisted.internet.defer import inlineCallbacks

from csvc import policy
from csvc.wire.commands import Conflict, NoSuchNetwork
from csvc.api import docker_events, docker_options
from csvc.api.docker.app import DockerError, DockerRoutes, app, docker_endpoint, qstr
from csvc.api.docker.filters import (
    NETWORK_FILTERS, labels_match, network_matches, prune_filters, unix_rfc3339,
)
from csvc.api.schemas import BadRequest
from csvc.compute.networks import RESERVED as RESERVED_NETWORKS


class NetworkRoutes(DockerRoutes):
    """
    ``/networks/...``.
    """

    @inlineCallbacks
    def _container_names(self, identity):
        """
        Engine id -> name of each of the project's containers.
        """
        rows = yield self._containers.list(identity)
        return {row["engine_id"]: row["name"] for row in rows if row["engine_id"]}

    @app.route("/networks", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def networks(self, request, identity):
        policy.enforce("network:list", identity)
        filters = docker_events.parse_filters(qstr(request, "filters"), NETWORK_FILTERS, "network lists")
        for kind in filters.get("type", []):
            if kind not in ("custom", "builtin"):
                raise BadRequest(f"invalid filter 'type={kind}': custom or builtin")
        # (The engine's list entries carry no containers since API 1.28: no
        # names to look up.)
        listed = yield self._networks.list(identity.project_id, {})
        return 200, [n for n in listed if network_matches(n, filters)]

    @app.route("/networks/create", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def network_create(self, request, identity):
        body = self._read_body(request, "POST /networks/create")
        policy.enforce("network:create", identity)
        name = body.get("Name")
        if not isinstance(name, str) or not docker_options.NETWORK_NAME.fullmatch(name):
            raise BadRequest(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        if name in RESERVED_NETWORKS:
            raise DockerError(403, f"{name} is a pre-defined network and cannot be created")
        options = _network_options(body)
        try:
            network = yield self._networks.create(identity.project_id, name, options)
        except Conflict:
            raise DockerError(409, f"network with name {name} already exists") from None
        return 201, {"Id": network["Id"], "Warning": ""}

    @app.route("/networks/prune", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def network_prune(self, request, identity):
        """
        ``docker network prune``: remove the project's networks no container
        is on (Docker's ``until``, ``label`` and ``label!`` filters).
        """
        policy.enforce("network:delete", identity)
        until, labels, not_labels = prune_filters(qstr(request, "filters"))
        listed = yield self._networks.list(identity.project_id, {})
        deleted = []
        for network in listed:
            if network["Name"] in RESERVED_NETWORKS or not labels_match(network.get("Labels") or {}, labels,
                                                                         not_labels):
                continue
            if until is not None and unix_rfc3339(network.get("Created")) >= until:
                continue
            try:
                yield self._networks.remove(identity.project_id, network["Id"])
            except (Conflict, NoSuchNetwork):
                # In use (or gone meanwhile): Docker leaves it too.
                continue
            deleted.append(network["Name"])
        return 200, {"NetworksDeleted": deleted}

    @app.route("/networks/<network>", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def network_inspect(self, request, identity, network):
        policy.enforce("network:get", identity)
        names = yield self._container_names(identity)
        return 200, (yield self._networks.inspect(identity.project_id, network, names))

    @app.route("/networks/<network>", methods=["DELETE"])
    @docker_endpoint()
    @inlineCallbacks
    def network_remove(self, request, identity, network):
        policy.enforce("network:delete", identity)
        try:
            yield self._networks.remove(identity.project_id, network)
        except Conflict:
            raise DockerError(403, f"error while removing network: network {network} has active endpoints") from None
        return 204, None

    @app.route("/networks/<network>/connect", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def network_connect(self, request, identity, network):
        body = self._read_body(request, "POST /networks/{id}/connect")
        policy.enforce("network:connect", identity)
        endpoint = body.get("EndpointConfig") or {}
        if not isinstance(endpoint, dict):
            raise BadRequest("EndpointConfig must be an object")
        aliases = docker_options.network_aliases("EndpointConfig.Aliases", endpoint.get("Aliases"))
        row = yield self._get(identity, _body_container(body))
        try:
            short = yield self._networks.connect(identity.project_id, network, row, aliases)
        except Conflict as exc:
            raise DockerError(409, f"container {row['name']} is already on network {network}") from exc
        yield self._store_networks(row, short, aliases, connected=True)
        return 200, None

    @app.route("/networks/<network>/disconnect", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def network_disconnect(self, request, identity, network):
        body = self._read_body(request, "POST /networks/{id}/disconnect")
        policy.enforce("network:connect", identity)
        row = yield self._get(identity, _body_container(body))
        short = yield self._networks.disconnect(identity.project_id, network, row, bool(body.get("Force")))
        yield self._store_networks(row, short, [], connected=False)
        return 200, None

    def _store_networks(self, row, short, aliases, connected):
        """
        Keep the networks a container is on in its ``docker_config``
        (``NetworkingConfig.EndpointsConfig``: what inspect shows).
        """
        docker_config = dict(row.get("docker_config") or {})
        endpoints = dict((docker_config.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
        if connected:
            endpoints[short] = {"Aliases": aliases}
        else:
            endpoints.pop(short, None)
        docker_config["NetworkingConfig"] = {"EndpointsConfig": endpoints}
        return self._store.update_container(row["uuid"], docker_config=docker_config)


def _network_options(body):
    """
    The options of a network create csvc honours (``Labels``, ``Internal``,
    ``Attachable``); a 400 naming any other that is set: csvc's networks are
    bridge networks of one instance, addressed by the engine's defaults.
    """
    if body.get("Driver") not in (None, "", "bridge"):
        raise BadRequest(f"Driver: only bridge networks are supported ({body['Driver']!r})")
    ipam = body.get("IPAM") or {}
    if not isinstance(ipam, dict) or ipam.get("Driver") not in (None, "", "default") or ipam.get("Config") \
            or ipam.get("Options"):
        raise BadRequest("IPAM: csvc chooses a network's addresses itself (no subnets, ranges or drivers)")
    for field in ("Options", "Ingress", "EnableIPv6", "ConfigOnly", "ConfigFrom"):
        if body.get(field):
            raise BadRequest(f"{field}: not supported by csvc's networks")
    if body.get("Scope") not in (None, "", "local"):
        raise BadRequest(f"Scope: csvc's networks are local to one instance ({body['Scope']!r})")
    labels = body.get("Labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise BadRequest("Labels: must be an object of strings")
    for field in ("Internal", "Attachable", "CheckDuplicate"):
        if not isinstance(body.get(field, False), bool):
            raise BadRequest(f"{field}: must be a boolean")
    return {"Labels": labels, "Internal": bool(body.get("Internal")), "Attachable": bool(body.get("Attachable"))}


def _body_container(body):
    ident = body.get("Container")
    if not isinstance(ident, str) or not ident:
        raise BadRequest("Container: the container's id or name is required")
    return ident
