"""
The Docker Engine API's container routes that make, list, read, change and
remove containers: create (the body rebuilt, judged, then turned into
csvc's spec), list, inspect, update, rename, remove, prune, top and logs.
"""

import re
from datetime import datetime, timezone

from twisted.internet.defer import DeferredSemaphore, gatherResults, inlineCallbacks
from twisted.logger import Logger

from csvc import policy
from csvc.wire import naming as agent_docker_config
from csvc.wire.psargs import UnsafePsArgs, check_ps_args
from csvc.wire.commands import Conflict, EngineError, NoSuchNetwork
from csvc.api import docker_options
from csvc.api.docker.app import DockerError, DockerRoutes, app, docker_endpoint, qbool, qint, qstr, time_param
from csvc.api.docker.filters import container_matches, labels_match, list_filters, prune_filters
from csvc.api.docker.views import (
    container_inspect, container_summary, cpus_of, env_dict, full_image, has_healthcheck, memory_mib,
    multiplexed_frames, port_list, string_list, unix_time,
)
from csvc.api.logs import LogStream, tail_position
from csvc.api.schemas import BadRequest
from csvc.agents.hub import InstanceUnavailable
from csvc.compute.defaults import update_within
from csvc.compute.networks import RESERVED as RESERVED_NETWORKS
from csvc.compute.service import ImageNotFound, NotFound
from csvc.compute import states
from csvc.compute.states import InvalidState
from csvc.relay.hijack import MULTIPLEXED, RAW

log = Logger()

#: What ``docker container prune`` removes (csvc's statuses).
PRUNABLE = frozenset({"created", "exited", "error"})
#: Removals a prune runs at once.
PRUNE_AT_ONCE = 8


class ContainerRoutes(DockerRoutes):
    """
    ``/containers/...`` but for the life cycle, transfers and streams.
    """

    def _spec_from_config(self, body, name):
        image = body.get("Image")
        if not image or not isinstance(image, str):
            raise BadRequest("Config.Image: an image is required")
        host = body.get("HostConfig") or {}
        if not isinstance(host, dict):
            raise BadRequest("HostConfig must be an object")
        spec = {
            "image": image,
            "command": string_list(body.get("Cmd"), "Cmd"),
            "entrypoint": string_list(body.get("Entrypoint"), "Entrypoint"),
            "environment": env_dict(body.get("Env")),
            "labels": body.get("Labels") or {},
            "tty": bool(body.get("Tty")),
            "interactive": bool(body.get("OpenStdin")),
            "stdin_once": bool(body.get("StdinOnce")),
            "remove_on_exit": bool(host.get("AutoRemove")),
        }
        if body.get("WorkingDir"):
            spec["workdir"] = body["WorkingDir"]
        if not isinstance(spec["labels"], dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in spec["labels"].items()
        ):
            raise BadRequest("Labels: must be an object of strings")
        if host.get("Memory"):
            spec["memory"] = memory_mib(int(host["Memory"]))
        cpus = cpus_of(host)
        if cpus:
            spec["cpu"] = cpus
        if name:
            if not re.fullmatch(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+", name):
                raise BadRequest(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
            spec["name"] = name.lstrip("/")
        return spec

    @app.route("/containers/create", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def create(self, request, identity):
        dropped = []
        body = self._read_body(request, "POST /containers/create", dropped)
        resolved, instance = yield self._join_namespaces(body, identity)
        # Host-escaping options are refused (403) before anything is stored
        # or reaches an engine.
        docker_options.enforce(body, identity, resolved)
        spec = self._spec_from_config(body, qstr(request, "name"))
        spec["docker_config"], warnings = docker_options.honoured(body)
        warnings = dropped + warnings
        network_instance = yield self._network_of(identity, spec["docker_config"])
        if network_instance is not None:
            if instance is not None and instance != network_instance:
                raise BadRequest("HostConfig.NetworkMode: the network and the containers whose namespaces are "
                                 "shared are on different instances")
            instance = network_instance
        if instance is not None:
            # A shared namespace is a namespace of the same engine; a
            # network is one engine's.
            spec["instance"] = instance
        try:
            row = yield self._containers.create(identity, spec)
        except ImageNotFound:
            raise DockerError(404, f"No such image: {full_image(spec['image'])}") from None
        return 201, {"Id": row["engine_id"], "Warnings": warnings}

    @inlineCallbacks
    def _network_of(self, identity, docker_config):
        """
        The instance of the project's network a create names in
        ``NetworkMode`` (None for the engine's own); the network is then
        written by its name (a client may give its id).  404 when the
        project has no such network.
        """
        host = (docker_config or {}).get("HostConfig") or {}
        given = agent_docker_config.project_network(host.get("NetworkMode"))
        if given is None:
            return None
        try:
            instance, _name, short = yield self._networks.find(identity.project_id, given)
        except NoSuchNetwork:
            raise DockerError(404, f"network {given} not found") from None
        host["NetworkMode"] = short
        endpoints = (docker_config.get("NetworkingConfig") or {}).get("EndpointsConfig")
        if endpoints and given in endpoints:
            endpoints[short] = endpoints.pop(given)
        return None if short in RESERVED_NETWORKS else instance

    @inlineCallbacks
    def _join_namespaces(self, body, identity):
        """
        Resolve each ``container:<ident>`` namespace option (network, pid,
        ipc) naming a container of the caller's project (any project's for
        an admin) to the engine's id of that container; fires with the
        fields resolved and the instance they all are on.  What is not
        resolved is left for policy (a member's is refused, naming it).
        """
        resolved, instance = set(), None
        host = body.get("HostConfig")
        for field, ident in docker_options.namespace_targets(body).items():
            row = yield self._store.get_container(ident, identity.project_id)
            if row is None and identity.is_admin:
                row = yield self._store.get_container(ident)
            if row is None or not row["engine_id"]:
                continue
            if instance is not None and row["instance_uuid"] != instance:
                raise BadRequest(f"HostConfig.{field} container:{ident}: the containers whose namespaces are "
                                 "shared must be on one instance")
            instance = row["instance_uuid"]
            host[field] = f"container:{row['engine_id']}"
            resolved.add(field)
        return resolved, instance

    @app.route("/containers/json", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def list(self, request, identity):
        show_all = qbool(request, "all")
        limit = qint(request, "limit", -1)
        filters = list_filters(qstr(request, "filters"))
        rows = yield self._containers.list(identity)
        rows = [r for r in rows if show_all or r["status"] == "running" or (limit and limit > 0)]
        rows = [r for r in rows if container_matches(r, filters)]
        rows.sort(key=lambda r: r["created_at"], reverse=True)
        if limit is not None and limit > 0:
            rows = rows[:limit]
        now = self._clock.seconds()
        sizes = (yield self._sizes(identity.project_id, rows)) if qbool(request, "size") else {}
        summaries = []
        for row in rows:
            summary = container_summary(row, now)
            ports = yield self._published_ports(row)
            summary["Ports"] = port_list(ports)
            summary["SizeRw"], summary["SizeRootFs"] = sizes.get(row["uuid"], (0, 0))
            summaries.append(summary)
        return 200, summaries

    @inlineCallbacks
    def _sizes(self, project_id, rows):
        """
        ``{uuid: [SizeRw, SizeRootFs]}`` of ``rows`` (``size=1``), one
        question per instance they are on; an instance that cannot answer
        leaves its containers at 0.
        """
        sizes = {}
        for instance in sorted({r["instance_uuid"] for r in rows if r["instance_uuid"] and r["engine_id"]}):
            try:
                found = yield self._containers.sizes(project_id, instance)
            except Exception as exc:
                log.warn("container sizes on {instance} unavailable: {why}", instance=instance, why=str(exc))
                continue
            sizes.update(found)
        return sizes

    @inlineCallbacks
    def _published_ports(self, row):
        """
        A running container's published ports at its instance's address
        (``{}`` when it publishes none or they cannot be asked for).
        """
        host = (row.get("docker_config") or {}).get("HostConfig") or {}
        if row["status"] != "running" or not (host.get("PortBindings") or host.get("PublishAllPorts")):
            return {}
        try:
            ports = yield self._containers.published_ports(row)
        except Exception as exc:
            log.warn("published ports of {uuid} unavailable: {why}", uuid=row["uuid"], why=str(exc))
            return {}
        return ports

    @app.route("/containers/<ident>/json", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def inspect(self, request, identity, ident):
        row = yield self._get(identity, ident)
        inspected = container_inspect(row)
        if qbool(request, "size"):
            sizes = yield self._sizes(identity.project_id, [row])
            inspected["SizeRw"], inspected["SizeRootFs"] = sizes.get(row["uuid"], (0, 0))
        published = yield self._published_ports(row)
        if published:
            inspected["NetworkSettings"]["Ports"].update(published)
        if row["status"] == "running":
            try:
                paused = yield self._containers.paused(row)
            except Exception as exc:
                log.warn("pause state of {uuid} unavailable: {why}", uuid=row["uuid"], why=str(exc))
                paused = False
            if paused:
                inspected["State"]["Paused"] = True
                inspected["State"]["Status"] = "paused"
        if row["status"] == "running" and has_healthcheck(row):
            try:
                health = yield self._containers.health(row)
            except Exception as exc:
                log.warn("health of {uuid} unavailable: {why}", uuid=row["uuid"], why=str(exc))
                health = None
            if health:
                inspected["State"]["Health"] = health
        return 200, inspected

    @app.route("/containers/<ident>/update", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def update(self, request, identity, ident):
        """
        Change resources (counted against the project's quota like a
        create's) and the restart policy; refused options stay refused.
        """
        body = self._read_body(request, "POST /containers/{id}/update")
        docker_options.enforce({"HostConfig": body}, identity)
        changes = update_within(docker_options.update_fields(body), self._containers.confinement,
                                admin=identity.is_admin)
        row = yield self._get(identity, ident)
        stored = ((row.get("docker_config") or {}).get("HostConfig") or {})
        docker_options.swap_within(changes, (row["memory"] or 0) * 1024 * 1024, stored.get("MemorySwap") or 0)
        restart = (changes.get("RestartPolicy") or {}).get("Name") or "no"
        if row["remove_on_exit"] and restart != "no":
            raise BadRequest("Restart policy cannot be updated because AutoRemove is enabled for the container")
        memory = memory_mib(changes["Memory"]) if changes.get("Memory") else None
        cpu = None
        if {"NanoCpus", "CpuQuota", "CpuPeriod"} & set(changes):
            stored = ((row.get("docker_config") or {}).get("HostConfig") or {})
            cpu = cpus_of(dict(stored, **changes)) or 0
        _updated, warnings = yield self._containers.update(row, changes, memory, cpu)
        return 200, {"Warnings": warnings or []}

    @app.route("/containers/<ident>/rename", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def rename(self, request, identity, ident):
        """
        A new name, unique in the caller's project (409 otherwise); the
        engine's own name (``csvc-<uuid>``) stays.
        """
        name = qstr(request, "name")
        if not name:
            raise BadRequest("name is required")
        if not re.fullmatch(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+", name):
            raise BadRequest(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        row = yield self._get(identity, ident)
        yield self._containers.rename(row, name.lstrip("/"))
        return 204, None

    @app.route("/containers/<ident>", methods=["DELETE"])
    @docker_endpoint()
    @inlineCallbacks
    def remove(self, request, identity, ident):
        force = qbool(request, "force")
        row = yield self._get(identity, ident)
        if row["status"] == "running" and not force:
            raise DockerError(
                409,
                f"You cannot remove a running container {row['engine_id']}. "
                "Stop the container before attempting removal or force remove",
            )
        yield self._containers.delete(row, force=True, volumes=qbool(request, "v"))
        return 204, None

    @app.route("/containers/prune", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def prune(self, request, identity):
        """
        ``docker container prune``: remove the project's containers that
        are not running (created, exited, dead; a paused one is running),
        those created before ``until`` and matching ``label`` / ``label!``
        when given.  A container that cannot be removed now (its agent
        away, or started meanwhile) is left and not listed: a prune does not
        wait for agents as a delete does.
        """
        until, labels, not_labels = prune_filters(qstr(request, "filters"))
        policy.enforce("container:delete", identity, identity.project_id)
        rows = yield self._containers.list(identity)
        rows = [
            row for row in rows
            if row["status"] in PRUNABLE
            and (row["instance_uuid"] is None or self._hub.is_connected(row["instance_uuid"]))
            and (until is None or unix_time(row["created_at"]) <= until)
            and labels_match(row["labels"] or {}, labels, not_labels)
        ]
        removing = DeferredSemaphore(PRUNE_AT_ONCE)
        removed = yield gatherResults([removing.run(self._prune_one, row) for row in rows], consumeErrors=True)
        return 200, {"ContainersDeleted": [ident for ident in removed if ident], "SpaceReclaimed": 0}

    @inlineCallbacks
    def _prune_one(self, row):
        """
        The container's id once removed; None when it was not.
        """
        try:
            left = yield self._containers.delete(row)
        except (InvalidState, NotFound, InstanceUnavailable, EngineError, Conflict) as exc:
            log.info("prune left container {uuid}: {why}", uuid=row["uuid"], why=str(exc))
            return None
        if left is not None:
            # Marked deleting: its agent removes it when it connects again.
            return None
        return row["engine_id"] or row["uuid"]

    @app.route("/containers/<ident>/top", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def top(self, request, identity, ident):
        ps_args = qstr(request, "ps_args") or ""
        try:
            ps_args = " ".join(check_ps_args(ps_args))
        except UnsafePsArgs as exc:
            raise BadRequest(str(exc)) from None
        row = yield self._get(identity, ident)
        if not states.may("top", row["status"]):
            raise DockerError(409, f"Container {ident} is not running")
        top = yield self._containers.top(row, ps_args)
        return 200, {"Titles": top.get("Titles") or [], "Processes": top.get("Processes") or []}

    @app.route("/containers/<ident>/logs", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def logs(self, request, identity, ident):
        stdout, stderr = qbool(request, "stdout"), qbool(request, "stderr")
        if not (stdout or stderr):
            raise BadRequest("You must choose at least one stream")
        follow = qbool(request, "follow")
        timestamps = qbool(request, "timestamps")
        tail = qstr(request, "tail", "all")
        since, until = time_param(request, "since"), time_param(request, "until")
        row = yield self._get(identity, ident)
        streams = {s for s, on in ((1, stdout), (2, stderr)) if on}
        after, first = 0, None
        if tail not in ("all", "", None):
            try:
                lines = int(tail)
            except ValueError:
                lines = -1
            if lines == 0:
                after = row["last_seq"]
            elif lines > 0:
                after, first = yield tail_position(self._store, row["uuid"], lines, streams)
        tty = bool(row["tty"])

        def encode(stream, data, at):
            if since is not None and at is not None and at < since:
                return b""
            if until is not None and at is not None and at > until:
                return b""
            # (at None: csvc's own marker of dropped output, not a line of it)
            if timestamps and at is not None:
                stamp = (
                    datetime.fromtimestamp(at or 0, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z "
                ).encode()
                data = b"".join(stamp + line for line in data.splitlines(keepends=True))
            return data if tty else multiplexed_frames(stream, data)

        request.setResponseCode(200)
        request.setHeader(b"Content-Type", RAW.encode() if tty else MULTIPLEXED.encode())
        request._csvc_streaming = True
        request.write(b"")
        stream = LogStream(request, self._store, self._journal, row["uuid"], after, streams, follow, first,
                           encode=encode)
        yield stream.start()
        return None
